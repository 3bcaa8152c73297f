"""Fault drills against live servers: `scripts/faults.sh` or `python -m tools.drills`."""
