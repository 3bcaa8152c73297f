"""Error responses: never echo what the client sent, never a 500 for a database that is away."""
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import Match
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from .compat import public_errors

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
    logger.warning("503 for %s %s: no database connection free within the pool timeout", request.method, request.url.path)
    return _unavailable("Database busy, try again shortly")


async def database_unreachable(request: Request, exc: DBAPIError) -> JSONResponse:
    if not _is_connection_problem(exc):
        raise exc
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    logger.warning("503 for %s %s: database unreachable: %s", request.method, request.url.path, reason)
    return _unavailable("Database unavailable, try again shortly")


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
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and getattr(route, "methods", None):
            allowed |= set(route.methods)
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
