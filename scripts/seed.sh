#!/usr/bin/env bash
# Seed a running server over HTTP, idempotently:
#   scripts/seed.sh --users 200 --items-per-user 3     # the server scripts/run.sh started: http://127.0.0.1:${PORT:-8000}
#   scripts/seed.sh --url http://HOST:PORT --file scripts/examples/users.json
# Shows progress on stderr (a bar on a terminal, else a line every few seconds); prints created /
# skipped / failed; exits 1 if any row failed, 2 if the server cannot be reached. Stopped on the way
# (Ctrl-C, SIGTERM, the server gone) it says what it wrote and exits 130, 143 or 2: the same command
# again is safe, and adds the rest. `--help` lists the options and their defaults.
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv run
python="$PWD/$VENV/bin/python"
cd "$caller_dir"  # a relative --file is the caller's; the package is installed, so any directory serves
exec "$python" -m legacy_app.seeding.over_http "$@"
