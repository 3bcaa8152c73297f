"""Measure how the three session strategies behave on the installed versions: `python -m legacy_app compare`."""
