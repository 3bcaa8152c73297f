"""Each drill starts real servers, causes one fault, and reports what clients saw."""
import os
import random
import signal
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from requests import RequestException
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from legacy_app.config import FLOOR_HASHING_ENV, Settings
from legacy_app.database import begin_write, create_engine_from
from legacy_app.server.process import ServerProcess
from legacy_app.server.client import http_session

from .tcp_proxy import TcpProxy


@dataclass
class DrillResult:
    name: str
    database: str
    passed: bool
    figures: Dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        figures = ", ".join(f"{key}={value}" for key, value in self.figures.items())
        return f"{'PASS' if self.passed else 'FAIL'} {self.name} [{self.database}]: {figures}"


def _dialect(url: str) -> str:
    return make_url(url).get_backend_name()


@contextmanager
def _server(url: str, log_dir: Path, name: str, app: str = "legacy_app.main:app", **env: str) -> Iterator[ServerProcess]:
    server = ServerProcess(app, {"DATABASE_URL": url, **FLOOR_HASHING_ENV, **env}, log_dir / f"{name}.log",
                           extra_args=["--no-access-log"] if app != "cli" else [])
    with server:
        yield server


@contextmanager
def _database_blocked(url: str, seconds: float) -> Iterator[None]:
    """Hold, from outside the service, the lock every registration needs; release it after `seconds`."""
    engine = create_engine_from(Settings(database_url=url))
    db = Session(bind=engine)
    dialect = _dialect(url)
    if dialect == "sqlite":
        begin_write(db)  # BEGIN IMMEDIATE: the write lock
    elif dialect == "postgresql":
        db.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
    else:
        db.execute(text("LOCK TABLES users WRITE"))

    def release() -> None:
        if dialect == "mysql":
            db.execute(text("UNLOCK TABLES"))
        db.rollback()
        db.close()

    timer = threading.Timer(seconds, release)
    timer.start()
    try:
        yield
    finally:
        timer.join()
        engine.dispose()


def pool_exhaustion(url: str, log_dir: Path, requests: int = 100, block_seconds: float = 3.0) -> DrillResult:
    """Pool of 2, no overflow, 1 s timeout; the database blocked while `requests` registrations arrive."""
    pool_timeout = 1.0
    env = {"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT": str(pool_timeout),
           # A lane per registration: else the hashing lane turns most away before they reach the pool.
           "HASHING_THREADS": str(requests)}
    with _server(url, log_dir, "pool", **env) as server:
        run = f"{time.time_ns()}"
        outcomes: List[Tuple[Any, float, bool]] = []
        lock = threading.Lock()

        def one(n: int) -> None:
            session = http_session()
            began = time.perf_counter()
            try:
                reply = session.post(f"{server.url}/users/", json={"email": f"pool{run}-{n}@drill.example.com", "password": "drill"}, timeout=60)
                status: Any = reply.status_code
                has_retry_after = reply.status_code == 503 and "retry-after" in reply.headers
            except RequestException as error:
                status, has_retry_after = type(error).__name__, False
            finally:
                session.close()
            with lock:
                outcomes.append((status, time.perf_counter() - began, has_retry_after))

        timeouts_before = _metric(server.url, "db_pool_timeouts_total")
        began = time.perf_counter()
        with _database_blocked(url, block_seconds):
            with ThreadPoolExecutor(max_workers=requests) as pool:
                futures = [pool.submit(one, n) for n in range(requests)]
        for future in futures:
            future.result()
        wall = time.perf_counter() - began
        with http_session() as session:
            after = session.get(f"{server.url}/health/ready", timeout=60).status_code
        timeouts_counted = _metric(server.url, "db_pool_timeouts_total") - timeouts_before
        checked_out_after = _metric(server.url, "db_pool_checked_out")
        log = server.log()
    counts = Counter(str(status) for status, _, _ in outcomes)
    unavailable = [o for o in outcomes if o[0] == 503]
    passed = (
        set(counts) <= {"200", "503"}
        and all(has_retry_after for _, _, has_retry_after in unavailable)
        and after == 200
        and timeouts_counted == len(unavailable)  # each 503 of the drill is a pool timeout, counted once
        and checked_out_after == 0
        and "Traceback" not in log
    )
    return DrillResult("pool-exhaustion", _dialect(url), passed, {
        "requests": requests, "statuses": dict(sorted(counts.items())),
        "503_with_retry_after": sum(1 for o in unavailable if o[2]),
        "max_latency_s": round(max(o[1] for o in outcomes), 2), "wall_s": round(wall, 2),
        "ready_after": after, "pool_timeouts_counted": timeouts_counted, "pool_checked_out_after": checked_out_after,
        "tracebacks": log.count("Traceback"),
    })


def _metric(url: str, name: str) -> float:
    """One unlabelled sample of the server's GET /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with http_session() as session:
        text = session.get(f"{url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    raise LookupError(f"{name} not in /metrics")


def outage(url: str, log_dir: Path, outage_seconds: float = 3.0) -> DrillResult:
    """The service reaches the database through a proxy that is cut, then restored."""
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    with _server(proxied, log_dir, "outage") as server:
        session = http_session()

        def status(path: str) -> int:
            return session.get(server.url + path, timeout=30).status_code

        before = status("/users/?limit=1")
        proxy.cut()
        during: List[Tuple[int, float]] = []
        liveness, readiness = set(), set()
        cut_at = time.perf_counter()
        while time.perf_counter() - cut_at < outage_seconds:
            began = time.perf_counter()
            during.append((status("/users/?limit=1"), time.perf_counter() - began))
            liveness.add(status("/health"))
            readiness.add(status("/health/ready"))
            time.sleep(0.1)
        proxy.start()
        restored_at = time.perf_counter()
        recovered: Optional[float] = None
        while time.perf_counter() - restored_at < 30:
            if status("/users/?limit=1") == 200 and status("/health/ready") == 200:
                recovered = time.perf_counter() - restored_at
                break
            time.sleep(0.1)
        session.close()
        log = server.log()
    proxy.cut()
    statuses = Counter(status for status, _ in during)
    passed = (
        before == 200 and set(statuses) == {503} and liveness == {200} and readiness == {503}
        and recovered is not None and recovered < 10 and "Traceback" not in log
    )
    return DrillResult("outage", _dialect(url), passed, {
        "statuses_during": dict(statuses), "max_latency_during_s": round(max(t for _, t in during), 2),
        "health_during": sorted(liveness), "ready_during": sorted(readiness),
        "recovery_s": None if recovered is None else round(recovered, 2), "tracebacks": log.count("Traceback"),
    })


def kill_during_writes(url: str, log_dir: Path, rounds: int = 3, writers: int = 8) -> DrillResult:
    """SIGKILL the server while `writers` clients register users; every acknowledged one must survive."""
    acknowledged: List[str] = []
    lost: List[str] = []
    for round_number in range(rounds):
        with _server(url, log_dir, f"kill-{round_number}") as server:
            stop = threading.Event()
            lock = threading.Lock()

            def writer(n: int) -> None:
                session = http_session()
                k = 0
                while not stop.is_set():
                    email = f"kill{time.time_ns()}-{round_number}-{n}-{k}@drill.example.com"
                    k += 1
                    try:
                        reply = session.post(f"{server.url}/users/", json={"email": email, "password": "drill"}, timeout=10)
                    except RequestException:
                        break  # the server is gone: whatever was not acknowledged may be lost
                    if reply.status_code == 200:
                        with lock:
                            acknowledged.append(email)
                session.close()

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
            for thread in threads:
                thread.start()
            time.sleep(random.uniform(1.0, 2.0))
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()
            stop.set()
            for thread in threads:
                thread.join()
    engine = create_engine_from(Settings(database_url=url))
    try:
        with engine.connect() as connection:
            stored = {row[0] for row in connection.execute(text("SELECT email FROM users WHERE email LIKE 'kill%'"))}
            integrity = (
                connection.execute(text("PRAGMA integrity_check")).scalar() if _dialect(url) == "sqlite" else "n/a"
            )
    finally:
        engine.dispose()
    lost = [email for email in acknowledged if email not in stored]
    passed = bool(acknowledged) and not lost and integrity in ("ok", "n/a")
    return DrillResult("kill-9", _dialect(url), passed, {
        "rounds": rounds, "writers": writers, "acknowledged": len(acknowledged), "lost": len(lost),
        "integrity_check": integrity,
    })


def sigterm_in_flight(url: str, log_dir: Path, requests: int = 50) -> DrillResult:
    """SIGTERM while `requests` registrations (default argon2 cost) are in flight."""
    # DB_POOL_TIMEOUT is also the wait for a hashing lane: long enough here that every registration
    # queued for one is still in flight, and finished, after the signal.
    with _server(url, log_dir, "sigterm", app="cli", ARGON2_TIME_COST="3", ARGON2_MEMORY_KIB="65536",
                 ARGON2_PARALLELISM="4", DB_POOL_TIMEOUT="60") as server:
        run = f"{time.time_ns()}"
        statuses: List[Any] = []
        answered_at: List[float] = []

        def one(n: int) -> None:
            session = http_session()
            try:
                reply = session.post(f"{server.url}/users/", json={"email": f"term{run}-{n}@drill.example.com", "password": "drill"}, timeout=60)
                statuses.append(reply.status_code)
                answered_at.append(time.perf_counter())
            except RequestException as error:
                statuses.append(type(error).__name__)
            finally:
                session.close()

        with ThreadPoolExecutor(max_workers=requests) as pool:
            for n in range(requests):
                pool.submit(one, n)
            # SIGTERM once the server has read every request (a request still unread then is never
            # started: uvicorn closes that connection), long before it has finished them.
            _wait_until_read(server.port, lambda: requests - len(statuses), timeout=10)
            began = time.perf_counter()
            server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(timeout=60)
        shutdown = time.perf_counter() - began
        log = server.log()
    counts = Counter(str(status) for status in statuses)
    after_signal = sum(1 for moment in answered_at if moment > began)
    passed = counts == Counter({"200": requests}) and after_signal > 0 and exit_code == 0 and "Traceback" not in log
    return DrillResult("sigterm", _dialect(url), passed, {
        "in_flight": requests, "statuses": dict(counts), "answered_after_sigterm": after_signal,
        "exit_code": exit_code, "shutdown_s": round(shutdown, 2),
    })


def _wait_until_read(port: int, unanswered: Callable[[], int], timeout: float) -> None:
    """Until every unanswered request's connection is open with no unread bytes (Linux /proc/net/tcp)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unread = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    established = fields[3] == "01"
                    if local_port == port and established:
                        unread.append(int(fields[4].split(":")[1], 16))  # rx_queue
        if len(unread) >= unanswered() and not any(unread):
            time.sleep(0.1)  # the bytes are read; let the server start on them
            return
        time.sleep(0.05)


def all_drills(urls: List[str], log_dir: Optional[Path] = None) -> Iterator[DrillResult]:
    from .lists import list_drills  # not at the top: lists imports this module
    with tempfile.TemporaryDirectory(prefix="legacy_app_drills_") as scratch:
        logs = log_dir or Path(scratch)
        for url in urls:
            yield pool_exhaustion(url, logs)
            if _dialect(url) != "sqlite":
                yield outage(url, logs)
            yield kill_during_writes(url, logs)
            yield sigterm_in_flight(url, logs)
            yield from list_drills(url, logs)
