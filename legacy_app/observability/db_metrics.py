"""Database figures: the engine's pool, and the session factory's sessions.

SQLAlchemy has no event for a session being created or closed, so those two are counted by a
subclass of the factory's Session class (sessions.measured_session_class); transactions and the wait for a connection by Session
events on its sessionmaker; connections in use by the pool (read at scrape time, or kept by its
checkout and checkin events under several workers).
"""
from time import perf_counter
from typing import Any, Callable

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from ..sessions import measured_session_class, refuses_use_after_close
from .metrics import Metrics, multiprocess_mode

SessionFactory = Callable[[], Session]

# Set on a connection record while it counts in db_pool_checked_out. A checkout that fails after
# the pool handed out a record (the database went away) still fires "checkin", without "checkout".
_COUNTED = "legacy_app.counted_as_checked_out"


def measure_pool(engine: Engine, metrics: Metrics) -> None:
    """Count connections in use: read from the pool at scrape time, or counted by its events.

    In one process the scrape asks the pool itself, which costs requests nothing (the events would
    cost every request: docs/performance.md). Several workers must each write their count where the
    scraping worker can read it, so there the pool's checkout and checkin events keep it; their
    listeners belong to the pool and survive engine.dispose().
    """
    metrics.pool_capacity.set(_capacity(engine))
    if not counts_by_events() and hasattr(engine.pool, "checkedout"):  # StaticPool has no count
        metrics.pool_checked_out.set_function(lambda: engine.pool.checkedout())
        return
    checked_out = metrics.pool_checked_out

    def on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        record.record_info[_COUNTED] = True
        checked_out.inc()

    def on_return(_dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.record_info.pop(_COUNTED, False):
            checked_out.dec()

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_return)
    event.listen(engine, "detach", on_return)  # a detached connection leaves the pool for good


def counts_by_events() -> bool:
    """Whether gauges must be kept by events: in multiprocess mode, a scrape reads only files."""
    return multiprocess_mode()


def _capacity(engine: Engine) -> int:
    pool = engine.pool
    if not hasattr(pool, "size"):  # StaticPool (in-memory SQLite): one shared connection
        return 1
    overflow = getattr(pool, "_max_overflow", 0)  # QueuePool keeps it private; -1: no limit
    return pool.size() + max(overflow, 0)


def measure_sessions(factory: SessionFactory, metrics: Metrics) -> SessionFactory:
    """The same factory, making sessions that count themselves.

    Only a sessionmaker can be measured: its Session class is subclassed, its options kept. Any
    other callable (a test's recording factory) is returned as it is, and its sessions not counted.
    """
    if not isinstance(factory, sessionmaker):
        return factory
    measured_class = measured_session_class(
        factory.class_, metrics.sessions.opened, metrics.sessions.closed,
        metrics.sessions_used_after_close.inc if refuses_use_after_close(factory) else None,
    )
    measured = sessionmaker(class_=measured_class, **factory.kw)
    _listen_for_transactions(measured, metrics)
    return measured


def _listen_for_transactions(factory: sessionmaker, metrics: Metrics) -> None:
    checkout_wait = metrics.pool_checkout_wait
    transaction_duration = metrics.transaction_duration

    @event.listens_for(factory, "after_transaction_create")
    def asked(session: Any, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the session's own transaction, not a savepoint
            session._asked_at = perf_counter()

    @event.listens_for(factory, "after_begin")
    def connected(session: Any, transaction: SessionTransaction, _connection: Any) -> None:
        if transaction.parent is None and session._asked_at is not None:
            session._connected_at = now = perf_counter()
            checkout_wait.observe(now - session._asked_at)
            session._asked_at = None

    @event.listens_for(factory, "after_transaction_end")
    def ended(session: Any, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            if session._connected_at is not None:
                transaction_duration.observe(perf_counter() - session._connected_at)
            session._asked_at = session._connected_at = None
