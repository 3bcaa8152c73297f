"""SQLite file databases: the per-connection settings, and concurrent writers without lock errors."""
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from legacy_app import crud
from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.models import Base
from legacy_app.schemas import ItemCreate, UserCreate
from legacy_app.sessions import make_session_factory

from .conftest import CHEAP_HASHER


@pytest.fixture
def engine(tmp_path):
    engine = create_engine_from(Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}"))
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_every_connection_enforces_foreign_keys_uses_wal_and_waits_for_locks(engine):
    connections = [engine.connect() for _ in range(3)]  # three distinct pooled connections
    try:
        for connection in connections:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000
            assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    finally:
        for connection in connections:
            connection.close()


def test_an_item_for_a_missing_user_is_refused_by_the_database_itself(engine):
    with pytest.raises(IntegrityError):
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO items (title, owner_id) VALUES ('orphan', 12345)"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM items")).scalar() == 0


def test_sixteen_concurrent_read_then_write_transactions_never_hit_database_is_locked(engine):
    session_factory = make_session_factory(engine)
    with session_factory() as db:
        owner = crud.create_user(db, UserCreate(email="owner@example.com", password="x"), hasher=CHEAP_HASHER)
        owner_id = owner.id
    errors = []
    writes_per_thread = 25
    start = threading.Barrier(16)

    def writer(n: int) -> None:
        start.wait()
        for k in range(writes_per_thread):
            try:
                with session_factory() as db:
                    # Both read before they write: the case that fails at once without BEGIN IMMEDIATE.
                    new_user = UserCreate(email=f"w{n}-{k}@example.com", password="x")
                    assert crud.create_user(db, new_user, hasher=CHEAP_HASHER) is not None
                    assert crud.create_user_item(db, ItemCreate(title=f"{n}-{k}"), user_id=owner_id)
            except Exception as error:  # any failure is the finding; keep it for the assertion
                errors.append(repr(error))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM users")).scalar() == 1 + 16 * writes_per_thread
        assert connection.execute(text("SELECT COUNT(*) FROM items")).scalar() == 16 * writes_per_thread
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
    assert engine.pool.checkedout() == 0
