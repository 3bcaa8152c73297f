#!/usr/bin/env bash
# Run the doctor on the tutorial's yield dependency (tests/doctor_apps/yield_dependency.py: a JSON route
# and a streamed body that queries through the session) across the FastAPI releases that moved the
# dependency's exit code. Each version gets a throw-away virtualenv under
# ${WORK_DIR:-/tmp/legacy_app-fastapi-versions} with the current stack's other pins.
# Prints one line per version: the hazards per route; the JSON documents stay in WORK_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS=("${@:-0.105.0 0.106.0 0.117.1 0.118.0 0.121.0}")
read -r -a VERSIONS <<< "${VERSIONS[*]}"
WORK_DIR="${WORK_DIR:-/tmp/legacy_app-fastapi-versions}"
mkdir -p "$WORK_DIR"
# Every current pin except FastAPI, Starlette and anyio (each FastAPI release brings the ones it supports).
grep -viE '^(fastapi|starlette|anyio|sniffio)==' constraints/current.txt > "$WORK_DIR/constraints.txt"
for version in "${VERSIONS[@]}"; do
  venv="$WORK_DIR/fastapi-$version"
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r requirements.txt -c "$WORK_DIR/constraints.txt" "fastapi==$version"
  rm -f "$WORK_DIR/yield-$version.db"
  status=0
  DATABASE_URL="sqlite:///$WORK_DIR/yield-$version.db" "$venv/bin/python" -m legacy_app doctor \
    yield_dependency:app --app-dir tests/doctor_apps --json > "$WORK_DIR/fastapi-$version.json" || status=$?
  if (( status > 1 )); then echo "FastAPI $version: the doctor could not run it (exit $status)"; continue; fi
  "$venv/bin/python" - "$WORK_DIR/fastapi-$version.json" <<'PY'
import json, sys
document = json.load(open(sys.argv[1]))
versions = document["versions"]
routes = "  ".join(
    f"{r['method']} {r['path']}{' (hung up)' if r['disconnected'] else ''}: {','.join(r['hazards']) or 'clean'}"
    for r in document["requests"]
)
print(f"FastAPI {versions['fastapi']:8} Starlette {versions['starlette']:7} {routes}")
PY
done
