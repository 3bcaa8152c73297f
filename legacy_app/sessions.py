"""How a request gets its database session: three strategies, get_db, and the close policy.

The crud + router layer only ever asks for `get_db`; which strategy provides the session is
decided once per app, by install_session_strategy().
"""
from typing import Any, Awaitable, Callable, Dict, Iterator

import anyio
from fastapi import FastAPI, Request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from . import compat
from .config import ASGI_MIDDLEWARE, HTTP_MIDDLEWARE, YIELD_DEPENDENCY

SessionFactory = Callable[[], Session]


class SessionMiddlewareMissing(RuntimeError):
    """A route asked for the request's session, but no session middleware put one there."""


async def get_db(request: Request) -> Session:
    """The session the middleware stored on request.state.db (async: no thread hop for a read)."""
    try:
        return request.state.db
    except AttributeError:
        raise SessionMiddlewareMissing(
            "request.state.db is not set: no database session middleware is installed. "
            "Build the app with legacy_app.main.create_app(), or call "
            "legacy_app.sessions.install_session_strategy(app, strategy, session_factory)."
        ) from None


class SkipEmptyCloseSession(Session):
    """A Session whose close() returns at once when it holds no transaction and no object.

    The middlewares open and close a session on every request, /health included. Closing an
    unused one still rebuilds its identity map and event dispatcher: 6 of the 11 µs such a session
    costs a request (measured in-process). With nothing held there is nothing to return or detach.
    """

    def close(self) -> None:
        # add() begins the transaction, so pending objects are covered by in_transaction().
        if self.in_transaction() or self.identity_map:
            super().close()


def make_session_factory(engine: Engine, strategy: str = ASGI_MIDDLEWARE) -> SessionFactory:
    """The sessionmaker for `strategy`: database.SessionLocal is this, for the configured one.

    expire_on_commit=False: crud commits, then the response serialises the loaded objects, which
    must not start a new query (and hold a connection) while it does. Under http-middleware the
    session closes before streamed bodies and background tasks run, so a closed session refuses
    further use instead of silently opening a transaction on a connection nobody returns.
    """
    options: Dict[str, Any] = {"bind": engine, "autoflush": False, "expire_on_commit": False}
    if strategy == HTTP_MIDDLEWARE:
        options.update(compat.refuse_use_after_close_options())
    else:
        options["class_"] = SkipEmptyCloseSession
    return sessionmaker(**options)


async def close_session(db: Session) -> None:
    """Close on the event loop when that costs no I/O; otherwise in a worker thread.

    Inside a transaction the close rolls back and returns the connection: a round trip that must
    not block the loop. As FastAPI does for its own cleanup, the thread gets a private limiter (a
    full shared pool must not starve cleanup, which is what frees it) and a shielded scope (a
    cancelled request still returns its connection).
    """
    if db.in_transaction():
        await close_in_thread(db)
    else:
        db.close()


async def close_in_thread(db: Session) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(db.close, limiter=anyio.CapacityLimiter(1))


class DBSessionMiddleware:
    """asgi-middleware: a pure ASGI middleware.

    The session closes once the application has returned: after the response body was sent and
    background tasks ran, so both may still use it.
    """

    def __init__(self, app: Any, session_factory: SessionFactory) -> None:
        self.app = app
        self.session_factory = session_factory

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan would keep one session for the whole process
            await self.app(scope, receive, send)
            return
        db = self.session_factory()  # before `try`: a failing factory is reported as itself
        scope.setdefault("state", {})["db"] = db  # what request.state.db reads
        try:
            await self.app(scope, receive, send)
        finally:
            if db.in_transaction():  # close_session(), inlined: this runs on every request
                await close_in_thread(db)
            else:
                db.close()


def add_http_middleware(app: FastAPI, session_factory: SessionFactory) -> None:
    """http-middleware: the `@app.middleware("http")` form of older apps, hardened.

    call_next() returns as soon as the response starts, so this closes the session before the
    body is streamed and before background tasks run; make_session_factory() gives this strategy
    sessions that then refuse late use.
    """

    @app.middleware("http")
    async def db_session_middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        db = session_factory()
        request.state.db = db
        try:
            return await call_next(request)
        finally:
            await close_session(db)


def session_dependency(request: Request) -> Iterator[Session]:
    """yield-dependency: FastAPI runs this per request that needs the session, in a worker thread."""
    db = request.app.state.session_factory()
    try:
        yield db
    finally:
        db.close()


def install_session_strategy(app: FastAPI, strategy: str, session_factory: SessionFactory) -> None:
    app.state.session_factory = session_factory
    if strategy == ASGI_MIDDLEWARE:
        app.add_middleware(DBSessionMiddleware, session_factory=session_factory)
    elif strategy == HTTP_MIDDLEWARE:
        add_http_middleware(app, session_factory)
    elif strategy == YIELD_DEPENDENCY:
        # Replaces get_db for every route; a test's own dependency_overrides[get_db] replaces it.
        app.dependency_overrides[get_db] = session_dependency
    else:
        raise ValueError(f"unknown session strategy {strategy!r}")
