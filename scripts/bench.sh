#!/usr/bin/env bash
# Benchmark this service (each session strategy) against the tutorial app, side by side, with wrk.
# Extra arguments go to benchmarks/run.py (--database postgresql, --rounds N, --health-pairs N, --seconds S, --no-pin).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv run
if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else sudo apt-get install -y wrk >/dev/null; fi
fi
exec "$VENV/bin/python" -m benchmarks.run "$@"
