"""Scale-out: several workers over one database, pools sized against max_connections, no connection
shared across fork, and PgBouncer in transaction mode."""
import logging
import os
import re
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from legacy_app.db.capacity import ConnectionBudget, over_budget_warning, peak_connections, read_budget
from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.server.process import PACKAGE_PARENT
from legacy_app.server.client import http_session

from ..conftest import FAST_HASHING, count_rows, database_url_for, reset_database
from ..support.live_server import LiveServer, wait_until
from ..support.pgbouncer import PGBOUNCER, PgBouncer

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="postgresql: set TEST_POSTGRES_URL to a database the tests may empty")
needs_pgbouncer = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer not installed (apt install pgbouncer; .ci/run installs it)")
BACKEND_ID = {"postgresql": "SELECT pg_backend_pid()", "mariadb": "SELECT CONNECTION_ID()"}


# --- the sizing rule ------------------------------------------------------------------------------


def test_peak_is_workers_times_pool_size_plus_overflow():
    assert peak_connections(Settings(pool_size=5, max_overflow=10), workers=4) == 60


def test_no_warning_while_the_peak_fits_what_the_server_has_left():
    budget = ConnectionBudget("PostgreSQL", max_connections=100, reserved=3, in_use_by_others=7)  # 90 left
    assert budget.available == 90
    assert over_budget_warning(Settings(pool_size=5, max_overflow=10), 6, budget) is None  # exactly 90


def test_warning_names_the_numbers_and_the_fixes_when_the_peak_exceeds_it():
    budget = ConnectionBudget("PostgreSQL", max_connections=100, reserved=3, in_use_by_others=7)
    warning = over_budget_warning(Settings(pool_size=5, max_overflow=10), 7, budget)
    assert "7 worker(s) × (DB_POOL_SIZE 5 + DB_MAX_OVERFLOW 10) = 105 connections at peak" in warning
    assert "PostgreSQL has 90 left (max_connections 100 − 3 reserved − 7 open by other clients)" in warning
    assert "--workers" in warning and "PgBouncer" in warning


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_budget_is_read_from_the_server_and_counts_other_clients(kind, tmp_path):
    engine = create_engine_from(Settings(database_url=database_url_for(kind, tmp_path)))
    try:
        with engine.connect() as reader, engine.connect() as other:
            other.execute(text("SELECT 1"))
            budget = read_budget(reader)
            limit_query = "SHOW max_connections" if kind == "postgresql" else "SELECT @@max_connections"
            assert budget.max_connections == int(other.execute(text(limit_query)).scalar_one())
            assert budget.in_use_by_others >= 1  # at least `other`
            assert 0 < budget.available < budget.max_connections
    finally:
        engine.dispose()


def test_sqlite_has_no_connection_budget(tmp_path):
    engine = create_engine_from(Settings(database_url=f"sqlite:///{tmp_path / 'budget.db'}"))
    try:
        with engine.connect() as connection:
            assert read_budget(connection) is None
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.live
def test_serve_warns_at_start_when_pools_could_exceed_max_connections(kind, tmp_path):
    url = database_url_for(kind, tmp_path)
    with LiveServer({"DATABASE_URL": url, "DB_POOL_SIZE": "1000"}, tmp_path / "serve.log", app="cli", workers=2) as server:
        assert requests.get(f"{server.url}/health", timeout=30).status_code == 200  # a warning, not a refusal
    assert re.search(
        r"legacy_app: warning: 2 worker\(s\) × \(DB_POOL_SIZE 1000 \+ DB_MAX_OVERFLOW 10\) = 2020 connections "
        r"at peak, but \S+ has \d+ left \(max_connections \d+ ", server.log(),
    ), server.log()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.live
def test_serve_does_not_warn_when_default_pools_fit(kind, tmp_path):
    url = database_url_for(kind, tmp_path)
    with LiveServer({"DATABASE_URL": url}, tmp_path / "serve.log", app="cli", workers=2) as server:
        assert requests.get(f"{server.url}/health", timeout=30).status_code == 200
    assert "warning" not in server.log()


@pytest.mark.server
def test_several_workers_refuse_an_in_memory_sqlite_database():
    completed = subprocess.run(
        [sys.executable, "-m", "legacy_app", "serve", "--workers", "2"],
        env={**os.environ, "DATABASE_URL": "sqlite://", "PYTHONPATH": str(PACKAGE_PARENT)},
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 1  # a configuration error, like every other one (docs/command-line.md)
    assert "in-memory SQLite database cannot be shared by several workers" in completed.stderr


@pytest.mark.live
def test_serve_with_two_workers_migrates_once_in_the_parent_and_not_in_the_workers(tmp_path):
    """Every migration on start logs "schema upgraded on start" (the app's start-up at info, which
    serve's workers log): one line from serve itself, none from its two workers."""
    url = f"sqlite:///{tmp_path / 'once.db'}"
    with LiveServer({"DATABASE_URL": url}, tmp_path / "serve.log", app="cli", workers=2) as server:
        server.wait_for_every_worker()
        assert requests.get(f"{server.url}/users/", timeout=30).status_code == 200
    log = server.log()
    assert log.count("schema upgraded on start") == 1, log
    assert "legacy_app: schema upgraded on start: now 0003 (head), was none" in log  # serve's own line


def test_the_app_that_migrates_at_start_up_logs_it(tmp_path, caplog):
    """What a worker would log had it migrated too (the line the test above counts)."""
    from fastapi.testclient import TestClient

    from legacy_app.main import create_app

    caplog.set_level(logging.INFO, logger="legacy_app")
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", **FAST_HASHING))
    with TestClient(app):
        pass
    app.state.engine.dispose()
    assert "schema upgraded on start: now 0003 (head), was none" in [record.getMessage() for record in caplog.records]


def test_a_start_that_finds_the_schema_at_head_says_nothing_was_upgraded(tmp_path, caplog):
    from fastapi.testclient import TestClient

    from legacy_app.main import create_app

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", **FAST_HASHING)
    for _ in range(2):
        caplog.clear()
        caplog.set_level(logging.INFO, logger="legacy_app")
        app = create_app(settings)
        with TestClient(app):
            pass
        app.state.engine.dispose()
    assert [r.getMessage() for r in caplog.records if "on start" in r.getMessage()] == [
        "schema at 0003 (head) on start: nothing to upgrade"]


# --- fork safety ----------------------------------------------------------------------------------

FORK_SCRIPT = """
import os, sys
from sqlalchemy import text
from legacy_app.config import Settings
from legacy_app.database import create_engine_from

engine = create_engine_from(Settings(database_url=sys.argv[1]))
backend_id = text(sys.argv[2])
with engine.connect() as connection:  # the pool now holds one connection
    parent_id = connection.execute(backend_id).scalar()
read_end, write_end = os.pipe()
child = os.fork()
if child == 0:
    with engine.connect() as connection:
        os.write(write_end, str(connection.execute(backend_id).scalar()).encode())
    os._exit(0)
os.waitpid(child, 0)
child_id = int(os.read(read_end, 64))
with engine.connect() as connection:
    parent_again = connection.execute(backend_id).scalar()
print(parent_id, child_id, parent_again)
"""


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
@pytest.mark.server
def test_forked_child_opens_its_own_connection_and_leaves_the_parents_intact(kind, tmp_path):
    url = database_url_for(kind, tmp_path)
    completed = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, url, BACKEND_ID[kind]],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)}, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    parent_id, child_id, parent_again = completed.stdout.split()
    assert child_id != parent_id  # a new server connection, not the parent's socket
    assert parent_again == parent_id  # the parent's pooled connection still works


# --- several workers under load -------------------------------------------------------------------


def drive_reads_and_writes(port: int, clients: int = 8, rounds: int = 10) -> List[int]:
    """Each client registers users, adds items and reads them back; returns every status."""

    def one_client(number: int) -> List[int]:
        session, statuses, url = http_session(), [], f"http://127.0.0.1:{port}"
        for round_number in range(rounds):
            email = f"worker-load-{number}-{round_number}-{uuid.uuid4().hex[:6]}@example.com"
            created = session.post(f"{url}/users/", json={"email": email, "password": "load-pass"}, timeout=60)
            statuses.append(created.status_code)
            if created.status_code != 200:
                continue
            user_id = created.json()["id"]
            statuses.append(session.post(f"{url}/users/{user_id}/items/", json={"title": "t"}, timeout=60).status_code)
            for path in (f"/users/{user_id}", "/users/?limit=100", "/items/?limit=100"):
                statuses.append(session.get(url + path, timeout=60).status_code)
            session.close()  # a new connection each round: the workers share the accepting

        return statuses

    with ThreadPoolExecutor(clients) as pool:
        return [status for statuses in pool.map(one_client, range(clients)) for status in statuses]


class ConnectionSampler:
    """Counts, every 50 ms, the server connections carrying one application_name."""

    def __init__(self, admin_url: str, application_name: str) -> None:
        self.engine = create_engine_from(Settings(database_url=admin_url))
        self.application_name = application_name
        self.samples: List[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": self.application_name},
            ).scalar_one()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(self.count())

    def __enter__(self) -> "ConnectionSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def dispose(self) -> None:
        self.engine.dispose()


def named(url: str, application_name: str) -> str:
    return make_url(url).update_query_dict({"application_name": application_name}).render_as_string(hide_password=False)


POOL_SIZE, MAX_OVERFLOW, CLIENTS, ROUNDS = 3, 2, 8, 10


def run_two_workers_under_load(
    database_url: str, tmp_path: Path, extra_env: Dict[str, str], after_load: Callable[[], None] = lambda: None
) -> None:
    """Serve with 2 workers, drive concurrent reads and writes, stop with SIGTERM; every request 200."""
    env = {"DATABASE_URL": database_url, "DB_POOL_SIZE": str(POOL_SIZE), "DB_MAX_OVERFLOW": str(MAX_OVERFLOW), **extra_env}
    with LiveServer(env, tmp_path / "serve.log", app="cli", workers=2) as server:
        server.wait_for_every_worker()
        statuses = drive_reads_and_writes(server.port, CLIENTS, ROUNDS)
        after_load()
    assert server.process.returncode == 0  # SIGTERM: both workers stopped gracefully
    assert len(statuses) == CLIENTS * ROUNDS * 5
    assert set(statuses) == {200}, sorted(set(statuses))
    workers_seen = set(re.findall(r"\[(\d+)\] legacy_app\.request: method=", server.log()))
    assert len(workers_seen) == 2, "both workers served requests"
    assert "Traceback" not in server.log()


@needs_postgres
@pytest.mark.live
@pytest.mark.postgres
def test_two_workers_on_postgresql_serve_concurrent_reads_and_writes_with_no_error_or_leftover(tmp_path):
    reset_database(POSTGRES_URL)
    application_name = f"legacy_app_test_{uuid.uuid4().hex[:8]}"
    sampler = ConnectionSampler(POSTGRES_URL, application_name)
    held_after_load: List[int] = []
    try:
        with sampler:
            run_two_workers_under_load(
                named(POSTGRES_URL, application_name), tmp_path, {}, after_load=lambda: held_after_load.append(sampler.count())
            )
        wait_until(lambda: sampler.count() == 0, timeout=10, message="no connection left behind")
    finally:
        sampler.dispose()
    limit = 2 * (POOL_SIZE + MAX_OVERFLOW)
    assert 2 <= held_after_load[0] <= limit  # each worker keeps its own pooled connections
    assert max(sampler.samples) <= limit
    assert count_rows(POSTGRES_URL, "users") == count_rows(POSTGRES_URL, "items") == CLIENTS * ROUNDS


# --- PgBouncer in transaction mode ----------------------------------------------------------------


# PgBouncer 1.18 refuses libpq's `options` startup parameter, which carries the
# idle_in_transaction_session_timeout and statement_timeout backstops: behind it, those are set on the server instead.
NO_STARTUP_OPTIONS = {"idle_in_transaction_timeout": 0, "statement_timeout": 0}


@pytest.fixture
def pgbouncer():
    if not POSTGRES_URL:
        pytest.skip("postgresql: set TEST_POSTGRES_URL to a database the tests may empty")
    if PGBOUNCER is None:
        pytest.skip("pgbouncer not installed (apt install pgbouncer; .ci/run installs it)")
    bouncer = PgBouncer(POSTGRES_URL).start()
    yield bouncer
    bouncer.stop()


@pytest.mark.parametrize("prepared_statements", [True, False])
@pytest.mark.server
@pytest.mark.postgres
def test_psycopg_prepared_statements_fail_behind_transaction_pooling_unless_turned_off(pgbouncer, prepared_statements):
    engine = create_engine_from(Settings(
        database_url=pgbouncer.url(), prepared_statements=prepared_statements, **NO_STARTUP_OPTIONS))
    failures = 0
    try:
        connections = [engine.connect() for _ in range(6)]
        for round_number in range(10):  # psycopg 3 prepares a statement on its 6th run on a connection
            for connection in connections:
                try:
                    with connection.begin():  # one transaction: PgBouncer may pick another server connection next
                        connection.execute(text("SELECT :n + 1"), {"n": round_number}).scalar_one()
                except Exception:  # "prepared statement "_pg3_0" already exists" / "does not exist"
                    failures += 1
        for connection in connections:
            connection.close()
    finally:
        engine.dispose()
    prepares = engine.dialect.driver == "psycopg" and prepared_statements  # psycopg2 never prepares
    assert (failures > 0) == prepares, f"{failures} failures, driver {engine.dialect.driver}"


@pytest.mark.live
@pytest.mark.postgres
def test_two_workers_behind_pgbouncer_serve_load_with_no_error(pgbouncer, tmp_path):
    reset_database(POSTGRES_URL)
    run_two_workers_under_load(
        pgbouncer.url(), tmp_path,
        {"DB_PREPARED_STATEMENTS": "false", "DB_IDLE_IN_TRANSACTION_TIMEOUT": "0", "DB_STATEMENT_TIMEOUT": "0"})
    assert count_rows(POSTGRES_URL, "users") == count_rows(POSTGRES_URL, "items") == CLIENTS * ROUNDS


@pytest.mark.server
@pytest.mark.postgres
def test_pgbouncer_refuses_the_idle_in_transaction_startup_option_with_a_message_naming_it(pgbouncer):
    engine = create_engine_from(Settings(database_url=pgbouncer.url()))  # the default: 60 s
    try:
        with pytest.raises(OperationalError, match="unsupported startup parameter: options"):
            engine.connect()
    finally:
        engine.dispose()
