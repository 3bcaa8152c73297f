#!/usr/bin/env bash
# Run the tests on one stack (STACK=current by default, or legacy). Extra arguments go to pytest.
#
# By default the quick run a newcomer needs (a few minutes): every test but those marked stacks,
# versions, browser or slow (`pytest --markers` says what each is). `--all` (or TEST_ALL=1) runs them
# all, as .ci/run does; naming tests (a path, or path::test) or giving -m runs what that selects.
# PostgreSQL and MariaDB tests run when TEST_POSTGRES_URL / TEST_MARIADB_URL are set. Ends with what
# the quick run left out (when it ran), then one line naming the databases that ran and how to enable
# the others; exits with pytest's status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

QUICK="not stacks and not versions and not browser and not slow"  # what the quick run selects
everything=0
[[ "${TEST_ALL:-0}" != 0 ]] && everything=1
chosen=0  # the arguments select tests themselves
args=()
for arg in "$@"; do
  case "$arg" in
    --all) everything=1; continue ;;
    -m|-m?*) chosen=1 ;;
    -*) ;;
    *) [[ -e "${arg%%::*}" ]] && chosen=1 ;;
  esac
  args+=("$arg")
done
quick=()
((everything || chosen)) || quick=(-m "$QUICK")

ensure_venv test
status=0
"$VENV/bin/python" -m pytest ${quick[@]+"${quick[@]}"} ${args[@]+"${args[@]}"} || status=$?
if ((${#quick[@]})); then
  echo "quick run: left out the tests marked stacks, versions, browser or slow (-m \"$QUICK\"); every test: scripts/test.sh --all (or TEST_ALL=1)"
fi
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
