"""Load drills: a burst of registrations (memory, reads beside it) and a silent partition of PostgreSQL.

python -m tools.drills.load URL [URL ...] runs only these; python -m tools.drills runs them with the others.
"""
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from requests import RequestException
from sqlalchemy.engine import make_url

from legacy_app.server.client import http_session

from .drills import DrillResult, _dialect, _server
from .tcp_proxy import TcpProxy

# The service's default hashing: the burst is about what it costs.
DEFAULT_HASHING_ENV = {"ARGON2_TIME_COST": "3", "ARGON2_MEMORY_KIB": "65536", "ARGON2_PARALLELISM": "4"}
READ_LATENCY_LIMIT_S = 1.0
# What a worker may add beyond its hashing lanes while it handles the burst (request objects, buffers).
BURST_HEADROOM_MIB = 32


def _rss_kib(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (the peak so far) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _hashing_bound_mib(env: Dict[str, str]) -> Optional[float]:
    """Lanes × ARGON2_MEMORY_KIB for these settings; None for code without a hashing lane."""
    from legacy_app.config import Settings

    settings = Settings.from_env(env)
    if not hasattr(settings, "hashing_threads"):
        return None
    from legacy_app.accounts.hashing_lane import lane_size

    return lane_size(settings) * settings.argon2_memory_kib / 1024


def _timed(method: str, url: str, **kwargs: Any) -> Tuple[Any, float, bool]:
    """(status or the exception's name, seconds, whether a 503 carried Retry-After), on a fresh connection."""
    session = http_session(retries=0)
    began = time.perf_counter()
    try:
        reply = session.request(method, url, timeout=120, **kwargs)
        return reply.status_code, time.perf_counter() - began, reply.status_code != 503 or "retry-after" in reply.headers
    except RequestException as error:
        return type(error).__name__, time.perf_counter() - began, False
    finally:
        session.close()


def registration_burst(url: str, log_dir: Path, registrations: int = 200) -> DrillResult:
    """`registrations` concurrent POST /users/ at the default argon2 cost, while one client reads a user."""
    env = {**DEFAULT_HASHING_ENV}
    with _server(url, log_dir, "burst", **env) as server:
        run = f"{time.time_ns()}"
        with http_session() as session:
            user_id = session.post(f"{server.url}/users/", json={"email": f"reader{run}@drill.example.com", "password": "drill"},
                                   timeout=60).json()["id"]
        pid = server.process.pid
        baseline = _rss_kib(pid, "VmRSS")
        reads: List[Tuple[Any, float, bool]] = []
        done = threading.Event()

        def reader() -> None:
            session = http_session(retries=0)
            while not done.is_set():
                began = time.perf_counter()
                try:
                    status: Any = session.get(f"{server.url}/users/{user_id}", timeout=60).status_code
                except RequestException as error:
                    status = type(error).__name__
                reads.append((status, time.perf_counter() - began, True))
                time.sleep(0.05)
            session.close()

        reading = threading.Thread(target=reader)
        reading.start()
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=registrations) as pool:
            outcomes = list(pool.map(
                lambda n: _timed("POST", f"{server.url}/users/", json={"email": f"burst{run}-{n}@drill.example.com", "password": "drill"}),
                range(registrations)))
        wall = time.perf_counter() - began
        done.set()
        reading.join()
        peak = _rss_kib(pid, "VmHWM")
        log = server.log()
    counts = Counter(str(status) for status, _, _ in outcomes)
    read_latencies = [seconds for _, seconds, _ in reads]
    growth_mib = (peak - baseline) / 1024
    bound_mib = _hashing_bound_mib(env)
    passed = (
        set(counts) <= {"200", "503"}
        and all(ok for _, _, ok in outcomes)
        and {str(status) for status, _, _ in reads} == {"200"}
        and max(read_latencies) < READ_LATENCY_LIMIT_S
        and bound_mib is not None and growth_mib <= bound_mib + BURST_HEADROOM_MIB
        and "Traceback" not in log
    )
    return DrillResult("registration-burst", _dialect(url), passed, {
        "registrations": registrations, "statuses": dict(sorted(counts.items())),
        "503_without_retry_after": sum(1 for status, _, ok in outcomes if status == 503 and not ok),
        "wall_s": round(wall, 1), "rss_before_mib": round(baseline / 1024), "rss_peak_mib": round(peak / 1024),
        "growth_mib": round(growth_mib), "hashing_bound_mib": None if bound_mib is None else round(bound_mib),
        "reads": len(reads), "read_statuses": dict(Counter(str(status) for status, _, _ in reads)),
        "read_median_s": round(statistics.median(read_latencies), 3), "read_max_s": round(max(read_latencies), 2),
        "tracebacks": log.count("Traceback"),
    })


# The drill's own DB_STATEMENT_TIMEOUT and DB_POOL_TIMEOUT, shorter than the defaults so that a
# bounded hole shows them.
PARTITION_STATEMENT_TIMEOUT_S = 3
PARTITION_POOL_TIMEOUT_S = 2
PING_AND_CONNECT_S = 2 + 5  # a pooled connection's ping deadline, then the connect timeout of its replacement
# The longest a data request may take: the wait for a pooled connection, then its ping and
# replacement or a statement's deadline, and a second of slack.
DATA_LIMIT_S = PARTITION_POOL_TIMEOUT_S + max(PING_AND_CONNECT_S, PARTITION_STATEMENT_TIMEOUT_S + 1) + 1
READY_LIMIT_S = 2 + 0.5  # /health/ready's own timeout, and slack for the answer


def black_hole(url: str, log_dir: Path, hole_seconds: float = 15.0) -> DrillResult:
    """PostgreSQL behind a proxy that stops forwarding (no reset) for `hole_seconds`, while a GET /users/{id}
    and a GET /health/ready start every 0.5 s, each on a connection of its own."""
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    limit = DATA_LIMIT_S
    with _server(proxied, log_dir, "black-hole", DB_STATEMENT_TIMEOUT=str(PARTITION_STATEMENT_TIMEOUT_S),
                 DB_POOL_TIMEOUT=str(PARTITION_POOL_TIMEOUT_S)) as server:
        with http_session() as session:
            user_id = session.post(f"{server.url}/users/", json={"email": f"hole{time.time_ns()}@drill.example.com",
                                                                 "password": "drill"}, timeout=60).json()["id"]
        user = f"{server.url}/users/{user_id}"
        with ThreadPoolExecutor(max_workers=5) as pool:  # five connections in the pool, all used once
            before = Counter(status for status, _, _ in pool.map(lambda _: _timed("GET", user), range(5)))
        results: Dict[str, List[Tuple[Any, float, bool]]] = {"users": [], "ready": []}
        threads: List[threading.Thread] = []

        def probe(kind: str, address: str) -> None:
            results[kind].append(_timed("GET", address))

        proxy.black_hole()
        holed_at = time.perf_counter()
        while time.perf_counter() - holed_at < hole_seconds:
            for kind, address in (("users", user), ("ready", f"{server.url}/health/ready")):
                thread = threading.Thread(target=probe, args=(kind, address))
                thread.start()
                threads.append(thread)
            time.sleep(0.5)
        proxy.restore()
        for thread in threads:
            thread.join()
        restored_at = time.perf_counter()
        recovered: Optional[float] = None
        while time.perf_counter() - restored_at < 30:
            if _timed("GET", user)[0] == 200 and _timed("GET", f"{server.url}/health/ready")[0] == 200:
                recovered = time.perf_counter() - restored_at
                break
            time.sleep(0.2)
        log = server.log()
    proxy.cut()
    figures: Dict[str, Any] = {"hole_s": hole_seconds, "statement_timeout_s": PARTITION_STATEMENT_TIMEOUT_S,
                               "pool_timeout_s": PARTITION_POOL_TIMEOUT_S, "pool_warm": dict(before)}
    for kind, outcomes in results.items():
        figures[f"{kind}_statuses"] = dict(Counter(str(status) for status, _, _ in outcomes))
        figures[f"{kind}_max_s"] = round(max(seconds for _, seconds, _ in outcomes), 1)
    slow_users = sum(1 for _, seconds, _ in results["users"] if seconds > limit)
    slow_ready = sum(1 for _, seconds, _ in results["ready"] if seconds > READY_LIMIT_S)
    figures.update({"users_over_limit": f"{slow_users} (limit {limit} s)", "ready_over_limit": f"{slow_ready} (limit {READY_LIMIT_S} s)",
                    "recovery_s": None if recovered is None else round(recovered, 1), "tracebacks": log.count("Traceback")})
    statuses = {str(status) for outcomes in results.values() for status, _, _ in outcomes}
    passed = (
        statuses <= {"200", "503"} and "503" in statuses and slow_users == 0 and slow_ready == 0
        and all(ok for outcomes in results.values() for _, _, ok in outcomes)
        and recovered is not None and "Traceback" not in log
    )
    return DrillResult("black-hole", _dialect(url), passed, figures)


def load_drills(urls: List[str], log_dir: Optional[Path] = None) -> Iterator[DrillResult]:
    with tempfile.TemporaryDirectory(prefix="legacy_app_drills_") as scratch:
        logs = log_dir or Path(scratch)
        for url in urls:
            yield registration_burst(url, logs)
            if _dialect(url) == "postgresql":
                yield black_hole(url, logs)


def main(arguments: List[str]) -> int:
    if not arguments:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = 0
    for result in load_drills(arguments):
        print(result.line(), flush=True)
        failed += not result.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
