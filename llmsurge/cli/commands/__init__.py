"""One module per command; each parser in ``cli/parser.py`` names its handler here."""
