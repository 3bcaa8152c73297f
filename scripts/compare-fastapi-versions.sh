#!/usr/bin/env bash
# The doctor on the tutorial's `yield` dependency (tests/doctor_apps/yield_commit_after.py: a write committed
# after the `yield`, the same with scope="function", a streamed body that reads through the session) across
# the FastAPI releases that moved where the code after the `yield` runs: `doctor --versions`
# (docs/before-you-upgrade.md). The app's environment is the stack's virtualenv (.venvs/current;
# STACK=legacy: .venvs/legacy); each release gets a copy of it in which only FastAPI and what it requires
# moved, kept in $LEGACY_APP_DOCTOR_CACHE (default ~/.cache/legacy_app/doctor-versions; rm -r it to clear).
# Versions: the arguments (0.118.0 or fastapi==0.118.0, ...), else the preset fastapi-session-changes.
# Prints one table, version by request; exits as the doctor does (1: a hazard on some version).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv
specs=()
for version in "${@:-fastapi-session-changes}"; do
  [[ "$version" =~ ^[0-9] ]] && version="fastapi==$version"
  specs+=("$version")
done
database="$(mktemp -d)"
trap 'rm -rf "$database"' EXIT
DATABASE_URL="sqlite:///$database/app.db" "$VENV/bin/python" -m legacy_app doctor yield_commit_after:app \
  --app-dir tests/doctor_apps --requests tests/doctor_apps/yield_commit_after.requests.json \
  --python "$VENV/bin/python" --versions "${specs[*]}"
