"""Password hashing has its own bounded lane: a registration that gets none in time is a 503 with
Retry-After and stores nothing, and reads never wait behind hashing."""
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from legacy_app.config import ASGI_MIDDLEWARE, ConfigError, Settings
from legacy_app.hashing_lane import HASHING_MEMORY_BUDGET_KIB, lane_size
from legacy_app.main import create_app

from .conftest import CHEAP_HASHER, FAST_HASHING, count_rows


class GatedHasher:
    """Hashes (cheaply) only once the test opens the gate, and says when a hash has begun: a
    registration that holds its lane exactly as long as the test wants."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.gate = threading.Event()

    def hash(self, password: str) -> str:
        self.started.release()
        assert self.gate.wait(timeout=30), "the test never opened the gate"
        return CHEAP_HASHER.hash(password)


@pytest.fixture
def gated(database_url):
    """The service with one hashing lane, a 0.5 s wait for it, and a GatedHasher."""
    settings = Settings(database_url=database_url, session_strategy=ASGI_MIDDLEWARE, hashing_threads=1,
                        pool_timeout=0.5, **FAST_HASHING)
    app = create_app(settings)
    hasher = app.state.password_hasher = GatedHasher()
    with TestClient(app) as client:
        yield client, hasher
    hasher.gate.set()
    app.state.engine.dispose()


def register(client, email: str):
    return client.post("/users/", json={"email": email, "password": "secret"})


def test_a_registration_that_gets_no_lane_in_time_is_503_with_retry_after_and_stores_nothing(gated, database_url):
    client, hasher = gated
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(register, client, "first@example.com")
        assert hasher.started.acquire(timeout=10)  # the only lane is now hashing
        began = time.perf_counter()
        refused = register(client, "second@example.com")
        waited = time.perf_counter() - began
        hasher.gate.set()
        assert first.result(timeout=30).status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {"detail": "Too many registrations at once, try again shortly"}
    assert 0.4 <= waited < 5  # it waited DB_POOL_TIMEOUT (0.5 s) for the lane, then gave up
    assert client.get("/users/", params={"email": "second@example.com"}).json() == []
    assert count_rows(database_url, "users") == 1
    assert register(client, "second@example.com").status_code == 200  # the lane is free again


def test_reads_do_not_wait_behind_hashing(gated):
    client, hasher = gated
    hasher.gate.set()
    user_id = register(client, "reader@example.com").json()["id"]
    hasher.gate.clear()
    # One token in the shared thread pool, where reads on PostgreSQL and MariaDB run: had hashing
    # taken it, every read would wait for the hash.
    client.portal.call(_shrink_default_thread_pool)
    with ThreadPoolExecutor(max_workers=3) as pool:
        registrations = [pool.submit(register, client, f"burst{n}@example.com") for n in range(3)]
        assert hasher.started.acquire(timeout=10)
        for _ in range(5):
            began = time.perf_counter()
            response = client.get(f"/users/{user_id}")
            assert response.status_code == 200
            assert time.perf_counter() - began < 0.4
        hasher.gate.set()
        statuses = sorted(future.result(timeout=30).status_code for future in registrations)
    assert statuses[0] == 200 and set(statuses) <= {200, 503}


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
