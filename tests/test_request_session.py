"""SkipEmptyCloseSession.close(): skips the work only when a session has nothing to close.

Every case runs on each database: whatever the session holds (a transaction, pending objects,
loaded objects), close() releases it exactly as Session.close() does.
"""
import pytest
from sqlalchemy import select, text

from legacy_app.db import migrate
from legacy_app.config import Settings
from legacy_app.config import HTTP_MIDDLEWARE
from legacy_app.database import create_engine_from
from legacy_app.sessions import SkipEmptyCloseSession, make_session_factory
from legacy_app.models import User

from .conftest import FAST_HASHING, count_rows


@pytest.fixture
def engine(database_url):
    engine = create_engine_from(Settings(database_url=database_url, **FAST_HASHING))
    migrate.upgrade(engine)  # the server databases were emptied by the database_url fixture
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine):
    return make_session_factory(engine)


def test_sessions_skip_an_empty_close_except_those_that_refuse_use_after_close(engine):
    assert isinstance(make_session_factory(engine)(), SkipEmptyCloseSession)
    assert not isinstance(make_session_factory(engine, HTTP_MIDDLEWARE)(), SkipEmptyCloseSession)


def test_closing_an_unused_session_does_no_work_and_leaves_it_usable(factory, engine):
    db = factory()
    identity_map = db.identity_map
    db.close()
    assert db.identity_map is identity_map  # the reset Session.close() does was skipped
    assert engine.pool.checkedout() == 0
    assert db.execute(text("SELECT 1")).scalar() == 1  # close() still allows reuse, as Session's does
    db.close()
    assert engine.pool.checkedout() == 0


def test_close_returns_the_connection_of_a_transaction_that_loaded_no_object(factory, engine):
    db = factory()
    db.execute(text("SELECT 1"))
    assert engine.pool.checkedout() == 1 and len(db.identity_map) == 0
    db.close()
    assert engine.pool.checkedout() == 0


def test_close_rolls_back_an_open_transaction_and_returns_its_connection(factory, engine, database_url):
    db = factory()
    db.add(User(email="uncommitted@example.com", hashed_password="x"))
    db.flush()
    assert engine.pool.checkedout() == 1
    db.close()
    assert engine.pool.checkedout() == 0
    assert count_rows(database_url, "users") == 0


def test_close_expunges_pending_objects_that_hold_no_connection(factory, engine, database_url):
    db = factory()
    user = User(email="pending@example.com", hashed_password="x")
    db.add(user)
    assert engine.pool.checkedout() == 0  # add() begins the session's transaction, not a connection's
    db.close()
    assert user not in db
    assert not db.new
    db.commit()  # nothing is left to write
    assert count_rows(database_url, "users") == 0


def test_close_detaches_objects_loaded_in_an_earlier_transaction(factory, engine):
    db = factory()
    db.add(User(email="loaded@example.com", hashed_password="x"))
    db.commit()
    user = db.execute(select(User)).scalar_one()
    db.commit()
    assert not db.in_transaction() and user in db
    db.close()
    assert user not in db
    assert len(db.identity_map) == 0
    assert engine.pool.checkedout() == 0
