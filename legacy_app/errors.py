"""Error responses: never echo what the client sent, never a 500 for a database that is away; a 415
for a body not declared as JSON; a 500 logged with its fix for a schema behind the code."""
import logging
from typing import Any, Dict, List, Optional, Pattern, Set, Tuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.routing import Match, compile_path
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from . import compat
from .compat import public_errors
from .request_log import path_as_sent

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
        allowed.add("HEAD")  # answered as GET (http_edges)
    return JSONResponse(
        status_code=405, content={"detail": "Method Not Allowed"}, headers={"Allow": ", ".join(sorted(allowed))}
    )


JSON_ONLY_DETAIL = "Content-Type must be application/json"
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # no operation of this API reads a body on these


class RequireJsonContentType:
    """415 for a body sent without a JSON Content-Type to an operation whose body is JSON.

    FastAPI decides by the Content-Type whether to parse a body as JSON: on FastAPI 0.1xx a JSON
    body sent as text/plain became a 422 about a "dict" the client did send, and FastAPI 0.86 parsed
    a body with no Content-Type as JSON anyway. Which operations take JSON is read from the app's
    OpenAPI schema (once, on the first body that is not JSON): other paths and methods answer as
    before (404, 405). This runs outside the session middleware, before anything can be stored.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._json_operations: Optional[List[Tuple[Pattern[str], Set[str]]]] = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # A GET (/health's path too) costs this middleware one comparison.
        if scope["type"] != "http" or scope["method"] in _NO_BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if _has_body(scope) and not _declares_json(scope) and self._takes_json(scope):
            await JSONResponse(status_code=415, content={"detail": JSON_ONLY_DETAIL})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _takes_json(self, scope: Any) -> bool:
        if self._json_operations is None:
            self._json_operations = _json_body_operations(scope["app"].openapi())
        path, root_path = scope["path"], scope.get("root_path", "")
        if root_path and path.startswith(root_path):  # Starlette 1.x includes root_path, 0.20 does not
            path = path[len(root_path):]
        return any(scope["method"] in methods and pattern.match(path) for pattern, methods in self._json_operations)


def _json_body_operations(openapi: Dict[str, Any]) -> List[Tuple[Pattern[str], Set[str]]]:
    operations = []
    for path, by_method in openapi.get("paths", {}).items():
        methods = {
            method.upper() for method, operation in by_method.items()
            if "application/json" in operation.get("requestBody", {}).get("content", {})
        }
        if methods:
            operations.append((compile_path(path)[0], methods))
    return operations


def _header(scope: Any, name: bytes) -> Optional[bytes]:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def _has_body(scope: Any) -> bool:
    length = _header(scope, b"content-length")
    return _header(scope, b"transfer-encoding") is not None or (length is not None and length.strip() not in (b"", b"0"))


def _declares_json(scope: Any) -> bool:
    """application/json or application/*+json, with any parameters: what FastAPI parses as JSON."""
    media_type = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
    return media_type == b"application/json" or (media_type.startswith(b"application/") and media_type.endswith(b"+json"))


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": detail}, headers={"Retry-After": RETRY_AFTER_SECONDS})


def install_error_handlers(app: FastAPI) -> None:
    # Added before the body limit and request logging, which create_app adds outside it (they see
    # its 415s), and after the session strategy, which stays inside it.
    app.add_middleware(RequireJsonContentType)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(PoolTimeout, pool_timeout)
    app.add_exception_handler(DBAPIError, database_unreachable)
