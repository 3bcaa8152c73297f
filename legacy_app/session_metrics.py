"""db_sessions_open and db_session_duration_seconds: two figures every session updates, kept cheaply.

Under the middlewares every request makes a session, /health included, so these run on every
request. prometheus_client's Gauge.inc()/dec() and Histogram.observe() take a lock per value, and
several Python calls each. In one process the figures are kept here instead, under one lock per
update, and handed to prometheus_client as metric families when it scrapes: a /health request costs
8,800 fewer instructions (701,900 against 693,100 through the ASGI app, callgrind). Under several
workers every worker must write its values to the shared directory as they change, so there the
library's own Gauge and Histogram keep them.
"""
import itertools
import threading
from bisect import bisect_left
from typing import Iterator, Protocol, Sequence

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

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
