"""The domain never imports the UI (DESIGN.md): checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys


def test_domain_does_not_import_textual() -> None:
    code = (
        "import sys\n"
        "import llmsurge.engine.session, llmsurge.engine.controller, llmsurge.engine.worker\n"
        "import llmsurge.metrics.bus, llmsurge.metrics.results, llmsurge.sim.server, llmsurge.sim.process\n"
        "import llmsurge.presets, llmsurge.telemetry\n"
        "import pkgutil, importlib, llmsurge.telemetry as t\n"
        "for m in pkgutil.iter_modules(t.__path__): importlib.import_module('llmsurge.telemetry.' + m.name)\n"
        "ui = ('textual', 'llmsurge.tui', 'llmsurge.widgets')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'textual' or m.startswith(ui[1:])]\n"
        "print(','.join(bad))\n"
        "raise SystemExit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"UI modules imported by the domain: {r.stdout} {r.stderr}"
