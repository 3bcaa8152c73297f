#!/usr/bin/env bash
# Seed a running server over HTTP, idempotently:
#   scripts/seed.sh --url http://127.0.0.1:8000 --users 200 --items-per-user 3
#   scripts/seed.sh --url http://127.0.0.1:8000 --file scripts/examples/users.json
# Prints created / skipped / failed; exits 1 if any row failed, 2 if the server cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv run
exec "$VENV/bin/python" -m legacy_app.seeding.over_http "$@"
