#!/usr/bin/env bash
# Benchmark our session middleware beside its peers (the tutorial's decorator, fastapi-sqlalchemy, the
# `yield` dependency, advanced-alchemy) on the tutorial's app, with wrk. The peers need packages the
# stacks' virtualenvs do not have: they get their own, .venvs/peers, (re)installed when its files change.
# Extra arguments go to benchmarks/peers/run.py (--rounds N, --seconds S, --no-pin); --install-only
# makes the virtualenv and stops (CI, before the suite whose smoke test runs one short round).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venvs/peers
files=(pyproject.toml benchmarks/peers/requirements.txt constraints/peers.txt)
stamp=$( (cat "${files[@]}"; pwd) | sha256sum | cut -d' ' -f1)
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "Creating $VENV..." >&2
  python3 -m venv "$VENV"
fi
if [[ "$(cat "$VENV/.installed" 2>/dev/null)" != "$stamp" ]]; then
  echo "Installing legacy_app (editable) and the peers, pinned by constraints/peers.txt, into $VENV..." >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e . -r benchmarks/peers/requirements.txt -c constraints/peers.txt
  echo "$stamp" > "$VENV/.installed"
fi
if ! command -v wrk >/dev/null; then
  echo "installing wrk..." >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else sudo apt-get install -y wrk >/dev/null; fi
fi
[[ "${1:-}" == --install-only ]] && exit 0
exec "$VENV/bin/python" -m benchmarks.peers "$@"
