#!/usr/bin/env bash
# Serve the API on $HOST:$PORT (default 127.0.0.1:8000) with `python -m legacy_app serve`.
# Settings come from the environment (DATABASE_URL, SESSION_STRATEGY, ...); STACK=legacy serves on
# the legacy stack. Extra arguments go to the serve command (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv run
exec "$VENV/bin/python" -m legacy_app serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" "$@"
