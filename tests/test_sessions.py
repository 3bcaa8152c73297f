"""The public session API (legacy_app.sessions) in an app written like our users' own: their engine,
their sessionmaker, their routes; the middleware added in one line.

The service's strategies are pinned in test_session_lifecycle.py; the same middleware on pinned
FastAPI 0.65-to-current environments, installed from the wheel, in test_stacks.py.
"""
import json
import os
import subprocess
import sys
from typing import Iterator, List

import anyio
import pytest
import sqlalchemy
from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, String, create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, declarative_base, sessionmaker
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool
from starlette.responses import StreamingResponse

import legacy_app.sessions
from legacy_app.compat import driver_url
from legacy_app.sessions import AsyncDBSessionMiddleware, DBSessionMiddleware, SessionMiddlewareMissing, get_db

from .support.live_server import REPO_ROOT

SQLALCHEMY_2 = not sqlalchemy.__version__.startswith("1.")
UserBase = declarative_base()


class Note(UserBase):  # a table of the user's app, not of the service
    __tablename__ = "public_api_notes"
    id = Column(Integer, primary_key=True)
    text = Column(String(50), nullable=False)


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    # QueuePool: SQLAlchemy 1.4 gives a SQLite file a NullPool, which keeps no count of what is out
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}", connect_args={"check_same_thread": False},
                           poolclass=QueuePool)
    UserBase.metadata.create_all(engine)
    yield engine
    engine.dispose()


def users_app(session_factory, **middleware_options) -> FastAPI:
    """The tutorial's shape: routes ask for get_db; a background task and a streamed body use the session."""
    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, session_factory=session_factory, **middleware_options)
    app.state.sessions = []

    def remember(db: Session) -> Session:
        app.state.sessions.append(db)
        return db

    @app.post("/notes")
    def add_note(background_tasks: BackgroundTasks, db: Session = Depends(get_db)):
        db.add(Note(text="from the route"))
        db.commit()
        background_tasks.add_task(add_later, remember(db))
        return {"ok": True}

    def add_later(db: Session) -> None:
        db.add(Note(text="from the background task"))
        db.commit()

    @app.get("/notes/export")
    def export(db: Session = Depends(get_db)):
        remember(db)

        def rows():
            yield "["
            for position, (text_,) in enumerate(db.execute(select(Note.text).order_by(Note.id))):
                yield ("," if position else "") + json.dumps(text_)
            yield "]"

        return StreamingResponse(rows(), media_type="application/json")

    @app.get("/ping")
    async def ping(request: Request):
        db = remember(getattr(request.state, middleware_options.get("state_attribute", "db")))
        app.state.identity_map_in_the_request = db.identity_map
        return {"ok": True}

    return app


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
    )


HOSTILE_ENV = {"DATABASE_URL": "postgres://nobody@nowhere/x", "SESSION_STRATEGY": "nonsense", "DB_POOL_SIZE": "-3"}


def test_the_public_api_is_what_all_names():
    assert sorted(legacy_app.sessions.__all__) == [
        "AsyncDBSessionMiddleware", "DBSessionMiddleware", "SessionMiddlewareMissing", "get_db",
    ]


@pytest.mark.parametrize("module", ["legacy_app.sessions", "legacy_app.database"])
@pytest.mark.server
def test_importing_the_session_modules_reads_no_setting_builds_no_engine_and_never_exits(module):
    result = run_python(
        f"import sys, {module}\n"
        "import legacy_app.database as database\n"
        "print(sorted(name for name in sys.modules if name.startswith('legacy_app')))\n"
        "print(database._built, 'alembic' in sys.modules, 'argon2' in sys.modules, 'prometheus_client' in sys.modules)",
        **HOSTILE_ENV,
    )
    assert result.returncode == 0, result.stderr
    loaded, built = result.stdout.splitlines()
    assert "legacy_app.main" not in loaded
    assert built == "{} False False False"  # no engine, none of the service's libraries


@pytest.mark.server
def test_importing_the_public_api_loads_nothing_of_the_service_but_its_strategy_names():
    result = run_python("import sys, legacy_app.sessions\n"
                        "print(sorted(name for name in sys.modules if name.startswith('legacy_app')))", **HOSTILE_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['legacy_app', 'legacy_app.config', 'legacy_app.sessions']"


@pytest.mark.server
def test_the_service_module_still_refuses_a_bad_setting_in_one_line():
    result = run_python("import legacy_app.main", **HOSTILE_ENV)
    assert result.returncode == 1
    assert result.stderr.startswith("legacy_app: configuration error: ") and result.stderr.count("\n") == 1


def test_background_task_and_streamed_body_use_the_session_before_it_closes(engine):
    app = users_app(sessionmaker(autocommit=False, autoflush=False, bind=engine))
    with TestClient(app) as client:
        assert client.post("/notes").status_code == 200
        exported = client.get("/notes/export")
    assert exported.json() == ["from the route", "from the background task"]  # the body whole, the task ran
    assert engine.pool.checkedout() == 0
    assert all(not db.in_transaction() and not db.identity_map for db in app.state.sessions)  # closed


def test_a_route_that_raises_still_gets_its_session_closed(engine):
    factory = sessionmaker(bind=engine)
    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, session_factory=factory)
    opened: List[Session] = []

    @app.get("/fails")
    def fails(db: Session = Depends(get_db)):
        db.execute(text("SELECT 1"))
        opened.append(db)
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/fails").status_code == 500
    assert engine.pool.checkedout() == 0 and not opened[0].in_transaction()


def test_state_attribute_names_where_the_session_is_put(engine):
    app = users_app(sessionmaker(bind=engine), state_attribute="session")
    with TestClient(app) as client:
        assert client.get("/ping").status_code == 200
    assert isinstance(app.state.sessions[0], Session)


def test_get_db_without_the_middleware_names_the_fix():
    app = FastAPI()

    @app.get("/")
    def index(db: Session = Depends(get_db)):
        return {}

    with TestClient(app) as client, pytest.raises(SessionMiddlewareMissing, match="add_middleware.DBSessionMiddleware"):
        client.get("/")


# --- the close policy: an empty session of SQLAlchemy's own class is left as it is --------------------


def test_an_empty_plain_session_is_not_closed_again_for_nothing(engine):
    app = users_app(sessionmaker(bind=engine))
    with TestClient(app) as client:
        client.get("/ping")
    (db,) = app.state.sessions
    # close() replaces the identity map: the one the route saw means close() was skipped
    assert db.identity_map is app.state.identity_map_in_the_request


def test_a_session_class_that_overrides_close_is_always_closed(engine):
    closes = []

    class CountingSession(Session):
        def close(self) -> None:
            closes.append(self)
            super().close()

    app = users_app(sessionmaker(bind=engine, class_=CountingSession))
    with TestClient(app) as client:
        client.get("/ping")
    assert closes == app.state.sessions


def test_a_wrapped_session_close_is_always_called(engine, monkeypatch):
    """Instrumentation (the doctor's, OpenTelemetry's) wraps Session.close: it must see every close."""
    closes = []
    original = Session.close

    def wrapped(self):
        closes.append(self)
        original(self)

    monkeypatch.setattr(Session, "close", wrapped)
    app = users_app(sessionmaker(bind=engine))
    with TestClient(app) as client:
        client.get("/ping")
    assert closes == app.state.sessions


@pytest.mark.skipif(not SQLALCHEMY_2, reason="close_resets_only is SQLAlchemy 2.0's")
def test_a_session_made_to_refuse_use_once_closed_is_closed(engine):
    app = users_app(sessionmaker(bind=engine, close_resets_only=False))
    with TestClient(app) as client:
        client.get("/ping")
    with pytest.raises(sqlalchemy.exc.InvalidRequestError):
        app.state.sessions[0].execute(text("SELECT 1"))


# --- cancellation: the close is shielded ------------------------------------------------------------


async def cancel_while_the_app_holds_a_connection(middleware, opened: list) -> None:
    holding = anyio.Event()

    async def app(scope, receive, send):
        db = scope["state"]["db"]
        opened.append(db)
        result = db.execute(text("SELECT 1"))
        if hasattr(result, "__await__"):
            await result
        holding.set()
        await anyio.sleep(30)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(middleware(app), {"type": "http"}, None, None)
        await holding.wait()
        tasks.cancel_scope.cancel()


def test_a_cancelled_request_still_returns_its_connection(engine):
    opened: list = []
    factory = sessionmaker(bind=engine)
    anyio.run(cancel_while_the_app_holds_a_connection,
              lambda app: DBSessionMiddleware(app, session_factory=factory), opened)
    assert engine.pool.checkedout() == 0 and not opened[0].in_transaction()


# --- AsyncDBSessionMiddleware -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def async_engine(request, tmp_path):
    from sqlalchemy.ext.asyncio import create_async_engine

    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'async.db'}"
    elif os.environ.get("TEST_POSTGRES_URL"):
        url = sqlalchemy.engine.make_url(os.environ["TEST_POSTGRES_URL"]).set(drivername="postgresql+asyncpg")
    else:
        pytest.skip("postgresql: set TEST_POSTGRES_URL to a database the tests may empty")
    sync_url = f"sqlite:///{tmp_path / 'async.db'}" if request.param == "sqlite" else driver_url(os.environ["TEST_POSTGRES_URL"])
    sync_engine = create_engine(sync_url)
    UserBase.metadata.drop_all(sync_engine)
    UserBase.metadata.create_all(sync_engine)
    try:
        yield create_async_engine(url, poolclass=AsyncAdaptedQueuePool)
    finally:  # the service's own tests check that its database holds its tables and no other
        UserBase.metadata.drop_all(sync_engine)
        sync_engine.dispose()


def async_users_app(session_factory) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AsyncDBSessionMiddleware, session_factory=session_factory)
    app.state.sessions = []

    async def get_async_db(request: Request):
        app.state.sessions.append(request.state.db)
        return request.state.db

    @app.post("/notes")
    async def add_note(background_tasks: BackgroundTasks, db=Depends(get_async_db)):
        db.add(Note(text="from the route"))
        await db.commit()
        background_tasks.add_task(add_later, db)
        return {"ok": True}

    async def add_later(db) -> None:
        db.add(Note(text="from the background task"))
        await db.commit()

    @app.get("/notes/export")
    async def export(db=Depends(get_async_db)):
        async def rows():
            yield "["
            result = await db.stream(select(Note.text).order_by(Note.id))
            position = 0
            async for (text_,) in result:
                yield ("," if position else "") + json.dumps(text_)
                position += 1
            yield "]"

        return StreamingResponse(rows(), media_type="application/json")

    return app


def test_async_sessions_serve_the_background_task_and_the_streamed_body_then_close(async_engine):
    from sqlalchemy.ext.asyncio import AsyncSession

    app = async_users_app(sessionmaker(async_engine, class_=AsyncSession, expire_on_commit=False))
    with TestClient(app) as client:
        assert client.post("/notes").status_code == 200
        exported = client.get("/notes/export")
        assert exported.json() == ["from the route", "from the background task"]
        assert async_engine.pool.checkedout() == 0
        assert all(not db.in_transaction() for db in app.state.sessions)
    anyio.run(async_engine.dispose)


def test_a_cancelled_async_request_still_returns_its_connection_whole(async_engine):
    """Unshielded, the close is cut at its first await and the pool throws the connection away."""
    from sqlalchemy.ext.asyncio import AsyncSession

    opened: list = []
    pool_events: List[str] = []
    for name in ("reset", "checkin", "invalidate"):
        event.listen(async_engine.sync_engine, name, lambda *_, name=name: pool_events.append(name))
    factory = sessionmaker(async_engine, class_=AsyncSession)

    async def scenario():
        await cancel_while_the_app_holds_a_connection(
            lambda app: AsyncDBSessionMiddleware(app, session_factory=factory), opened)
        checked_out = async_engine.pool.checkedout()
        await async_engine.dispose()
        return checked_out

    assert anyio.run(scenario) == 0
    assert pool_events == ["reset", "checkin"]  # rolled back and returned, not invalidated
    assert not opened[0].in_transaction()


def test_a_scoped_session_registry_is_refused_as_the_factory(engine):
    """Every request on the event loop's thread would share its one session, each closing it under the others."""
    from sqlalchemy.orm import scoped_session

    with pytest.raises(TypeError, match="scoped_session: give its sessionmaker"):
        DBSessionMiddleware(FastAPI(), session_factory=scoped_session(sessionmaker(bind=engine)))
