"""The thread hop of database routes: SQLite work runs in at most SQLITE_LANES threads at once."""
import threading
import time

import anyio
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from legacy_app.config import Settings
from legacy_app.database import create_engine_from, make_session_factory
from legacy_app.db_threads import SQLITE_LANES, run_crud

from .conftest import database_url_for


class ConcurrencyRecorder:
    def __init__(self, hold_seconds: float) -> None:
        self.hold_seconds = hold_seconds
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, db) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.hold_seconds)
        with self._lock:
            self.running -= 1
        return "done"


def run_concurrently(url: str, calls: int, recorder: ConcurrencyRecorder, **settings) -> list:
    engine = create_engine_from(Settings(database_url=url, **settings))
    session_factory = make_session_factory(engine)
    outcomes = []

    async def one() -> None:
        db = session_factory()
        try:
            outcomes.append(await run_crud(recorder, db))
        except PoolTimeout:
            outcomes.append("503")
        finally:
            db.close()

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for _ in range(calls):
                tasks.start_soon(one)

    try:
        anyio.run(main)
    finally:
        engine.dispose()
    return outcomes


def test_sqlite_work_runs_in_at_most_two_threads_at_once(tmp_path):
    recorder = ConcurrencyRecorder(hold_seconds=0.05)
    outcomes = run_concurrently(f"sqlite:///{tmp_path / 'lanes.db'}", 8, recorder)
    assert outcomes == ["done"] * 8
    assert recorder.most == SQLITE_LANES == 2


def test_sqlite_work_without_a_lane_within_the_pool_timeout_is_a_pool_timeout(tmp_path):
    recorder = ConcurrencyRecorder(hold_seconds=1.0)
    started = time.monotonic()
    outcomes = run_concurrently(f"sqlite:///{tmp_path / 'lanes.db'}", 3, recorder, pool_timeout=0.3)
    assert sorted(outcomes) == ["503", "done", "done"]  # the errors module answers it 503 + Retry-After
    assert time.monotonic() - started < 1.9  # the third did not wait for a lane to free


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_server_databases_use_the_shared_thread_pool(kind, tmp_path):
    recorder = ConcurrencyRecorder(hold_seconds=0.2)
    outcomes = run_concurrently(database_url_for(kind, tmp_path), 8, recorder)
    assert outcomes == ["done"] * 8
    assert recorder.most == 8
