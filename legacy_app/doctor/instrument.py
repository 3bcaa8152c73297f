"""What the doctor sees inside the target's process: SQLAlchemy listeners and an outermost ASGI recorder.

Every event is one JSON line appended to a file the runner reads:
`{"t": perf_counter seconds, "kind", "request": request number or null, "session": id() or null,
"connection": id() or null, "thread", "detail"?}`. The runner turns raw ids and times into the
document's small ids and milliseconds (findings.py).

Attribution: the recorder sets a context variable for each request. Starlette and FastAPI copy the
context into worker threads and background tasks, so whatever the app does for the request, in any
thread, carries the request's number; a session made at import time carries none.

SQLAlchemy has no event for a session being made or closed, so `Session.__init__`, `close` and (on
2.x) `reset` are wrapped at class level (and `close` of any subclass that overrides it, when its
first session is made); begin, commit and rollback are `SessionEvents`, checkout and
checkin `PoolEvents`, a statement that writes (INSERT, UPDATE, DELETE) an `Engine` event, all
listened to on the classes, so every engine and session the app makes is seen (async ones through
their sync engine and session).

This module runs inside the app's own interpreter (`doctor --python`): the standard library and the
app's SQLAlchemy (1.3.24 to 2.1) only, on Python 3.8+, and nothing else of legacy_app.
"""
import contextvars
import itertools
import json
import sys
import threading
import time
import traceback
from typing import Any, Dict, Optional, Set, TextIO

current_request: contextvars.ContextVar = contextvars.ContextVar("doctor_request", default=None)

_sink: Optional[TextIO] = None
_sink_lock = threading.Lock()
_request_numbers = itertools.count(1)


TRACEBACK_LINES = 12  # the end of an error's traceback: where it was raised, and what it was
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "UPSERT")
# Raised into the app by a client that went away or a cancelled task: not the app's error.
NOT_APP_ERRORS = ("CancelledError", "ClientDisconnect", "OSError", "ConnectionResetError", "BrokenPipeError")


def record(kind: str, session: Any = None, connection: Any = None, detail: Optional[str] = None,
           request: Any = None, **extra: Any) -> None:
    event: Dict[str, Any] = {
        "t": time.perf_counter(),
        "kind": kind,
        "request": current_request.get() if request is None else request,
        "session": None if session is None else id(session),
        "connection": None if connection is None else id(connection),
        "thread": threading.current_thread().name,
    }
    if detail:
        event["detail"] = detail
    event.update(extra)
    line = json.dumps(event)
    with _sink_lock:
        if _sink is not None:
            _sink.write(line + "\n")
            _sink.flush()  # the runner reads while the server runs


def returned_by_garbage_collector() -> bool:
    """True inside a checkin that SQLAlchemy's weakref finaliser makes for a connection nobody returned.

    Both pinned versions check in an abandoned connection through `pool.base._finalize_fairy`, called
    from the weakref callback of its `_ConnectionFairy`: SQLAlchemy 1.4 passes that weakref as `ref`
    (None when called directly), 2.x passes `is_gc_cleanup=True`. A checkin arriving that way is a leak.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_finalize_fairy" and "sqlalchemy" in code.co_filename:
            local = frame.f_locals
            return bool(local.get("is_gc_cleanup")) or local.get("ref") is not None
        frame = frame.f_back
    return False


def _connection_record(connection: Any) -> Any:
    """The pool's record of the DBAPI connection a Core `Connection` holds (one id per pooled connection)."""
    fairy = getattr(connection, "connection", None)  # 1.4 and 2.x: the _ConnectionFairy
    return getattr(fairy, "_connection_record", None) or fairy


_closing: Set[int] = set()  # sessions inside a wrapped close(): a subclass's close calling super() is one close


def _wrap_close(cls: type, name: str) -> None:
    """Record `cls.<name>()` (close, reset) as the session's close; once per class that defines it."""
    original = cls.__dict__.get(name)
    if original is None or getattr(original, "_doctor_wrapped", False):
        return

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        if id(self) in _closing:
            return original(self, *args, **kwargs)
        _closing.add(id(self))
        try:
            record("session_close", session=self, detail=None if name == "close" else f"{name}()")
            return original(self, *args, **kwargs)
        finally:
            _closing.discard(id(self))

    wrapped._doctor_wrapped = True  # type: ignore[attr-defined]
    wrapped.__wrapped__ = original  # type: ignore[attr-defined]
    wrapped.__name__ = name
    setattr(cls, name, wrapped)


def _wrap_closes(session_class: type) -> None:
    # An app's Session subclass may override close() and call super() only sometimes (ours skips an
    # empty session): what counts is that the app called close().
    for cls in session_class.__mro__:
        for name in ("close", "reset"):
            _wrap_close(cls, name)


def install(events_path: str) -> None:
    """Open the event file and hook SQLAlchemy; call before the target (or anything of it) is imported."""
    global _sink
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import Pool

    _sink = open(events_path, "a", encoding="utf-8")
    original_init = Session.__init__

    def session_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        _wrap_closes(type(self))
        record("session_made", session=self)

    session_init._doctor_wrapped = True  # type: ignore[attr-defined]
    if not getattr(original_init, "_doctor_wrapped", False):
        Session.__init__ = session_init  # type: ignore[method-assign]
    _wrap_closes(Session)

    event.listen(Session, "after_begin", lambda session, transaction, connection: record(
        "begin", session=session, connection=_connection_record(connection)))
    event.listen(Session, "after_commit", lambda session: record("commit", session=session))
    event.listen(Session, "after_rollback", lambda session: record("rollback", session=session))
    event.listen(Pool, "checkout", lambda dbapi, connection_record, proxy: record(
        "checkout", connection=connection_record))
    event.listen(Pool, "checkin", _checkin)
    event.listen(Engine, "before_cursor_execute", _before_cursor_execute)


def _before_cursor_execute(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
    if statement.lstrip()[:7].upper().startswith(WRITES):
        record("write", connection=_connection_record(connection))


def _checkin(dbapi_connection: Any, connection_record: Any) -> None:
    if returned_by_garbage_collector():
        record("checkin_gc", connection=connection_record, detail="returned by the garbage collector")
    else:
        record("checkin", connection=connection_record)


class RequestRecorder:
    """Outermost ASGI layer: numbers each HTTP request, notes what the app hands the server, and its return."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        number = next(_request_numbers)
        token = current_request.set(number)
        record("request_start", detail=f"{scope['method']} {scope['path']}")

        async def recording_send(message: Dict[str, Any]) -> None:
            # Noted when the app hands the message over, so a send that fails (client gone) still shows.
            if message["type"] == "http.response.start":
                record("response_start", detail=str(message["status"]))
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record("response_end")
            await send(message)

        outcome, error_lines = None, None
        try:
            await self.app(scope, receive, recording_send)
        except BaseException as error:
            outcome = f"raised {type(error).__name__}"
            if type(error).__name__ not in NOT_APP_ERRORS:
                formatted = traceback.format_exception(type(error), error, error.__traceback__)
                error_lines = "".join(formatted).rstrip().splitlines()[-TRACEBACK_LINES:]
            raise
        finally:
            record("app_return", detail=outcome, **({"traceback": error_lines} if error_lines else {}))
            current_request.reset(token)
