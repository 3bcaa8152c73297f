#!/usr/bin/env bash
# Fuzz a live server with schemathesis: every default check, the stateful phase, a fixed seed.
#   SERVER_STACK=current|legacy   the stack that serves (default current); schemathesis itself
#                                 always runs from the current stack's .venvs/current (it needs anyio 4)
#   DATABASE_URL                  as for run.sh (default: a temporary SQLite file)
#   MAX_EXAMPLES (200), SEED (20261124)
# Extra arguments go to `schemathesis run`. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=current
source scripts/_venv.sh
ensure_venv test
fuzzer="$VENV/bin/schemathesis"

STACK="${SERVER_STACK:-current}"
source scripts/_venv.sh
ensure_venv run
scratch=$(mktemp -d)
export DATABASE_URL="${DATABASE_URL:-sqlite:///$scratch/fuzz.db}"
port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/python" -m legacy_app serve --port "$port" --log-level warning > "$scratch/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; rm -rf "$scratch"' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "fuzzing the $STACK stack on $(echo "$DATABASE_URL" | sed -E 's#//[^@/]*@#//#') at port $port" >&2
status=0
"$fuzzer" run "http://127.0.0.1:$port/openapi.json" \
  --max-examples "${MAX_EXAMPLES:-200}" --seed "${SEED:-20261124}" --max-response-time 2 "$@" || status=$?
if grep -q "Traceback" "$scratch/server.log"; then
  echo "the server logged a traceback:" >&2
  cat "$scratch/server.log" >&2
  status=1
fi
exit "$status"
