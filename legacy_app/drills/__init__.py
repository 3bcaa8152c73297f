"""Fault drills against live servers: `scripts/faults.sh` or `python -m legacy_app.drills`."""
