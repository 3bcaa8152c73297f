"""How a request gets its database session: the middleware, get_db, and the close policy.

The public API (``__all__``) is what other apps add in one line; it imports only FastAPI/Starlette
and SQLAlchemy, reads no setting and builds no engine, and runs on FastAPI 0.65+ / Starlette 0.14+ /
SQLAlchemy 1.3.24+ (docs/middleware.md)::

    from legacy_app.sessions import DBSessionMiddleware, get_db
    app.add_middleware(DBSessionMiddleware, session_factory=SessionLocal)

The rest is the service's: every Session class it makes, and its three strategies (strategy_middleware)
over one crud + router layer that only ever asks for `get_db`.
"""
import asyncio
import functools
from time import perf_counter
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import ASGI_MIDDLEWARE, HTTP_MIDDLEWARE, YIELD_DEPENDENCY

try:  # Starlette 0.15+ runs on anyio; 0.14 (FastAPI < 0.69) has plain asyncio only
    import anyio
    import anyio.to_thread
except ImportError:  # pragma: no cover - exercised in the FastAPI 0.65 environment
    anyio = None  # type: ignore[assignment]

__all__ = ["AsyncDBSessionMiddleware", "DBSessionMiddleware", "SessionMiddlewareMissing", "get_db"]

SessionFactory = Callable[[], Session]


class SessionMiddlewareMissing(RuntimeError):
    """A route asked for the request's session, but no session middleware put one there."""


async def get_db(request: Request) -> Session:
    """The session the middleware stored on request.state.db (async: no thread hop to read it)."""
    try:
        return request.state.db
    except AttributeError:
        raise SessionMiddlewareMissing(
            "request.state.db is not set: no database session middleware is installed. Add "
            "app.add_middleware(DBSessionMiddleware, session_factory=SessionLocal) "
            "(from legacy_app.sessions import DBSessionMiddleware)."
        ) from None


# --- the close policy -------------------------------------------------------------------------------

_SQLALCHEMY_CLOSE = Session.close


def _close_is_sqlalchemys_own(factory: Any) -> bool:
    """Whether the sessions of `factory` close with SQLAlchemy's own, unwrapped Session.close().

    Only then may an empty session's close() be skipped: a subclass's close() (a cache, a counter)
    or a wrapper around it (instrumentation) must run, and a session made to refuse use once closed
    (2.x close_resets_only=False) must be closed to refuse it.
    """
    if not isinstance(factory, sessionmaker) or not hasattr(Session, "in_transaction"):  # 1.3: always close
        return False
    close = factory.class_.close
    return (
        close is _SQLALCHEMY_CLOSE
        and getattr(close, "__module__", None) == "sqlalchemy.orm.session"
        and factory.kw.get("close_resets_only", True) is not False
    )


async def close_session(db: Session) -> None:
    """Close `db`: at once when that costs no I/O, in a worker thread when it rolls back.

    Inside a transaction close() rolls back and returns the connection, a round trip that must not
    block the event loop. As FastAPI does for its own cleanup, the thread is shielded (a cancelled
    request still returns its connection) and gets a private limiter (a full shared pool of threads
    must not starve the cleanup that frees it). DBSessionMiddleware inlines this, and leaves an empty
    session of SQLAlchemy's own class as it is (_close_is_sqlalchemys_own).
    """
    if _holds_a_connection(db):
        await _close_in_thread(db)
    else:
        db.close()


if hasattr(Session, "in_transaction"):  # SQLAlchemy 1.4+

    def _holds_a_connection(db: Session) -> bool:
        return db.in_transaction()

else:

    def _holds_a_connection(db: Session) -> bool:
        # 1.3 begins a transaction with every session; it holds connections once a statement ran.
        transaction = db.transaction
        return transaction is not None and bool(transaction._connections)


async def _close_in_thread(db: Session) -> None:
    if anyio is not None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(db.close, limiter=anyio.CapacityLimiter(1))
    else:
        # Shielded: a cancelled request stops waiting, the close still runs to its end.
        await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, db.close))


# --- the public middlewares -------------------------------------------------------------------------


class DBSessionMiddleware:
    """One session per HTTP request, on ``request.state.<state_attribute>``, closed once the app returned.

    A pure ASGI middleware: the session closes after the response body was sent and the background
    tasks ran, so both may still use it; closing happens even when the app raised or the request
    was cancelled. `session_factory` is the app's own sessionmaker.
    """

    def __init__(self, app: ASGIApp, session_factory: SessionFactory, state_attribute: str = "db") -> None:
        if isinstance(session_factory, scoped_session):
            # Every request on the event loop's thread would get the same session, and close it under the others.
            raise TypeError("session_factory is a scoped_session: give its sessionmaker (one session per request)")
        self.app = app
        self.session_factory = session_factory
        self.state_attribute = state_attribute
        self.skip_empty_close = _close_is_sqlalchemys_own(session_factory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan would keep one session for the whole process
            await self.app(scope, receive, send)
            return
        db = self.session_factory()  # before `try`: a failing factory is reported as itself
        scope.setdefault("state", {})[self.state_attribute] = db  # what request.state.<name> reads
        try:
            await self.app(scope, receive, send)
        finally:  # close_session(), inlined: this runs on every request
            if _holds_a_connection(db):
                await _close_in_thread(db)
            elif not self.skip_empty_close or db.identity_map:
                db.close()


class AsyncDBSessionMiddleware:
    """DBSessionMiddleware for SQLAlchemy's AsyncSession (SQLAlchemy 1.4+): `session_factory` is the
    app's async_sessionmaker (or sessionmaker(class_=AsyncSession)); the close is awaited, after the
    body and background tasks, and shielded from cancellation."""

    def __init__(self, app: ASGIApp, session_factory: Callable[[], Any], state_attribute: str = "db") -> None:
        self.app = app
        self.session_factory = session_factory
        self.state_attribute = state_attribute

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        db = self.session_factory()
        scope.setdefault("state", {})[self.state_attribute] = db
        try:
            await self.app(scope, receive, send)
        finally:
            if anyio is not None:
                with anyio.CancelScope(shield=True):
                    await db.close()
            else:
                await asyncio.shield(db.close())


# --- the service's strategies -----------------------------------------------------------------------


class SkipEmptyCloseSession(Session):
    """A Session whose close() returns at once when it holds no transaction and no object.

    The yield dependency closes its session itself; this gives it the middleware's close policy.
    """

    def close(self) -> None:
        # add() begins the transaction, so pending objects are covered by in_transaction().
        if self.in_transaction() or self.identity_map:
            super().close()


class ClosedSessionError(InvalidRequestError):
    """The session was closed for good; using it again would check out an orphan connection."""


class RefuseUseAfterCloseSession(Session):
    """SQLAlchemy 1.4's stand-in for 2.x's ``close_resets_only=False``.

    Every statement and flush asks ``get_bind()`` for an engine before it checks out a
    connection, so refusing there fails loudly without touching the pool.
    """

    _closed_for_good = False

    def close(self) -> None:
        super().close()
        self._closed_for_good = True

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        if self._closed_for_good:
            raise ClosedSessionError(
                "This Session has been closed for good and cannot be used again; "
                "under the http-middleware strategy the session closes when call_next() returns, "
                "before streamed bodies and background tasks run."
            )
        return super().get_bind(*args, **kwargs)


def refuse_use_after_close_options() -> Dict[str, Any]:
    """sessionmaker() options that make a closed Session refuse further use."""
    from . import compat

    if compat.SQLALCHEMY_2:
        return {"close_resets_only": False}
    return {"class_": RefuseUseAfterCloseSession}


def refuses_use_after_close(factory: Any) -> bool:
    """Whether a sessionmaker's sessions refuse use once closed (refuse_use_after_close_options)."""
    from . import compat

    if compat.SQLALCHEMY_2:
        return factory.kw.get("close_resets_only") is False
    return issubclass(factory.class_, RefuseUseAfterCloseSession)


def measured_session_class(
    base: type, opened: Callable[[], None], closed: Callable[[float], None],
    used_after_close: Optional[Callable[[], None]] = None,
) -> type:
    """A subclass of `base` that calls opened() when made, closed(seconds) at its first close, and
    used_after_close() when a session closed for good is asked for a bind (observability/metrics.py)."""

    class MeasuredSession(base):  # type: ignore[valid-type, misc]
        # perf_counter() at creation; None once closed. A session counts from creation to its
        # first close: one reused after that (allowed outside http-middleware) is not counted again.
        _opened_at: Optional[float] = None
        _asked_at: Optional[float] = None  # its transaction began, waiting for a connection
        _connected_at: Optional[float] = None  # the transaction has its connection

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._opened_at = perf_counter()
            opened()

        def close(self) -> None:
            try:
                super().close()
            finally:
                opened_at, self._opened_at = self._opened_at, None
                if opened_at is not None:
                    closed(perf_counter() - opened_at)

        if used_after_close is not None:

            def get_bind(self, *args: Any, **kwargs: Any) -> Any:
                # Every statement asks for its bind before it begins a transaction, which a
                # session closed for good refuses (SQLAlchemy 2.x right after this; 1.4 in it).
                if self._opened_at is None:
                    used_after_close()
                return super().get_bind(*args, **kwargs)

    return MeasuredSession


def make_session_factory(engine: Engine, strategy: str = ASGI_MIDDLEWARE) -> SessionFactory:
    """The sessionmaker for `strategy`: database.SessionLocal is this, for the configured one.

    expire_on_commit=False: crud commits, then the response serialises the loaded objects, which
    must not start a new query (and hold a connection) while it does. Under http-middleware the
    session closes before streamed bodies and background tasks run, so a closed session refuses
    further use instead of silently opening a transaction on a connection nobody returns.
    """
    options: Dict[str, Any] = {"bind": engine, "autoflush": False, "expire_on_commit": False}
    if strategy == HTTP_MIDDLEWARE:
        options.update(refuse_use_after_close_options())
    else:
        options["class_"] = SkipEmptyCloseSession
    return sessionmaker(**options)


async def http_middleware_dispatch(
    request: Request, call_next: Callable[[Request], Awaitable[Response]], session_factory: SessionFactory
) -> Response:
    """http-middleware: the `@app.middleware("http")` form of older apps, hardened; kept for comparison.

    create_app declares it as what that decorator adds, BaseHTTPMiddleware(dispatch=this, with its factory). call_next()
    returns as soon as the response starts, so this closes the session before the body is streamed and
    before background tasks run; make_session_factory() gives this strategy sessions that then refuse
    late use. Not part of the public API: it cuts streams short by design.
    """
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


def strategy_middleware(strategy: str, session_factory: SessionFactory) -> List[Any]:
    """The innermost entries of create_app's middleware list for `strategy` (none for the yield dependency).

    Every strategy also finds its factory on app.state.session_factory, and yield-dependency replaces
    get_db (use_yield_dependency).
    """
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    if strategy == ASGI_MIDDLEWARE:
        return [Middleware(DBSessionMiddleware, session_factory=session_factory)]
    if strategy == HTTP_MIDDLEWARE:
        return [Middleware(BaseHTTPMiddleware, dispatch=functools.partial(http_middleware_dispatch, session_factory=session_factory))]
    if strategy == YIELD_DEPENDENCY:
        return []
    raise ValueError(f"unknown session strategy {strategy!r}")


def use_yield_dependency(app: FastAPI) -> None:
    """Replace get_db for every route; a test's own dependency_overrides[get_db] replaces this in turn."""
    app.dependency_overrides[get_db] = session_dependency
