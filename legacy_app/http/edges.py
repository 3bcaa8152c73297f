"""Where HTTP's edges meet the routes: ambiguous framing refused, HEAD answered as GET, no slash redirects."""
import re
from typing import Any, Callable, Optional, Pattern

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import compat

AMBIGUOUS_FRAMING_DETAIL = "Content-Length and Transfer-Encoding together: the body's length is ambiguous"


class RequestEdges:
    """Pure ASGI, for every HTTP request; the app's router must have redirect_slashes off.

    - A request with both Content-Length and Transfer-Encoding is a 400 that closes the connection:
      a proxy in front that trusts Content-Length would pass what follows the chunked body on as a
      second request (smuggling). uvicorn's httptools parser refuses it itself; its h11 parser does not.
    - HEAD runs the GET route: FastAPI's routes answer only the methods declared on them. uvicorn
      keeps HEAD in its own copy of the scope, so it sends the GET's status and headers, no body.
    - `/users` is served as `/users/`, where Starlette would redirect: its redirect takes its host
      from the request's Host header (`POST /users` with `Host: evil.example` was sent to
      http://evil.example/users/). The paths in the OpenAPI schema keep the tutorial's slash.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._match_without_slash: Optional[Callable[[str], Any]] = None  # slash-ended routes' paths, minus it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if "transfer-encoding" in headers and "content-length" in headers:
                response = JSONResponse({"detail": AMBIGUOUS_FRAMING_DETAIL}, status_code=400, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
            # Copies, not changes: the server's own scope must still say HEAD, and the log the path as sent.
            if scope["method"] == "HEAD":
                scope = {**scope, "method": "GET"}
            path = scope["path"]
            if path[-1:] != "/":
                # Compiled at the first request: every router is included by then.
                match = self._match_without_slash or self._compile(scope["app"])
                if match(path) is not None:
                    scope = {**scope, "path": path + "/"}
        await self.app(scope, receive, send)

    def _compile(self, app: Any) -> Callable[[str], Any]:
        self._match_without_slash = _slash_ended_paths_without_slash(app).match
        return self._match_without_slash


def _slash_ended_paths_without_slash(app: Any) -> Pattern[str]:
    """One pattern matching `/users`, `/items`, `/users/7/items`: each route path that ends in a slash, without it."""
    patterns = []
    for route in compat.leaf_routes(app.router):
        pattern = getattr(route, "path_regex", None)
        if getattr(route, "methods", None) and pattern is not None and pattern.pattern.endswith("/$") and route.path != "/":
            patterns.append(re.sub(r"\(\?P<\w+>", "(?:", pattern.pattern[1:-2]))  # unnamed: names repeat
    return re.compile(f"^(?:{'|'.join(patterns) or '(?!)'})$")
