"""``python -m llmsurge``."""

from __future__ import annotations

from llmsurge.cli import main

raise SystemExit(main())
