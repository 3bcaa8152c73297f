"""Error responses: never echo what the client sent, never a 500 for a database that is away; a 500
logged with its fix for a schema behind the code; a 405 that lists every allowed method."""
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.routing import Match

from .. import compat
from ..compat import public_errors
from .observer import path_as_sent

logger = logging.getLogger("legacy_app")

RETRY_AFTER_SECONDS = "1"

# Documented on every operation, so the OpenAPI schema lists what the API really answers.
COMMON_RESPONSES = {
    413: {"description": "Request body too large"},
    503: {"description": "Database busy or unreachable; retry after the Retry-After seconds"},
}


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default handler includes each error's `input`: with Pydantic 2 a missing field
    # puts the whole body, password included, into the 422.
    return JSONResponse(status_code=422, content={"detail": public_errors(exc.errors())})


async def pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.pool_timeouts.inc()  # here, where the 503 is decided: one count per 503
    logger.warning("503 for %s %s: no database connection free within the pool timeout", request.method, path_as_sent(request.scope))
    return _unavailable("Database busy, try again shortly")


async def database_unreachable(request: Request, exc: DBAPIError) -> JSONResponse:
    if _is_schema_behind(exc):
        # Not an outage: retrying will not create the table; someone has to migrate.
        logger.error(
            "500 for %s %s: the database lacks a table or column the code uses (%s): its schema is not "
            "migrated; run `python -m legacy_app db upgrade` (or serve with MIGRATE_ON_START=true)",
            request.method, path_as_sent(request.scope), _first_line(exc),
        )
        return JSONResponse(status_code=500, content={"detail": "Internal Server Error"})
    if not _is_connection_problem(exc):
        raise exc
    logger.warning("503 for %s %s: database unreachable: %s", request.method, path_as_sent(request.scope), _first_line(exc))
    return _unavailable("Database unavailable, try again shortly")


def _first_line(exc: DBAPIError) -> str:
    return (str(exc.orig).strip().splitlines() or [""])[0] if exc.orig is not None else type(exc).__name__


# A missing table or column, by the driver's own code where it has one: PostgreSQL's SQLSTATE
# (undefined_table, undefined_column), MariaDB's errno (ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR).
# SQLite has only its message; it raises them as OperationalError, like a lost connection.
_UNDEFINED_SQLSTATES = {"42P01", "42703"}
_UNDEFINED_MYSQL_ERRNOS = {1146, 1054}
_UNDEFINED_SQLITE_MESSAGES = ("no such table", "no such column")


def _is_schema_behind(exc: DBAPIError) -> bool:
    orig = exc.orig
    if orig is None:
        return False
    if compat.sqlstate(orig) in _UNDEFINED_SQLSTATES:
        return True
    if type(orig).__module__.startswith("pymysql") and orig.args and orig.args[0] in _UNDEFINED_MYSQL_ERRNOS:
        return True
    return type(orig).__module__.startswith("sqlite3") and str(orig).startswith(_UNDEFINED_SQLITE_MESSAGES)


def _is_connection_problem(exc: DBAPIError) -> bool:
    """Connection lost or refused, or SQLite's lock wait ran out: worth a retry, not a 500."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))


async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 whose Allow header lists every method the path supports.

    Starlette stops at the first route that matches the path, so with one route per method it
    would announce only that route's methods (and Starlette 0.20 sends no Allow header at all).
    """
    allowed = set()
    for route in compat.leaf_routes(request.app.router):  # recent FastAPI nests included routers
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and getattr(route, "methods", None):
            allowed |= set(route.methods)
    if "GET" in allowed:
        allowed.add("HEAD")  # answered as GET (edges.py)
    return JSONResponse(
        status_code=405, content={"detail": "Method Not Allowed"}, headers={"Allow": ", ".join(sorted(allowed))}
    )


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": detail}, headers={"Retry-After": RETRY_AFTER_SECONDS})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(PoolTimeout, pool_timeout)
    app.add_exception_handler(DBAPIError, database_unreachable)
