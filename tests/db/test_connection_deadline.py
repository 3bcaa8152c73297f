"""A database that stops answering is a prompt 503, not a hang: statement timeouts on the server,
keepalives and tcp_user_timeout on PostgreSQL connections, socket timeouts on MariaDB ones, a
client-side deadline for a PostgreSQL peer that acknowledges but never answers, and a readiness
check with a timeout of its own."""
import logging
import threading
import time
from contextlib import contextmanager
from typing import List

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from legacy_app import compat
from legacy_app.config import ASGI_MIDDLEWARE, ConfigError, Settings
from legacy_app.db import connection_deadline
from legacy_app.db.connection_deadline import ANSWER_GRACE_SECONDS
from legacy_app.database import create_engine_from, for_maintenance
from legacy_app.main import create_app
from legacy_app.routers.health import READY_TIMEOUT_SECONDS
from tools.drills.tcp_proxy import TcpProxy

from ..conftest import FAST_HASHING, database_url_for, reset_database
from ..support.live_server import wait_until


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request, tmp_path) -> str:
    url = database_url_for(request.param, tmp_path)
    reset_database(url)
    return url


@pytest.fixture
def postgres_url(tmp_path) -> str:
    url = database_url_for("postgresql", tmp_path)
    reset_database(url)
    return url


@contextmanager
def engine_for(url: str, **settings: object):
    engine = create_engine_from(Settings(database_url=url, **settings))
    try:
        yield engine
    finally:
        engine.dispose()


def sleep_statement(url: str, seconds: float) -> str:
    return f"SELECT pg_sleep({seconds})" if make_url(url).get_backend_name() == "postgresql" else f"SELECT SLEEP({seconds})"


def servers_statement_timeout(connection) -> str:
    """The statement timeout the server applies to this connection, as PostgreSQL writes it ("10s")."""
    if connection.dialect.name == "postgresql":
        return connection.execute(text("SHOW statement_timeout")).scalar_one()
    return f"{float(connection.execute(text('SELECT @@max_statement_time')).scalar_one()):g}s"


def ended_by_the_servers_statement_timeout(error: OperationalError) -> bool:
    """The server ended the statement and said why: PostgreSQL's query_canceled, MariaDB's
    ER_STATEMENT_TIMEOUT ("max_statement_time exceeded"); the connection itself stays usable."""
    orig = error.orig
    if type(orig).__module__.startswith("pymysql"):
        return orig.args[:1] == (1969,) and not error.connection_invalidated
    return compat.sqlstate(orig) == "57014" and not error.connection_invalidated


@pytest.fixture
def cuts(monkeypatch) -> List[object]:
    """The connections the deadline watchdog cuts, recorded as it cuts them."""
    cut = connection_deadline._cut
    recorded: List[object] = []

    def recording_cut(dbapi_connection: object) -> None:
        recorded.append(dbapi_connection)
        cut(dbapi_connection)

    monkeypatch.setattr(connection_deadline, "_cut", recording_cut)
    return recorded


def test_the_server_ends_a_statement_that_runs_past_db_statement_timeout(server_url):
    with engine_for(server_url, statement_timeout=1) as engine, engine.connect() as connection:
        assert servers_statement_timeout(connection) == "1s"
        with pytest.raises(OperationalError) as raised:  # the error the handlers answer 503 to
            connection.execute(text(sleep_statement(server_url, 5)))
        # The server's timeout ended it, not the client's deadline (which would have cut the connection).
        assert ended_by_the_servers_statement_timeout(raised.value), raised.value
        assert not connection.invalidated


def test_statements_are_limited_to_10_seconds_by_default(server_url):
    with engine_for(server_url) as engine, engine.connect() as connection:
        assert servers_statement_timeout(connection) == "10s"


def test_zero_leaves_the_servers_statement_timeout(postgres_url):
    with engine_for(postgres_url, statement_timeout=0) as engine, engine.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "0"


def test_postgresql_connections_carry_keepalives_and_a_tcp_user_timeout(postgres_url):
    with engine_for(postgres_url) as engine, engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        # psycopg 3 lists the connection's parameters through info, psycopg2 through get_dsn_parameters().
        parameters = raw.info.get_parameters() if hasattr(raw.info, "get_parameters") else raw.get_dsn_parameters()
    assert {name: parameters.get(name) for name in ("keepalives", "keepalives_idle", "tcp_user_timeout")} == {
        "keepalives": "1", "keepalives_idle": "10", "tcp_user_timeout": "10000"}


def test_a_request_whose_statement_runs_out_of_time_is_503_and_the_service_goes_on(server_url):
    app = create_app(Settings(database_url=server_url, session_strategy=ASGI_MIDDLEWARE, statement_timeout=1, **FAST_HASHING))
    locker = create_engine_from(Settings(database_url=server_url))
    try:
        with TestClient(app) as client:
            user_id = client.post("/users/", json={"email": "kate@example.com", "password": "pw"}).json()["id"]
            db = Session(bind=locker)
            if locker.dialect.name == "postgresql":
                db.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
            else:
                db.execute(text("LOCK TABLES users WRITE"))
            try:
                # Waits for the lock until its statement's time runs out: answered while the lock is
                # still held, so the statement timeout ended the wait, not the lock's release.
                response = client.get(f"/users/{user_id}")
            finally:
                if locker.dialect.name == "mysql":
                    db.execute(text("UNLOCK TABLES"))
                db.rollback()
                db.close()
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            assert client.get(f"/users/{user_id}").status_code == 200
    finally:
        locker.dispose()
        app.state.engine.dispose()


@contextmanager
def served_through_a_proxy(postgres_url: str, statement_timeout: int):
    """(client, proxy, app): the service on PostgreSQL through a proxy the test can black-hole."""
    target = make_url(postgres_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(database_url=proxied, session_strategy=ASGI_MIDDLEWARE, statement_timeout=statement_timeout,
                        **FAST_HASHING)
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            yield client, proxy, app
    finally:
        proxy.restore()
        proxy.cut()
        app.state.engine.dispose()


@pytest.fixture
def black_holed(postgres_url):
    """The service through a proxy the test can black-hole, with a statement timeout of 2 s."""
    with served_through_a_proxy(postgres_url, statement_timeout=2) as (client, proxy, _app):
        yield client, proxy


NOT_READY_IN_TIME = {"detail": f"Database did not answer within {READY_TIMEOUT_SECONDS:g} s"}


@pytest.mark.slow
def test_readiness_answers_503_within_its_timeout_while_the_database_is_black_holed(black_holed):
    client, proxy = black_holed
    assert client.get("/health/ready").status_code == 200
    proxy.black_hole()
    response = client.get("/health/ready")
    # Its own timeout answered (the statement timeout, 2 s and a grace, would have said otherwise).
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json() == NOT_READY_IN_TIME


@pytest.mark.slow
def test_readiness_probes_during_a_partition_share_one_check_and_one_connection(postgres_url):
    # DB_STATEMENT_TIMEOUT=0, as behind PgBouncer: nothing cuts a silent connection, so a check
    # started per probe would each hold a thread and a connection for as long as the partition lasts.
    with served_through_a_proxy(postgres_url, statement_timeout=0) as (client, proxy, app):
        assert client.get("/health/ready").status_code == 200
        proxy.black_hole()
        for _ in range(3):
            response = client.get("/health/ready")
            assert response.status_code == 503 and response.json() == NOT_READY_IN_TIME  # each probe's own timeout
        assert app.state.engine.pool.checkedout() == 1  # the first probe's check, still waiting
        proxy.restore()  # what was held back arrives: the check ends and the next probe is ready
        wait_until(lambda: client.get("/health/ready").status_code == 200, timeout=10, message="readiness after the partition")
        assert app.state.engine.pool.checkedout() == 0


@pytest.mark.slow
def test_a_request_on_a_pooled_connection_is_503_within_the_deadlines_while_the_database_is_black_holed(
    black_holed, cuts, caplog
):
    client, proxy = black_holed
    user_id = client.post("/users/", json={"email": "kate@example.com", "password": "pw"}).json()["id"]
    assert client.get(f"/users/{user_id}").status_code == 200  # a connection now waits in the pool
    proxy.black_hole()
    caplog.set_level(logging.WARNING, logger="legacy_app")
    response = client.get(f"/users/{user_id}")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    # Its ping was cut by the deadline watchdog (PING_SECONDS), and the replacement's connect gave up
    # at its own timeout (CONNECT_TIMEOUT_SECONDS): the 503's log line names that timeout.
    assert len(cuts) == 1
    [warning] = [r.getMessage() for r in caplog.records if r.name == "legacy_app"]
    assert warning.startswith(f"503 for GET /users/{user_id}: database unreachable: ") and "timeout expired" in warning, warning
    proxy.restore()
    assert client.get(f"/users/{user_id}").status_code == 200  # no restart needed


def test_migrations_and_seeding_run_without_the_statement_timeout(server_url):
    # `db`, `seed` and the start-up migration use for_maintenance(): an index built on a large table
    # may rightly run longer than a request's statement.
    engine = create_engine_from(for_maintenance(Settings(database_url=server_url, statement_timeout=1)))
    try:
        with engine.connect() as connection:
            connection.execute(text(sleep_statement(server_url, 1 + ANSWER_GRACE_SECONDS + 0.5)))
    finally:
        engine.dispose()


def test_time_spent_between_answered_statements_is_not_cut(postgres_url):
    # The deadline covers the wait for an answer; a request may hold its connection longer than the
    # statement timeout while it works on what it got.
    with engine_for(postgres_url, statement_timeout=1) as engine, engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        time.sleep(1 + ANSWER_GRACE_SECONDS + 0.5)
        assert connection.execute(text("SELECT 2")).scalar() == 2


def test_a_statement_whose_answer_never_comes_is_cut_after_the_statement_timeout_and_a_second(postgres_url, cuts):
    target = make_url(postgres_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with engine_for(proxied, statement_timeout=2) as engine, engine.connect() as connection:
            statements_connection = connection.connection.dbapi_connection
            timer = threading.Timer(0.3, proxy.black_hole)  # the statement is on the server; its answer is held
            timer.start()
            with pytest.raises(OperationalError) as raised:
                connection.execute(text("SELECT pg_sleep(1)"))
            timer.join()
            # The watchdog cut it at the statement's deadline (DB_STATEMENT_TIMEOUT and ANSWER_GRACE_SECONDS):
            # the connection is lost, which the pool replaces and the handlers answer 503.
            assert cuts == [statements_connection]
            assert raised.value.connection_invalidated
    finally:
        proxy.restore()
        proxy.cut()


def test_db_statement_timeout_defaults_to_10_seconds_and_refuses_a_negative_value():
    assert Settings.from_env({}).statement_timeout == 10.0
    assert Settings.from_env({"DB_STATEMENT_TIMEOUT": "2.5"}).statement_timeout == 2.5
    with pytest.raises(ConfigError, match=r"^DB_STATEMENT_TIMEOUT must be a number of seconds from 0 \(off\) to 2147483; got -1.0$"):
        Settings.from_env({"DB_STATEMENT_TIMEOUT": "-1"})
