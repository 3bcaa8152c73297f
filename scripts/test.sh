#!/usr/bin/env bash
# Run the test suite on one stack (STACK=current by default, or legacy). Extra arguments go to pytest.
# PostgreSQL and MariaDB tests run when TEST_POSTGRES_URL / TEST_MARIADB_URL are set. Ends with one
# line naming the databases that ran and how to enable the others; exits with pytest's status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv test
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
ran="SQLite"
skipped=()
if [[ -n "${TEST_POSTGRES_URL:-}" ]]; then ran+=", PostgreSQL"
else skipped+=("PostgreSQL (set TEST_POSTGRES_URL=postgresql+psycopg://USER@HOST:5432/DB)"); fi
if [[ -n "${TEST_MARIADB_URL:-}" ]]; then ran+=", MariaDB"
else skipped+=("MariaDB (set TEST_MARIADB_URL=mysql+pymysql://USER@HOST:3306/DB)"); fi
line="databases: $ran ran"
if ((${#skipped[@]})); then
  line+="; skipped: $(printf '%s, ' "${skipped[@]}" | sed 's/, $//'), a database the tests may empty"
fi
echo "$line"
exit "$status"
