#!/usr/bin/env bash
# Fault drills (tools/drills) against live servers, one line per drill with its figures:
# pool exhaustion, database outage (PostgreSQL), kill -9 during writes, SIGTERM with requests in flight,
# bounded lists (a user filled to MAX_ITEMS_PER_USER; full pages read concurrently),
# idle connections beyond a low file limit, clients slow to send their headers (directly and through nginx),
# a burst of 200 registrations, a black-holed PostgreSQL (tools/drills/load.py; about 5 minutes in all).
# Databases: a temporary SQLite file, and PostgreSQL at $FAULTS_POSTGRES_URL
# (default postgresql+psycopg://postgres@127.0.0.1:5432/legacy_app_faults, created if missing;
# FAULTS_POSTGRES_URL=none skips it). The drills add rows to the users table of that database.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv run
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
urls=("sqlite:///$scratch/faults.db")
pg_url="${FAULTS_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/legacy_app_faults}"
if [[ "$pg_url" != none ]]; then
  if [[ -z "${FAULTS_POSTGRES_URL:-}" ]] && command -v psql >/dev/null; then
    psql postgresql://postgres@127.0.0.1:5432/postgres -tAc "SELECT 1 FROM pg_database WHERE datname='legacy_app_faults'" | grep -q 1 \
      || psql postgresql://postgres@127.0.0.1:5432/postgres -qc "CREATE DATABASE legacy_app_faults"
  fi
  urls+=("$pg_url")
fi
exec "$VENV/bin/python" -m tools.drills "${urls[@]}"
