#!/usr/bin/env bash
# Measure the yield-dependency strategy (and asgi-middleware for reference) across the FastAPI
# releases that changed when a yield dependency's exit code runs. Each version gets a throw-away
# virtualenv under ${WORK_DIR:-/tmp/legacy_app-fastapi-versions} with the current stack's other pins.
# Prints one line per version; the JSON documents stay in WORK_DIR.
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
  "$venv/bin/python" -m legacy_app compare --json --strategies yield-dependency asgi-middleware \
    --requests 50 --pool-requests 10 > "$WORK_DIR/fastapi-$version.json"
  "$venv/bin/python" - "$WORK_DIR/fastapi-$version.json" <<'PY'
import json, sys
document = json.load(open(sys.argv[1]))
versions, results = document["versions"], document["results"]["yield-dependency"]
print(
    f"FastAPI {versions['fastapi']:8} Starlette {versions['starlette']:7} yield-dependency: "
    f"closed_after_response={results['normal_request']['closed_after_response']} "
    f"background session_usable={results['background_task']['session_usable']} "
    f"leaked={results['background_task']['leaked_connections']} "
    f"streaming session_usable={results['streaming_response']['session_usable']} "
    f"leaked={results['streaming_response']['leaked_connections']}"
)
PY
done
