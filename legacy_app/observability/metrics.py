"""Prometheus metrics: what they are, the database's hooks that keep them, and how a scrape reads them.

The HTTP figures come from http/observer.py (every request; it also answers GET /metrics); the
database's from the hooks below (the engine's pool, the sessions and their transactions).
Under `serve --workers N` every worker writes its values to PROMETHEUS_MULTIPROC_DIR, and a scrape
of any worker reads them all (prometheus_client's multiprocess mode): `serve` makes that directory.
"""
import itertools
import os
import shutil
import tempfile
import threading
from bisect import bisect_left
from contextlib import contextmanager
from time import perf_counter
from typing import Any, Iterator, Optional, Protocol, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import SessionTransaction, sessionmaker

from ..sessions import SessionFactory, measured_session_class, refuses_use_after_close

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. A read takes well under a millisecond; the pool timeout defaults to 10 s and
# PostgreSQL's idle-in-transaction backstop to 60 s, so each has a bucket at its limit.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TRANSACTION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """One app's metrics, in a registry of its own (a test process builds many apps).

    Gauges are summed over the live workers ("livesum") in multiprocess mode.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"], registry=registry,
        )
        self.request_duration = Histogram(
            "http_request_duration_seconds", "Time from a request's arrival to the end of its response",
            ["method", "route"], buckets=REQUEST_BUCKETS, registry=registry,
        )
        self.pool_checked_out = Gauge(
            "db_pool_checked_out", "Pooled database connections in use now",
            registry=registry, multiprocess_mode="livesum",
        )
        self.pool_capacity = Gauge(
            "db_pool_capacity", "Connections the pool may have in use at once (DB_POOL_SIZE + DB_MAX_OVERFLOW)",
            registry=registry, multiprocess_mode="livesum",
        )
        self.pool_checkout_wait = Histogram(
            "db_pool_checkout_wait_seconds",
            "Time from a session's transaction starting to its connection being ready (pool wait, ping, BEGIN)",
            buckets=WAIT_BUCKETS, registry=registry,
        )
        self.pool_timeouts = Counter(
            "db_pool_timeouts_total", "Requests answered 503 because no connection was free within DB_POOL_TIMEOUT",
            registry=registry,
        )
        # db_sessions_open and db_session_duration_seconds
        self.sessions = session_metrics(registry, REQUEST_BUCKETS, multiprocess=multiprocess_mode())
        self.transaction_duration = Histogram(
            "db_transaction_duration_seconds", "Time a session's transaction held its connection, begin to end",
            buckets=TRANSACTION_BUCKETS, registry=registry,
        )
        self.sessions_used_after_close = Counter(
            "db_sessions_used_after_close_total",
            "Statements refused because their session was already closed (http-middleware: late use)",
            registry=registry,
        )

    def scrape(self) -> bytes:
        directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
        if not directory:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        forget_dead_workers(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)


def multiprocess_mode() -> bool:
    """Whether every worker writes its values to PROMETHEUS_MULTIPROC_DIR, and a scrape reads them from there."""
    return bool(os.environ.get(MULTIPROC_DIR_VARIABLE))


@contextmanager
def multiprocess_directory(workers: int) -> Iterator[None]:
    """For `serve --workers N`, N > 1: a fresh directory where every worker writes its values.

    Set in the environment before uvicorn spawns the workers, so each sees it before it imports
    prometheus_client; removed once serving ends. One process needs none, and a directory the
    operator set (a gunicorn deployment) is theirs to manage.
    """
    if workers < 2 or os.environ.get(MULTIPROC_DIR_VARIABLE):
        yield
        return
    directory = tempfile.mkdtemp(prefix="legacy_app-metrics-")
    os.environ[MULTIPROC_DIR_VARIABLE] = directory
    try:
        yield
    finally:
        del os.environ[MULTIPROC_DIR_VARIABLE]
        shutil.rmtree(directory, ignore_errors=True)


def forget_dead_workers(directory: str) -> None:
    """Drop the gauge files of workers that are gone, so a killed worker's last values stop counting.

    A worker that stops normally does this itself (mark_this_worker_dead); one killed with SIGKILL
    cannot, and uvicorn starts its replacement under a new pid. Counters and histograms of dead
    workers stay: their totals must never go down.
    """
    from prometheus_client import multiprocess

    for pid in {_pid_of(name) for name in os.listdir(directory) if name.startswith("gauge_live")}:
        if pid is not None and not _is_alive(pid):
            multiprocess.mark_process_dead(pid, directory)


def mark_this_worker_dead() -> None:
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), directory)


def _pid_of(file_name: str) -> Optional[int]:
    stem = file_name.rsplit(".", 1)[0]  # gauge_livesum_1234.db
    digits = stem.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else None


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


# --- db_sessions_open and db_session_duration_seconds: two figures every session updates, kept cheaply ---
# Under the middlewares every request makes a session, /health included, so these run on every
# request. prometheus_client's Gauge.inc()/dec() and Histogram.observe() take a lock per value, and
# several Python calls each. In one process the figures are kept here instead, under one lock per
# update, and handed to prometheus_client as metric families when it scrapes (what that saves:
# docs/performance.md). Under several workers every worker must write its values to the shared
# directory as they change, so there the library's own Gauge and Histogram keep them.

OPEN_NAME = "db_sessions_open"
OPEN_HELP = "Database sessions created and not yet closed"
DURATION_NAME = "db_session_duration_seconds"
DURATION_HELP = "Time from a session's creation to its close"


class SessionMetrics(Protocol):
    """opened() when a session is made, closed(seconds) at its first close."""

    def opened(self) -> None: ...

    def closed(self, seconds: float) -> None: ...


def session_metrics(registry: CollectorRegistry, buckets: Sequence[float], *, multiprocess: bool) -> SessionMetrics:
    return WrittenAsTheyChange(registry, buckets) if multiprocess else KeptInProcess(registry, buckets)


class KeptInProcess:
    """Counts under one lock, read by prometheus_client at scrape time (a custom collector)."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self._bounds = tuple(buckets)
        self._lock = threading.Lock()
        self._open = 0
        self._per_bucket = [0] * (len(self._bounds) + 1)  # the last one: above every bound (+Inf)
        self._sum = 0.0
        registry.register(self)

    def opened(self) -> None:
        with self._lock:
            self._open += 1

    def closed(self, seconds: float) -> None:
        bucket = bisect_left(self._bounds, seconds)  # the first bound >= seconds: Prometheus' `le`
        with self._lock:
            self._open -= 1
            self._per_bucket[bucket] += 1
            self._sum += seconds

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            still_open, per_bucket, total = self._open, list(self._per_bucket), self._sum
        cumulative = list(itertools.accumulate(per_bucket))
        les = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]
        yield GaugeMetricFamily(OPEN_NAME, OPEN_HELP, value=still_open)
        yield HistogramMetricFamily(DURATION_NAME, DURATION_HELP, buckets=list(zip(les, cumulative)), sum_value=total)


class WrittenAsTheyChange:
    """prometheus_client's own Gauge (summed over live workers) and Histogram: multiprocess mode."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        self._open = Gauge(OPEN_NAME, OPEN_HELP, registry=registry, multiprocess_mode="livesum")
        self._duration = Histogram(DURATION_NAME, DURATION_HELP, buckets=buckets, registry=registry)

    def opened(self) -> None:
        self._open.inc()

    def closed(self, seconds: float) -> None:
        self._open.dec()
        self._duration.observe(seconds)


# --- the database's hooks: the engine's pool, and the session factory's sessions ---------------------
# SQLAlchemy has no event for a session being created or closed, so those two are counted by a
# subclass of the factory's Session class (sessions.measured_session_class); transactions and the
# wait for a connection by Session events on its sessionmaker; connections in use by the pool (read
# at scrape time, or kept by its checkout and checkin events under several workers).

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
