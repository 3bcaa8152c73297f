"""Each HTTP request observed once: timed, its status noted, then one log line and one count.

Only the method, the path as sent, the status, the duration and the request's id are logged: never
the query string (it can carry an email), headers or bodies (they carry passwords).

Labels carry nothing a client chose: the route is the matched route's path template
(`/users/{user_id}`, never `/users/7`), every path no route matches shares UNMATCHED, and a method
outside HTTP's standard ones is OTHER_METHOD.
"""
import logging
import re
from time import perf_counter
from typing import Any, Dict, Optional, Tuple
from urllib.parse import quote

from asgi_correlation_id import correlation_id
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import compat
from ..observability.json_log import REQUEST_FIELDS
from ..observability.metrics import Metrics
from .protection import HEADERS

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"  # not a path: every real template starts with "/"
OTHER_METHOD = "other"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"))

logger = logging.getLogger("legacy_app.request")

RequestLine = Tuple[str, str, str]  # method, path, root_path, as they arrived (routing rewrites the scope)


class RequestObserver:
    """Pure ASGI: after the response, or after the error that replaced it (status 500), one line on the
    `legacy_app.request` logger (at INFO) and one count in http_requests_total (when metrics are on).

    With metrics on it also answers GET /metrics itself, before any session exists: a scrape opens
    no session, so at rest db_sessions_open reads 0, whichever the strategy. A client that goes away
    before the response starts is logged with no status and client_disconnected=true (the app
    answers what it could not read with a 400 nobody receives).
    """

    def __init__(self, app: ASGIApp, metrics: Optional[Metrics] = None) -> None:
        self.app = app
        self.metrics = metrics
        # (method, route, status) -> its counter and histogram children: .labels() takes a lock
        # and builds a key on every call. The label values are bounded, so is this.
        self._children: Dict[Tuple[str, str, str], Tuple[Any, Any]] = {}
        self._templates: Dict[int, str] = {}  # id(route) -> its template; routes live as long as the app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        logging_on = logger.isEnabledFor(logging.INFO)
        if scope["type"] != "http" or (self.metrics is None and not logging_on):
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        # Taken now: routing rewrites root_path and path_params in scope on the way in.
        request_line = (scope["method"], scope["path"], scope.get("root_path", ""))
        status: Optional[int] = None
        client_left = False

        async def receive_noting_disconnect() -> Message:
            nonlocal client_left
            message = await receive()
            if message["type"] == "http.disconnect" and status is None:
                client_left = True
            return message

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # The server drops a HEAD's body.
        scrape = self.metrics is not None and request_line[1] == METRICS_PATH and request_line[0] in ("GET", "HEAD")
        try:
            if scrape:
                await self._answer_scrape(send_noting_status)
            else:
                await self.app(scope, receive_noting_disconnect, send_noting_status)
        except BaseException:
            status = status or 500  # Starlette's outermost error handler answers 500
            raise
        finally:
            seconds = perf_counter() - started
            if client_left:
                status = None  # the app's answer to what it could not read: nobody received it
            if self.metrics is not None:
                route = METRICS_PATH if scrape else self._route_template(scope, request_line)
                self._count(request_line[0], route, status, seconds)
            if logging_on:
                _log(scope, status, seconds, client_left)

    async def _answer_scrape(self, send: Send) -> None:
        assert self.metrics is not None
        # In a worker thread: in multiprocess mode a scrape reads every worker's files.
        body = await run_in_threadpool(self.metrics.scrape)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers + HEADERS})
        await send({"type": "http.response.body", "body": body})

    def _count(self, method: str, route: str, status: Optional[int], seconds: float) -> None:
        assert self.metrics is not None
        key = (method if method in METHODS else OTHER_METHOD, route, str(status) if status else "none")
        children = self._children.get(key)
        if children is None:
            children = (self.metrics.requests.labels(*key), self.metrics.request_duration.labels(*key[:2]))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _route_template(self, scope: Scope, request_line: RequestLine) -> str:
        route = scope.get("route")  # FastAPI's APIRoute puts itself there when it matches
        if route is None:
            return _match(scope["app"].router, request_line)
        template = self._templates.get(id(route))
        if template is None:
            template = self._templates[id(route)] = _template(route)
        return template


def _log(scope: Scope, status: Optional[int], seconds: float, client_left: bool) -> None:
    """The request's one line: status None when the client went away before the response started."""
    fields = {
        "method": scope["method"], "path": path_as_sent(scope), "status": status,
        "duration_ms": round(seconds * 1000, 1), "request_id": correlation_id.get(),
    }
    if client_left:
        fields["client_disconnected"] = True
    logger.info(
        "method=%s path=%s status=%s duration_ms=%.1f request_id=%s%s",
        fields["method"], fields["path"], status or "-", fields["duration_ms"], fields["request_id"],
        " client_disconnected=true" if client_left else "",
        extra={REQUEST_FIELDS: fields},
    )


def _match(router: Router, request_line: RequestLine) -> str:
    """The template of the route the router would pick: a full match, else the first partial (405)."""
    method, path, root_path = request_line
    probe = {"type": "http", "method": method, "path": path, "root_path": root_path}
    partial = None
    for route in compat.leaf_routes(router):
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


def path_as_sent(scope: Any) -> str:
    """The percent-encoded path, fit for one log line: a decoded one could hold a newline (%0A)."""
    raw = scope.get("raw_path")
    if raw:
        return printable(raw.split(b"?", 1)[0].decode("ascii", "backslashreplace"))
    return quote(scope["path"], safe="/:@!$&'()*+,;=~")


# C0 and C1 controls (\r, \n, \x1b...), DEL, and the separators that end a line for Python's
# splitlines() and for JavaScript: U+0085, U+2028, U+2029.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """`text` with every control or line-separating character written as a Python escape."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
