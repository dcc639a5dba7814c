"""The Textual app: ``app.py`` (factory and lifecycle), ``screens/`` and ``commands.py`` (the palette)."""
