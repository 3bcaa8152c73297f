"""A PostgreSQL connection that gives no answer in time is cut by the client.

libpq has no read timeout. Keepalives and tcp_user_timeout (database.py) end a connection whose
packets go unacknowledged, but a partition behind anything that still acknowledges them (a proxy,
a load balancer, a NAT with state) leaves libpq waiting for an answer for as long as the partition
lasts, and the request, its thread and its pooled connection with it.

So every checked-out connection carries a deadline: the ping that replaces SQLAlchemy's pre-ping
(below) gets PING_SECONDS, each statement (until its answer), commit and rollback DB_STATEMENT_TIMEOUT
plus ANSWER_GRACE_SECONDS (the server ends the statement at DB_STATEMENT_TIMEOUT and needs a moment
to say so). One watchdog thread per process shuts down the socket of a connection past its deadline:
the call blocked on it fails at once as a lost connection, which the pool replaces and the error
handlers answer 503 (errors.py).
"""
import os
import socket
import threading
import time
from typing import Any, Dict

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

PING_SECONDS = 2.0  # a ping is one round trip
ANSWER_GRACE_SECONDS = 1.0
WATCH_INTERVAL_SECONDS = 0.25
_FRESH = "legacy_app_fresh"  # on a connection record from its connect until its first checkout


class _Watchdog:
    def __init__(self) -> None:
        self._deadlines: Dict[Any, float] = {}  # DBAPI connection -> time.monotonic() deadline
        self._lock = threading.Lock()
        self._thread_pid = 0
        os.register_at_fork(after_in_child=self._forget_parent)

    def _forget_parent(self) -> None:
        # A forked child must never cut its parent's connections, whose sockets it shares; and its
        # copy of the lock may have been held by the parent's watchdog thread, which it lacks.
        self._deadlines = {}
        self._lock = threading.Lock()
        self._thread_pid = 0

    def arm(self, dbapi_connection: Any, seconds: float) -> None:
        with self._lock:
            self._deadlines[dbapi_connection] = time.monotonic() + seconds
            if self._thread_pid != os.getpid():  # none yet, or this is a forked child, without it
                self._thread_pid = os.getpid()
                threading.Thread(target=self._watch, name="legacy_app-connection-deadline", daemon=True).start()

    def disarm(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._deadlines.pop(dbapi_connection, None)

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_SECONDS)
            now = time.monotonic()
            # Cut under the lock: released first, the connection could be checked in and handed to
            # another request (re-armed) before the cut, which would then hit a healthy call.
            with self._lock:
                for connection in [c for c, deadline in self._deadlines.items() if deadline <= now]:
                    del self._deadlines[connection]
                    _cut(connection)


def _cut(dbapi_connection: Any) -> None:
    """Shut the connection's socket down, waking whatever waits on it; the driver reports a lost connection."""
    try:
        descriptor = dbapi_connection.fileno()  # psycopg and psycopg2 alike
        with socket.socket(fileno=os.dup(descriptor)) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)  # acts on the socket itself, not only this descriptor
    except Exception:  # already closed (the driver raises its own error then): nothing waits on it
        pass


_watchdog = _Watchdog()


def install(engine: Engine, statement_seconds: float) -> None:
    """Give every connection of `engine` deadlines; the engine must not use pool_pre_ping (this pings)."""
    answer_seconds = statement_seconds + ANSWER_GRACE_SECONDS
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def mark_fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info[_FRESH] = True

    @event.listens_for(engine, "checkout")
    def ping_within_deadline(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # SQLAlchemy's pre-ping runs before the first event a listener could arm a deadline in;
        # this is that ping, armed. DisconnectionError: the pool replaces the connection and retries.
        if record.info.pop(_FRESH, False):  # just connected: nothing to ping, as for SQLAlchemy's pre-ping
            return
        _watchdog.arm(dbapi_connection, PING_SECONDS)
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:  # the driver's error: a dead connection, or one cut by the watchdog
            _watchdog.disarm(dbapi_connection)
            raise exc.DisconnectionError(f"ping failed: {error}") from error
        if alive is False:  # SQLAlchemy 1.4 reports a disconnect so
            _watchdog.disarm(dbapi_connection)
            raise exc.DisconnectionError("ping failed")
        _watchdog.disarm(dbapi_connection)  # armed again by its next statement

    def rearm(connection: Any, *_args: Any) -> None:
        if connection.invalidated:  # its DBAPI connection is gone; asking for it would reconnect
            return
        _watchdog.arm(connection.connection.dbapi_connection, answer_seconds)

    event.listen(engine, "before_cursor_execute", rearm)
    event.listen(engine, "commit", rearm)
    event.listen(engine, "rollback", rearm)

    def answered(connection: Any, *_args: Any) -> None:
        # The statement has its answer: the time the request then spends in Python (building a
        # page of objects) is not the database's silence.
        if not connection.invalidated:
            _watchdog.disarm(connection.connection.dbapi_connection)

    event.listen(engine, "after_cursor_execute", answered)

    def disarm(dbapi_connection: Any, *_args: Any) -> None:
        _watchdog.disarm(dbapi_connection)

    for name in ("checkin", "close", "detach", "invalidate"):
        event.listen(engine, name, disarm)
