"""415 for a body that is not declared as JSON, sent to an operation whose body is JSON."""
from typing import Any, Dict, List, Optional, Pattern, Set, Tuple

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

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

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._json_operations: Optional[List[Tuple[Pattern[str], Set[str]]]] = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A GET (/health's path too) costs this middleware one comparison.
        if scope["type"] != "http" or scope["method"] in _NO_BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if _has_body(headers) and not _declares_json(headers) and self._takes_json(scope):
            await JSONResponse(status_code=415, content={"detail": JSON_ONLY_DETAIL})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _takes_json(self, scope: Scope) -> bool:
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


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() not in ("", "0"))


def _declares_json(headers: Headers) -> bool:
    """application/json or application/*+json, with any parameters: what FastAPI parses as JSON."""
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))
