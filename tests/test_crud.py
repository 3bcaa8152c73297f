"""The tutorial's crud functions, hardened: ORM objects, loaded in full, each a whole transaction.

Every case runs on each database, with the service's own sessionmaker (database.SessionLocal's).
"""
import threading
from typing import Iterator, List

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from legacy_app import crud, models, schemas

from legacy_app.db import migrate
from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.sessions import make_session_factory

from .conftest import CHEAP_HASHER, FAST_HASHING, count_rows


class StatementLog:
    """Every statement the engine runs, so a test can count them."""

    def __init__(self, engine) -> None:
        self.statements: List[str] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _connection, _cursor, statement, *_args) -> None:
        self.statements.append(statement)

    def selects(self) -> int:
        return sum(1 for statement in self.statements if statement.lstrip().upper().startswith("SELECT"))

    def count_during(self, action) -> int:
        before = len(self.statements)
        action()
        return len(self.statements) - before


@pytest.fixture
def engine(database_url):
    engine = create_engine_from(Settings(database_url=database_url, **FAST_HASHING))
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine) -> Iterator[Session]:
    session = make_session_factory(engine)()
    yield session
    session.close()


def register(db: Session, email: str, items: int = 0) -> models.User:
    user = crud.create_user(db, schemas.UserCreate(email=email, password="pw"), hasher=CHEAP_HASHER)
    for n in range(items):
        crud.create_user_item(db, schemas.ItemCreate(title=f"item {n}"), user_id=user.id)
    return user


def read_everything(users: List[models.User]) -> list:
    """What response_model reads of each user, as the routes serialise them."""
    return [
        (user.email, user.id, user.is_active, [(i.title, i.description, i.id, i.owner_id) for i in user.items])
        for user in users
    ]


def test_each_function_returns_orm_objects(db):
    user = register(db, "a@example.com", items=1)
    assert isinstance(user, models.User)
    assert isinstance(crud.get_user(db, user.id), models.User)
    assert isinstance(crud.get_user_by_email(db, "a@example.com"), models.User)
    assert all(isinstance(u, models.User) for u in crud.get_users(db))
    assert all(isinstance(i, models.Item) for i in crud.get_items(db))
    assert crud.get_user(db, 999_999) is None
    assert crud.get_user_by_email(db, "nobody@example.com") is None


def test_each_function_ends_its_transaction_and_returns_its_connection(db, engine):
    user = register(db, "a@example.com", items=1)
    calls = [
        lambda: crud.get_user(db, user.id),
        lambda: crud.get_user_by_email(db, "a@example.com"),
        lambda: crud.get_users(db, skip=0, limit=10),
        lambda: crud.get_users_with_email(db, "A@example.com"),
        lambda: crud.get_items(db, skip=0, limit=10),
        lambda: crud.create_user_item(db, schemas.ItemCreate(title="t"), user_id=user.id),
        lambda: crud.create_user_item(db, schemas.ItemCreate(title="t"), user_id=999_999),
        lambda: register(db, "b@example.com"),
        lambda: register(db, "B@example.com"),  # refused: the rollback ends it too
    ]
    for call in calls:
        call()
        assert not db.in_transaction()
        assert engine.pool.checkedout() == 0


def test_what_a_function_returns_is_loaded_in_full_and_reading_it_runs_no_query(db, engine):
    first = register(db, "user0@example.com", items=2)
    for n in range(1, 3):
        register(db, f"user{n}@example.com", items=2)
    log = StatementLog(engine)
    users = [
        crud.get_user(db, first.id),
        crud.get_user_by_email(db, "user1@example.com"),
        *crud.get_users(db),
        *crud.get_users_with_email(db, "user2@example.com"),
    ]
    assert log.count_during(lambda: read_everything(users)) == 0
    items = crud.get_items(db)
    assert log.count_during(lambda: [(i.title, i.description, i.id, i.owner_id) for i in items]) == 0
    new_user = register(db, "new@example.com")
    assert log.count_during(lambda: read_everything([new_user])) == 0


def test_a_page_of_users_costs_two_statements_whatever_its_size_and_a_user_one(db, engine):
    for n in range(5):
        register(db, f"user{n}@example.com", items=3)
    log = StatementLog(engine)
    page = crud.get_users(db)
    assert len(page) == 5 and log.selects() == 2
    log.statements.clear()
    crud.get_user(db, page[0].id)
    assert log.selects() == 1


def test_a_user_read_again_in_the_same_session_comes_with_its_new_items(db):
    user = register(db, "a@example.com")
    assert crud.get_user(db, user.id).items == []
    crud.create_user_item(db, schemas.ItemCreate(title="later"), user_id=user.id)
    assert [i.title for i in crud.get_user(db, user.id).items] == ["later"]
    assert [i.title for i in crud.get_users(db)[0].items] == ["later"]


def test_create_user_stores_an_argon2id_hash_with_the_configured_parameters(db):
    hasher = CHEAP_HASHER
    user = crud.create_user(db, schemas.UserCreate(email="a@example.com", password="s3cret"), hasher=hasher)
    assert user.hashed_password.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert "s3cret" not in user.hashed_password
    assert hasher.verify(user.hashed_password, "s3cret")


def test_a_duplicate_email_in_any_case_is_none_and_stores_nothing(db, database_url):
    register(db, "kate@example.com")
    duplicate = crud.create_user(db, schemas.UserCreate(email="KATE@example.com", password="x"), hasher=CHEAP_HASHER)
    assert duplicate is None
    assert count_rows(database_url, "users") == 1


def test_of_two_concurrent_registrations_of_one_email_exactly_one_succeeds(engine, database_url):
    factory = make_session_factory(engine)
    start = threading.Barrier(8)
    outcomes = []

    def attempt() -> None:
        with factory() as db:
            start.wait()
            user = crud.create_user(db, schemas.UserCreate(email="race@example.com", password="x"), hasher=CHEAP_HASHER)
            outcomes.append(user is not None)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]
    assert count_rows(database_url, "users") == 1


def test_an_item_for_a_missing_user_is_none_and_stores_nothing(db, database_url):
    assert crud.create_user_item(db, schemas.ItemCreate(title="orphan"), user_id=999_999) is None
    assert count_rows(database_url, "items") == 0


def test_emails_are_looked_up_in_any_case(db):
    user = register(db, "mixed.case@example.com")
    assert crud.get_user_by_email(db, "Mixed.Case@EXAMPLE.com").id == user.id
    assert [u.id for u in crud.get_users_with_email(db, "MIXED.case@example.com")] == [user.id]
