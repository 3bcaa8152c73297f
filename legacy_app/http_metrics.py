"""http_requests_total and http_request_duration_seconds, from a pure ASGI middleware that also
answers GET /metrics.

The scrape is answered here, outside the session strategy, so it opens no database session: at
rest db_sessions_open reads 0, whichever the strategy.

Labels carry nothing a client chose: the route is the matched route's path template
(`/users/{user_id}`, never `/users/7`), every path no route matches shares UNMATCHED, and a method
outside HTTP's standard ones is OTHER_METHOD.
"""
from time import perf_counter
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Mount, Router

from . import compat
from .http_protection import HEADERS

if TYPE_CHECKING:
    from .metrics import Metrics

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"  # not a path: every real template starts with "/"
OTHER_METHOD = "other"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"))


class HttpMetrics:
    def __init__(self, app: Any, metrics: "Metrics", router: Router) -> None:
        self.app = app
        self.metrics = metrics
        self.router = router
        # (method, route, status) -> its counter and histogram children: .labels() takes a lock
        # and builds a key on every call. The label values are bounded, so is this.
        self._children: Dict[Tuple[str, str, str], Tuple[Any, Any]] = {}
        self._templates: Dict[int, str] = {}  # id(route) -> its template; routes live as long as the app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        # Taken now: routing rewrites root_path and path_params in scope on the way in.
        request_line = (scope["method"], scope["path"], scope.get("root_path", ""))
        status: Optional[int] = None

        async def send_noting_status(message: Dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        scrape = request_line[1] == METRICS_PATH and request_line[0] in ("GET", "HEAD")  # the server drops a HEAD's body
        try:
            if scrape:
                await self._answer_scrape(send_noting_status)
            else:
                await self.app(scope, receive, send_noting_status)
        except BaseException:
            status = status or 500  # as the request log counts it: Starlette answers 500
            raise
        finally:
            route = METRICS_PATH if scrape else self._route_template(scope, request_line)
            method = request_line[0] if request_line[0] in METHODS else OTHER_METHOD
            self._observe(method, route, str(status) if status else "none", perf_counter() - started)

    async def _answer_scrape(self, send: Any) -> None:
        # In a worker thread: in multiprocess mode a scrape reads every worker's files.
        body = await run_in_threadpool(self.metrics.scrape)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers + HEADERS})
        await send({"type": "http.response.body", "body": body})

    def _observe(self, method: str, route: str, status: str, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.metrics.requests.labels(method, route, status),
                self.metrics.request_duration.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _route_template(self, scope: Any, request_line: Tuple[str, str, str]) -> str:
        route = scope.get("route")  # FastAPI's APIRoute puts itself there when it matches
        if route is None:
            return self._match(request_line)
        template = self._templates.get(id(route))
        if template is None:
            template = self._templates[id(route)] = _template(route)
        return template

    def _match(self, request_line: Tuple[str, str, str]) -> str:
        """The template of the route the router would pick: a full match, else the first partial (405)."""
        method, path, root_path = request_line
        probe = {"type": "http", "method": method, "path": path, "root_path": root_path}
        partial = None
        for route in compat.leaf_routes(self.router):
            match, child_scope = route.matches(probe)
            if match == Match.FULL:
                return _template(child_scope.get("route", route))
            if match == Match.PARTIAL and partial is None:
                partial = child_scope.get("route", route)
        return _template(partial) if partial is not None else UNMATCHED


def _template(route: Any) -> str:
    path = getattr(route, "path", None)
    if not path:
        return UNMATCHED
    if isinstance(getattr(route, "original_route", route), Mount):  # a mount serves everything under its path (the docs' assets)
        return f"{path}/{{path}}"
    return path
