#!/usr/bin/env bash
# Run the test suite on one stack (STACK=current by default, or legacy). Extra arguments go to pytest.
# PostgreSQL and MariaDB tests run when TEST_POSTGRES_URL / TEST_MARIADB_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv test
exec "$VENV/bin/python" -m pytest "$@"
