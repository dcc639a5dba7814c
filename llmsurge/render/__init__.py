"""Output that is not Textual: the console every command prints through (and, later, its tables and reports)."""
