"""Password hashing has its own bounded lane: a registration waits for one up to DB_POOL_TIMEOUT, one
that gets none in time is a 503 with Retry-After and stores nothing, and reads never wait behind hashing.

What happened is judged by its order (GatedHasher.events), not by how long anything took."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator, List, Tuple

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from legacy_app.config import ASGI_MIDDLEWARE, ConfigError, Settings
from legacy_app.accounts.hashing_lane import HASHING_MEMORY_BUDGET_KIB, HashingLane, lane_size
from legacy_app.main import create_app

from ..conftest import CHEAP_HASHER, FAST_HASHING, count_rows, database_url_for
from ..support.live_server import wait_until


class GatedHasher:
    """Hashes (cheaply) only once the test opens the gate, and says when a hash has begun: a
    registration that holds its lane exactly as long as the test wants.

    `events` is what happened, in order: each "hash began" and "hash ended", and what the test and
    the WatchedLane record beside them."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.gate = threading.Event()
        self.events: List[str] = []
        self._lock = threading.Lock()

    def record(self, event: str) -> None:
        with self._lock:
            self.events.append(event)

    def hash(self, password: str) -> str:
        self.record("hash began")
        self.started.release()
        try:
            assert self.gate.wait(timeout=30), "the test never opened the gate"
            return CHEAP_HASHER.hash(password)
        finally:
            self.record("hash ended")


class WatchedLane(HashingLane):
    """The service's own lane, recording "lane asked" when a registration asks it for a thread."""

    def __init__(self, lane: HashingLane, hasher: GatedHasher) -> None:
        super().__init__(lane.size, lane.wait_seconds)
        self.hasher = hasher

    async def run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        self.hasher.record("lane asked")
        return await super().run(function, *args, **kwargs)


@contextmanager
def gated_service(database_url: str, lane_wait: float) -> Iterator[Tuple[TestClient, GatedHasher]]:
    """The service with one hashing lane, a wait of `lane_wait` s for it (DB_POOL_TIMEOUT), a GatedHasher
    and a WatchedLane."""
    settings = Settings(database_url=database_url, session_strategy=ASGI_MIDDLEWARE, hashing_threads=1,
                        pool_timeout=lane_wait, **FAST_HASHING)
    app = create_app(settings)
    hasher = app.state.password_hasher = GatedHasher()
    app.state.hashing_lane = WatchedLane(app.state.hashing_lane, hasher)
    with TestClient(app) as client:
        yield client, hasher
    hasher.gate.set()
    app.state.engine.dispose()


@pytest.fixture
def gated(database_url):
    """The gated service on each database, waiting 0.5 s for the lane."""
    with gated_service(database_url, lane_wait=0.5) as service:
        yield service


@pytest.fixture
def patient(tmp_path):
    """The gated service on SQLite, waiting 60 s for the lane: far longer than the test takes to free it."""
    with gated_service(database_url_for("sqlite", tmp_path), lane_wait=60) as service:
        yield service


def register(client, email: str):
    return client.post("/users/", json={"email": email, "password": "secret"})


def test_a_registration_that_gets_no_lane_in_time_is_503_with_retry_after_and_stores_nothing(gated, database_url):
    client, hasher = gated
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(register, client, "first@example.com")
        assert hasher.started.acquire(timeout=10)  # the only lane is now hashing
        refused = register(client, "second@example.com")
        hasher.record("second answered")
        hasher.gate.set()
        assert first.result(timeout=30).status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {"detail": "Too many registrations at once, try again shortly"}
    # It asked for the lane while the first held it, and was answered while the first was still
    # hashing: it gave up on the lane (after DB_POOL_TIMEOUT), it did not wait for it to free.
    assert hasher.events == ["lane asked", "hash began", "lane asked", "second answered", "hash ended"]
    assert client.get("/users/", params={"email": "second@example.com"}).json() == []
    assert count_rows(database_url, "users") == 1
    assert register(client, "second@example.com").status_code == 200  # the lane is free again


def test_a_registration_waits_for_a_lane_that_comes_free_in_time(patient):
    client, hasher = patient
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(register, client, "first@example.com")
        assert hasher.started.acquire(timeout=10)  # the only lane is now hashing
        second = pool.submit(register, client, "second@example.com")
        wait_until(lambda: hasher.events.count("lane asked") == 2, message="the second registration asking for the lane")
        hasher.gate.set()  # the lane comes free while the second waits for it
        assert (first.result(timeout=30).status_code, second.result(timeout=30).status_code) == (200, 200)
    # One hash at a time: the second began once the first had ended.
    assert hasher.events == ["lane asked", "hash began", "lane asked", "hash ended", "hash began", "hash ended"]


def test_reads_do_not_wait_behind_hashing(gated):
    client, hasher = gated
    hasher.gate.set()
    user_id = register(client, "reader@example.com").json()["id"]
    hasher.gate.clear()
    hasher.events.clear()
    # One token in the shared thread pool, where reads on PostgreSQL and MariaDB run: had hashing
    # taken it, every read would wait for the hash.
    client.portal.call(_shrink_default_thread_pool)
    with ThreadPoolExecutor(max_workers=3) as pool:
        registrations = [pool.submit(register, client, f"burst{n}@example.com") for n in range(3)]
        assert hasher.started.acquire(timeout=10)
        for _ in range(5):
            response = client.get(f"/users/{user_id}")
            assert response.status_code == 200
            hasher.record("read answered")
        hasher.gate.set()
        statuses = sorted(future.result(timeout=30).status_code for future in registrations)
    assert statuses[0] == 200 and set(statuses) <= {200, 503}
    # Every read was answered while the first hash of the burst was in progress (held at the gate).
    events = hasher.events
    reads = [n for n, event in enumerate(events) if event == "read answered"]
    assert len(reads) == 5 and events.index("hash began") < reads[0] and reads[-1] < events.index("hash ended"), events


def _shrink_default_thread_pool() -> None:
    anyio.to_thread.current_default_thread_limiter().total_tokens = 1


def test_lane_size_follows_the_cpus_and_the_memory_of_one_hash():
    cpus = len(os.sched_getaffinity(0))
    assert lane_size(Settings(argon2_memory_kib=64 * 1024)) == min(cpus, HASHING_MEMORY_BUDGET_KIB // (64 * 1024))
    assert lane_size(Settings(argon2_memory_kib=HASHING_MEMORY_BUDGET_KIB)) == 1
    assert lane_size(Settings(argon2_memory_kib=2 * HASHING_MEMORY_BUDGET_KIB)) == 1  # never none
    assert lane_size(Settings(hashing_threads=3)) == 3


def test_hashing_threads_is_read_from_the_environment_and_refused_below_zero():
    assert Settings.from_env({"HASHING_THREADS": "3"}).hashing_threads == 3
    with pytest.raises(ConfigError, match=r"^HASHING_THREADS must be an integer >= 0 \(0: from the CPU count\); got -1$"):
        Settings.from_env({"HASHING_THREADS": "-1"})
