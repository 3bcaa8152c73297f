"""One log line per request, tagged with the request's id (X-Request-ID, honoured or generated).

Only the method, the path as sent, the status, the duration and the id are logged: never the query
string (it can carry an email), headers or bodies (they carry passwords).
"""
import copy
import logging
import re
import time
from typing import Any, Dict, Optional
from urllib.parse import quote

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id

from .json_log import REQUEST_FIELDS

logger = logging.getLogger("legacy_app.request")

REQUEST_ID_HEADER = "X-Request-ID"

# An incoming id is kept when it is a plain token (a UUID, nginx's $request_id, a trace id); any
# other value (spaces, quotes, kilobytes) is replaced by a generated one, so it cannot forge or
# bloat a log line.
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def is_acceptable_request_id(value: str) -> bool:
    return _PLAIN_TOKEN.fullmatch(value) is not None


class RequestLog:
    """Pure ASGI: logs after the response, or after the error that replaced it (status 500)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        status: Optional[int] = None
        client_left = False  # the client went away before the response started (mid-body, say)
        started = time.perf_counter()

        async def receive_noting_disconnect() -> Dict[str, Any]:
            nonlocal client_left
            message = await receive()
            if message["type"] == "http.disconnect" and status is None:
                # The app answers what it could not read with a 400 nobody receives: not the client's error.
                client_left = True
            return message

        async def send_noting_status(message: Dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_noting_disconnect, send_noting_status)
        except BaseException:
            status = status or 500  # Starlette's outermost error handler answers 500
            raise
        finally:
            if client_left:
                status = None
            fields = {
                "method": scope["method"], "path": path_as_sent(scope), "status": status,  # None: client left first
                "duration_ms": round((time.perf_counter() - started) * 1000, 1), "request_id": correlation_id.get(),
            }
            if client_left:
                fields["client_disconnected"] = True
            logger.info(
                "method=%s path=%s status=%s duration_ms=%.1f request_id=%s%s",
                fields["method"], fields["path"], status or "-", fields["duration_ms"], fields["request_id"],
                " client_disconnected=true" if client_left else "",
                extra={REQUEST_FIELDS: fields},
            )


def install_request_logging(app: Any) -> None:
    """Add the two middlewares outermost (call last): every response, even a 413 or 500, is logged."""
    app.add_middleware(RequestLog)
    app.add_middleware(
        CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=is_acceptable_request_id
    )


def logging_config(level: str, log_format: str = "text") -> Dict[str, Any]:
    """uvicorn's logging configuration plus the service's loggers, at `level`, on stderr.

    log_format "json" makes every line a JSON object, uvicorn's own lines included.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["legacy_app"] = {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"}
    if log_format == "json":
        for name in config["formatters"]:
            config["formatters"][name] = {"()": "legacy_app.json_log.JsonFormatter"}
    config["handlers"]["legacy_app"] = {
        "class": "logging.StreamHandler", "formatter": "legacy_app", "stream": "ext://sys.stderr",
    }
    for name in ("legacy_app", "asgi_correlation_id"):
        config["loggers"][name] = {"handlers": ["legacy_app"], "level": level.upper(), "propagate": False}
    return config


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
