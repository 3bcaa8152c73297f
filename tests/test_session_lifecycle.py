"""When each strategy creates and closes the request's session, and what it leaves behind."""
from typing import Callable, List

import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from legacy_app.config import ASGI_MIDDLEWARE, HTTP_MIDDLEWARE, YIELD_DEPENDENCY, Settings
from legacy_app.database import create_engine_from
from legacy_app.routers.deps import DbSession
from legacy_app.main import create_app
from legacy_app.models import User
from legacy_app.routers import users
from legacy_app.sessions import SessionMiddlewareMissing, make_session_factory

from .conftest import EVERY_DATABASE, EVERY_STRATEGY, FAST_HASHING, count_rows


class SessionRecorder:
    """A session factory that remembers every session it made and whether it was closed."""

    def __init__(self, factory: Callable[[], Session], engine: Engine) -> None:
        self.factory = factory
        self.engine = engine
        self.sessions: List[Session] = []
        self.closed: List[Session] = []
        self.events: List[str] = []

    def __call__(self) -> Session:
        db = self.factory()
        self.sessions.append(db)
        close = db.close

        def recording_close() -> None:
            self.events.append("close")
            self.closed.append(db)
            close()

        db.close = recording_close  # type: ignore[method-assign]
        return db


def add_probe_routes(app: FastAPI, events: List[str]) -> None:
    @app.get("/probe/open-transaction")
    def open_transaction(db: Session = DbSession):
        db.execute(text("SELECT 1"))  # leaves the transaction (and its connection) to the strategy
        return {"ok": True}

    @app.post("/probe/http-exception-after-flush")
    def http_exception_after_flush(db: Session = DbSession):
        db.add(User(email="flushed@example.com", hashed_password="x"))
        db.flush()
        raise HTTPException(status_code=409, detail="conflict")

    @app.post("/probe/error-after-flush")
    def error_after_flush(db: Session = DbSession):
        db.add(User(email="flushed@example.com", hashed_password="x"))
        db.flush()
        raise RuntimeError("unhandled")

    @app.get("/probe/background")
    def background(tasks: BackgroundTasks, db: Session = DbSession):
        def use_session_later() -> None:
            try:
                db.execute(select(User.id)).all()
                events.append("task used the session")
            except InvalidRequestError as error:
                events.append(f"task refused: {type(error).__name__}")

        tasks.add_task(use_session_later)
        return {"ok": True}


@pytest.fixture
def recorder(settings: Settings):
    engine = create_engine_from(settings)
    factory = make_session_factory(engine, settings.session_strategy)
    yield SessionRecorder(factory, engine)
    engine.dispose()


@pytest.fixture
def probed_app(settings: Settings, recorder: SessionRecorder):
    app = create_app(settings, session_factory=recorder)
    add_probe_routes(app, recorder.events)
    yield app
    app.state.engine.dispose()


def assert_all_closed_and_returned(recorder: SessionRecorder) -> None:
    assert recorder.sessions, "the route should have had a session"
    assert recorder.closed == recorder.sessions
    assert recorder.engine.pool.checkedout() == 0


@EVERY_STRATEGY
@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/probe/open-transaction", 200),
        ("POST", "/probe/http-exception-after-flush", 409),
        ("POST", "/probe/error-after-flush", 500),
        ("GET", "/users/", 200),
        ("GET", "/users/999", 404),
        ("GET", "/users/?limit=0", 422),
    ],
)
def test_session_is_closed_and_its_connection_returned_after_every_request(
    probed_app, recorder, database_url, method, path, status
):
    with TestClient(probed_app, raise_server_exceptions=False) as client:
        assert client.request(method, path).status_code == status
    assert_all_closed_and_returned(recorder)
    assert count_rows(database_url, "users") == 0  # flushed but never committed: rolled back


@EVERY_DATABASE
@EVERY_STRATEGY
def test_lifespan_gets_no_session(probed_app, recorder):
    with TestClient(probed_app):
        pass
    assert recorder.sessions == []


@EVERY_DATABASE
def test_middleware_strategies_make_one_session_per_request_even_without_database_use(
    probed_app, recorder, strategy
):
    with TestClient(probed_app) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
    expected = 0 if strategy == YIELD_DEPENDENCY else 3
    assert len(recorder.sessions) == expected
    assert recorder.closed == recorder.sessions
    assert probed_app.state.engine.pool.checkedout() == 0  # no connection for a DB-less route


@EVERY_DATABASE
def test_background_task_after_the_response(probed_app, recorder, strategy):
    with TestClient(probed_app) as client:
        assert client.get("/probe/background").status_code == 200
    if strategy == HTTP_MIDDLEWARE:
        # The decorator form closed the session when call_next returned; the late use fails loudly.
        # (InvalidRequestError on SQLAlchemy 2.x; its subclass ClosedSessionError on 1.4.)
        assert recorder.events[0] == "close"
        assert recorder.events[1] in ("task refused: InvalidRequestError", "task refused: ClosedSessionError")
        assert len(recorder.events) == 2
    else:
        # asgi-middleware and the yield dependency close after background tasks ran.
        assert recorder.events == ["task used the session", "close"]
    assert_all_closed_and_returned(recorder)


class FactoryBoom(Exception):
    pass


def failing_factory() -> Session:
    raise FactoryBoom("cannot create a session")


@EVERY_DATABASE
def test_a_failing_session_factory_surfaces_as_itself(settings, strategy):
    app = create_app(settings, session_factory=failing_factory)
    with TestClient(app) as client:
        with pytest.raises(FactoryBoom):
            client.get("/users/")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/users/").status_code == 500
        # Only the yield dependency creates sessions lazily, so only there liveness survives.
        assert client.get("/health").status_code == (200 if strategy == YIELD_DEPENDENCY else 500)
    app.state.engine.dispose()


def test_missing_middleware_is_a_clear_error():
    app = FastAPI()
    app.include_router(users.router)
    with TestClient(app) as client:
        with pytest.raises(SessionMiddlewareMissing, match="no database session middleware is installed"):
            client.get("/users/")


@pytest.mark.parametrize("refuses_use_after_close", [True, False])
def test_refusing_use_after_close_prevents_leaking_a_connection(database_url, refuses_use_after_close):
    engine = create_engine_from(Settings(database_url=database_url, **FAST_HASHING))
    try:
        strategy = HTTP_MIDDLEWARE if refuses_use_after_close else ASGI_MIDDLEWARE
        db = make_session_factory(engine, strategy)()
        db.execute(text("SELECT 1"))
        db.close()
        assert engine.pool.checkedout() == 0
        if refuses_use_after_close:
            with pytest.raises(InvalidRequestError):
                db.execute(text("SELECT 1"))
            assert engine.pool.checkedout() == 0
        else:
            # The default: a closed session silently opens a new transaction on a new connection,
            # which stays checked out until someone closes the session again.
            db.execute(text("SELECT 1"))
            assert engine.pool.checkedout() == 1
            db.close()
    finally:
        engine.dispose()


def test_only_the_http_middleware_strategy_refuses_use_after_close(database_url):
    for strategy in (ASGI_MIDDLEWARE, HTTP_MIDDLEWARE, YIELD_DEPENDENCY):
        app = create_app(Settings(database_url=database_url, session_strategy=strategy, **FAST_HASHING))
        db = app.state.session_factory()
        db.close()
        if strategy == HTTP_MIDDLEWARE:
            with pytest.raises(InvalidRequestError):
                db.execute(text("SELECT 1"))
        else:
            db.execute(text("SELECT 1"))
            db.close()
        assert app.state.engine.pool.checkedout() == 0
        app.state.engine.dispose()
