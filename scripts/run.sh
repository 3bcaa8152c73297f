#!/usr/bin/env bash
# Serve the API with uvicorn on $HOST:$PORT (default 127.0.0.1:8000). Settings come from the
# environment (DATABASE_URL, SESSION_STRATEGY, ...); STACK=legacy serves on the legacy stack.
# Extra arguments go to uvicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv run
exec "$VENV/bin/python" -m uvicorn legacy_app.main:app --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" "$@"
