"""Fixtures: real databases (SQLite file, PostgreSQL, MariaDB), apps per strategy, live servers.

PostgreSQL and MariaDB run when TEST_POSTGRES_URL / TEST_MARIADB_URL name a database the tests
may empty; otherwise those cases are skipped with the reason shown by `pytest -rs`.

`settings`, `app` and `client` are the service on SQLite under the default session strategy. A test
that asks for `database_url` (as an argument, through a fixture, or with EVERY_DATABASE) runs on each
database, one that asks for `strategy` (or has EVERY_STRATEGY) under each strategy, and its app with
them: the matrix is for tests whose subject is the database or the session strategy.

Marks follow what a test needs (pyproject.toml describes each): pytest_collection_modifyitems adds
`postgres` and `mariadb` from a test's database parameter, `live` to the users of the live-server
fixture, and `server` to every `live` or `browser` test; modules and tests mark the rest themselves.
"""
import json
import os
from typing import Callable, Iterator

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from legacy_app.db import migrate
from legacy_app.config import ARGON2_MIN_MEMORY_KIB, ARGON2_MIN_TIME_COST, FLOOR_HASHING_ENV, STRATEGIES, Settings
from legacy_app.database import create_engine_from
from legacy_app.main import create_app
from legacy_app.models import Base

from .support.live_server import LiveServer

SERVER_DATABASES = {"postgresql": "TEST_POSTGRES_URL", "mariadb": "TEST_MARIADB_URL"}
DATABASES = ("sqlite",) + tuple(SERVER_DATABASES)

# The OWASP floor: the cheapest parameters the service accepts, so tests stay fast.
FAST_HASHING = {"argon2_time_cost": ARGON2_MIN_TIME_COST, "argon2_memory_kib": ARGON2_MIN_MEMORY_KIB, "argon2_parallelism": 1}
# Far below that floor, for crud calls in tests whose subject is not the hash (hundreds of writes).
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def database_url_for(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    variable = SERVER_DATABASES[kind]
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{kind}: set {variable} to a database the tests may empty")
    return url


_migrated = set()


def reset_database(url: str) -> None:
    """Migrate (once per run) and empty the tables, so a test starts from nothing."""
    engine = create_engine_from(Settings(database_url=url))
    try:
        if url not in _migrated:
            migrate.upgrade(engine)
            _migrated.add(url)
        with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path) -> str:
    url = database_url_for(request.param, tmp_path)
    if request.param != "sqlite":
        reset_database(url)
    return url


@pytest.fixture(params=STRATEGIES)
def strategy(request) -> str:
    return request.param


# A module's `pytestmark`, or a test's decorator, where the database or the strategy is the subject.
EVERY_DATABASE = pytest.mark.usefixtures("database_url")
EVERY_STRATEGY = pytest.mark.usefixtures("strategy")
DEFAULT_STRATEGY = Settings().session_strategy


def requested(request, name: str, default: str) -> str:
    """Fixture `name`'s value for a test that asks for it (so it runs once per parameter), else `default`."""
    return request.getfixturevalue(name) if name in request.fixturenames else default


@pytest.fixture
def settings(request, tmp_path) -> Settings:
    """SQLite and the default strategy, or the database and strategy the test asks for."""
    return Settings(
        database_url=requested(request, "database_url", database_url_for("sqlite", tmp_path)),
        session_strategy=requested(request, "strategy", DEFAULT_STRATEGY),
        **FAST_HASHING,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:  # `with` runs startup: the schema is created
        yield test_client


@pytest.fixture
def live_server_factory(tmp_path) -> Iterator[Callable[..., LiveServer]]:
    """Starts the service with these environment variables; every server started is stopped at teardown."""
    servers = []

    def start(**env: str) -> LiveServer:
        server = LiveServer(env, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def env_for_hashing() -> dict:
    return dict(FLOOR_HASHING_ENV)


def count_rows(url: str, table: str) -> int:
    engine = create_engine_from(Settings(database_url=url))
    try:
        with engine.connect() as connection:
            return connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def post_raw(client: TestClient, path: str, content: bytes, content_type: str):
    """POST raw bytes: requests (Starlette 0.20's TestClient) takes data=, httpx2 takes content=."""
    try:
        import requests

        if isinstance(client, requests.Session):
            return client.post(path, data=content, headers={"content-type": content_type})
    except ImportError:
        pass
    return client.post(path, content=content, headers={"content-type": content_type})


def post_json(client: TestClient, path: str, body: object):
    """POST JSON as the wire carries it: ASCII with \\u escapes, so lone surrogates can be sent too."""
    return post_raw(client, path, json.dumps(body).encode("ascii"), "application/json")


def drop_everything(engine) -> None:
    """No table at all, the version table included."""
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture
def empty_engine(database_url):
    """An engine on a database with no table; left migrated to head, as the other tests expect it."""
    engine = create_engine_from(Settings(database_url=database_url))
    drop_everything(engine)
    yield engine
    drop_everything(engine)
    migrate.upgrade(engine)
    engine.dispose()


# A test's parameter value (database_url's, or a module's own database fixture's) -> the mark it gets.
DATABASE_MARKS = {"postgresql": "postgres", "mariadb": "mariadb"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by them
def pytest_collection_modifyitems(items) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        params = item.callspec.params.values() if hasattr(item, "callspec") else ()
        kinds = {value for value in params if isinstance(value, str) and value in DATABASE_MARKS}
        if "postgres_url" in fixtures:
            kinds.add("postgresql")
        for kind in sorted(kinds):
            item.add_marker(DATABASE_MARKS[kind])
        if "live_server_factory" in fixtures:
            item.add_marker("live")
        if item.get_closest_marker("live") or item.get_closest_marker("browser"):
            item.add_marker("server")
