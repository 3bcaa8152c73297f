"""How a request gets its database session: three strategies, and get_db.

The crud + router layer only ever asks for `get_db`; which strategy provides the session is
decided once, by install_session_strategy().
"""
from typing import Any, Awaitable, Callable, Iterator

import anyio
from fastapi import FastAPI, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from .config import ASGI_MIDDLEWARE, HTTP_MIDDLEWARE, YIELD_DEPENDENCY
from .database import SessionFactory

Scope = Any  # ASGI scope/receive/send, kept untyped as Starlette 0.20 and 1.x name them differently


class SessionMiddlewareMissing(RuntimeError):
    """A route asked for the request's session, but no session middleware put one there."""


async def get_db(request: Request) -> Session:
    """The session a middleware stored on request.state.db.

    An async function: FastAPI awaits it on the event loop instead of sending a trivial
    attribute read through the thread pool.
    """
    try:
        return request.state.db
    except AttributeError:
        raise SessionMiddlewareMissing(
            "request.state.db is not set: no database session middleware is installed. "
            "Build the app with legacy_app.main.create_app(), or call "
            "legacy_app.sessions.install_session_strategy(app, strategy, session_factory)."
        ) from None


async def close_session(db: Session) -> None:
    """Close on the event loop when that costs no I/O; otherwise in a worker thread."""
    if db.in_transaction():
        await close_in_thread(db)
    else:
        db.close()


async def close_in_thread(db: Session) -> None:
    """Close a session that is inside a transaction, off the event loop.

    The close rolls back and returns the connection: a network round trip that must not block
    the loop. As FastAPI does for its own cleanup, the thread gets a private limiter (a full
    shared pool must not starve cleanup, which is what frees it) and a shielded scope (a
    cancelled request still returns its connection).
    """
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(db.close, limiter=anyio.CapacityLimiter(1))


class DBSessionMiddleware:
    """asgi-middleware: a pure ASGI middleware.

    The session is closed once the application has returned, which is after the response body
    was sent and background tasks ran, so both may still use it.
    """

    def __init__(self, app: Any, session_factory: SessionFactory) -> None:
        self.app = app
        self.session_factory = session_factory

    async def __call__(self, scope: Scope, receive: Scope, send: Scope) -> None:
        if scope["type"] != "http":  # lifespan would keep one session for the whole process
            await self.app(scope, receive, send)
            return
        db = self.session_factory()  # before `try`: a failing factory is reported as itself
        scope.setdefault("state", {})["db"] = db  # what request.state.db reads
        try:
            await self.app(scope, receive, send)
        finally:
            if db.in_transaction():  # (close_session, inlined: this runs on every request)
                await close_in_thread(db)
            else:
                db.close()


def add_http_middleware(app: FastAPI, session_factory: SessionFactory) -> None:
    """http-middleware: the `@app.middleware("http")` form of older apps, hardened.

    call_next() returns as soon as the response starts, so this closes the session before the
    body is streamed and before background tasks run. The factory must make sessions that
    refuse use after close (database.make_session_factory(final_close=True)): a late use then
    raises instead of opening a connection that nobody returns.
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
        app.dependency_overrides[get_db] = session_dependency
    else:
        raise ValueError(f"unknown session strategy {strategy!r}")
