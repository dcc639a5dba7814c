"""The domain never imports the UI (DESIGN.md): checked in a fresh interpreter (and by import-linter in CI)."""

from __future__ import annotations

import subprocess
import sys


def test_domain_does_not_import_textual() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import llmsurge\n"
        "domain = ('engine', 'metrics', 'telemetry', 'sim', 'presets')\n"
        "for pkg in domain:\n"
        "    mod = importlib.import_module('llmsurge.' + pkg)\n"
        "    for m in pkgutil.walk_packages(mod.__path__, mod.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plot')\n"
        "       or m.startswith(('llmsurge.tui', 'llmsurge.widgets'))]\n"
        "print(','.join(bad))\n"
        "raise SystemExit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"UI modules imported by the domain: {r.stdout} {r.stderr}"
