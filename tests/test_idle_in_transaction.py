"""The PostgreSQL backstop: a connection left idle inside a transaction is ended by the server."""
import time
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from legacy_app.config import Settings
from legacy_app.database import create_engine_from

from .conftest import database_url_for


@pytest.fixture
def postgres_url(tmp_path) -> str:
    return database_url_for("postgresql", tmp_path)


def server_setting(url: str, name: str, **settings: object) -> str:
    engine = create_engine_from(Settings(database_url=url, **settings))
    try:
        with engine.connect() as connection:
            return connection.execute(text(f"SHOW {name}")).scalar_one()
    finally:
        engine.dispose()


def test_connections_carry_a_60_second_idle_in_transaction_timeout_by_default(postgres_url):
    assert server_setting(postgres_url, "idle_in_transaction_session_timeout") == "1min"


def test_zero_leaves_the_servers_own_setting(postgres_url):
    assert server_setting(postgres_url, "idle_in_transaction_session_timeout", idle_in_transaction_timeout=0) == "0"


def test_options_already_in_the_url_are_kept(postgres_url):
    url = f"{postgres_url}?options={quote('-c statement_timeout=4000')}"
    assert server_setting(url, "statement_timeout", idle_in_transaction_timeout=1.5) == "4s"
    assert server_setting(url, "idle_in_transaction_session_timeout", idle_in_transaction_timeout=1.5) == "1500ms"


def test_a_transaction_left_idle_past_the_timeout_is_ended_by_the_server(postgres_url):
    engine = create_engine_from(Settings(database_url=postgres_url, idle_in_transaction_timeout=1))
    try:
        connection = engine.connect()
        transaction = connection.begin()
        backend_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        time.sleep(2.5)  # idle inside the transaction for longer than the 1 s timeout
        with pytest.raises(DBAPIError) as raised:
            connection.execute(text("SELECT 1"))
        assert "idle-in-transaction timeout" in str(raised.value) or raised.value.connection_invalidated
        with engine.connect() as observer:  # the server closed that session: its backend is gone
            alive = observer.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend_pid}
            ).scalar_one()
        assert alive == 0
        transaction.rollback()
        connection.close()
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()


def test_a_transaction_busy_for_longer_than_the_timeout_is_not_ended(postgres_url):
    # The timeout counts idle time inside a transaction, not the transaction's length.
    engine = create_engine_from(Settings(database_url=postgres_url, idle_in_transaction_timeout=1))
    try:
        with engine.connect() as connection, connection.begin():
            for _ in range(5):
                connection.execute(text("SELECT pg_sleep(0.5)"))  # 2.5 s in all, never 1 s idle
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
