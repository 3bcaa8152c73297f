"""Bounded lists: one user filled with items up to the bound, then the size and time of reading it,
and a bounded burst of full pages read concurrently while an unrelated user is read."""
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

from requests import RequestException
from sqlalchemy import text

from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.server.client import http_session

from .drills import DrillResult, _dialect, _server

DESCRIPTION = "d" * 2000  # the longest description an item may have


def _register(url: str, email: str) -> int:
    with http_session() as session:
        reply = session.post(f"{url}/users/", json={"email": email, "password": "drill"}, timeout=60)
    reply.raise_for_status()
    return reply.json()["id"]


def _fill(url: str, user_id: int, attempts: int, writers: int) -> Counter:
    """`attempts` item creations for one user from `writers` threads; their statuses."""
    statuses: Counter = Counter()
    lock = threading.Lock()
    per_writer = [attempts // writers + (n < attempts % writers) for n in range(writers)]

    def writer(count: int) -> None:
        with http_session(retries=0) as session:
            for k in range(count):
                try:
                    reply = session.post(f"{url}/users/{user_id}/items/", json={"title": f"item {k}", "description": DESCRIPTION}, timeout=60)
                    status: Any = reply.status_code
                except RequestException as error:
                    status = type(error).__name__
                with lock:
                    statuses[str(status)] += 1

    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(writer, per_writer))
    return statuses


def _timed_get(session: Any, url: str) -> Tuple[int, int, float]:
    began = time.perf_counter()
    reply = session.get(url, timeout=120)
    return reply.status_code, len(reply.content), time.perf_counter() - began


def _users_before(database_url: str, user_id: int) -> int:
    """How many users come before this one: the `skip` of the page that starts with it."""
    engine = create_engine_from(Settings(database_url=database_url))
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT COUNT(*) FROM users WHERE id < :id"), {"id": user_id}).scalar_one()
    finally:
        engine.dispose()


def bounded_lists(url: str, log_dir: Path, fill: int = 0, writers: int = 8, readers: int = 20, reads_each: int = 3) -> DrillResult:
    """Fill one user with `fill` items (default: the bound + 100) of 2,000 characters, then read it."""
    bound = getattr(Settings(), "max_items_per_user", None)  # None: a service without the bound
    fill = fill or (bound or 1000) + 100
    with _server(url, log_dir, "lists") as server:
        run = time.time_ns()
        filled = _register(server.url, f"lists{run}-full@drill.example.com")
        other = _register(server.url, f"lists{run}-other@drill.example.com")
        began = time.perf_counter()
        statuses = _fill(server.url, filled, fill, writers)
        fill_s = time.perf_counter() - began

        with http_session() as session:
            user_reads = [_timed_get(session, f"{server.url}/users/{filled}") for _ in range(3)]
        stored_items = len(_json(server.url, f"/users/{filled}")["items"])

        page = f"{server.url}/users/?skip={_users_before(url, filled)}&limit=100"
        page_reads: List[Tuple[int, int, float]] = []
        other_reads: List[Tuple[int, int, float]] = []
        done = threading.Event()

        def reader(_: int) -> None:
            with http_session() as session:
                for _ in range(reads_each):
                    page_reads.append(_timed_get(session, page))

        def watch_other() -> None:
            with http_session() as session:
                while not done.is_set():
                    other_reads.append(_timed_get(session, f"{server.url}/users/{other}"))
                    time.sleep(0.05)

        watcher = threading.Thread(target=watch_other)
        began = time.perf_counter()
        watcher.start()
        with ThreadPoolExecutor(max_workers=readers) as pool:
            list(pool.map(reader, range(readers)))
        done.set()
        watcher.join()
        burst_s = time.perf_counter() - began
        log = server.log()

    read_statuses = Counter(str(status) for status, _, _ in user_reads + page_reads + other_reads)
    expected_stored = fill if bound is None else min(fill, bound)
    passed = (
        set(statuses) <= {"200", "409"}
        and statuses["200"] == expected_stored == stored_items
        and bound is not None and stored_items <= bound
        and set(read_statuses) == {"200"}
        and "Traceback" not in log
    )
    return DrillResult("bounded-lists", _dialect(url), passed, {
        "bound": bound, "fill_attempts": fill, "fill_statuses": dict(sorted(statuses.items())), "fill_s": round(fill_s, 1),
        "items_stored": stored_items, "user_bytes": user_reads[-1][1],
        "user_get_s": _spread(t for _, _, t in user_reads),
        "page_requests": len(page_reads), "page_bytes": max(size for _, size, _ in page_reads),
        "page_get_s": _spread(t for _, _, t in page_reads), "burst_wall_s": round(burst_s, 1),
        "other_user_gets": len(other_reads), "other_user_get_s": _spread(t for _, _, t in other_reads),
        "read_statuses": dict(read_statuses), "tracebacks": log.count("Traceback"),
    })


def _json(url: str, path: str) -> Dict[str, Any]:
    with http_session() as session:
        return session.get(url + path, timeout=120).json()


def _spread(seconds: Iterator[float]) -> str:
    """median/max, in seconds."""
    values = list(seconds)
    return f"{statistics.median(values):.3f}/{max(values):.3f}"


def list_drills(url: str, log_dir: Path) -> Iterator[DrillResult]:
    yield bounded_lists(url, log_dir)
