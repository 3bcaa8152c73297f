"""Where a route's crud call runs: SQLite reads on the event loop, SQLite writes in at most
SQLITE_WRITE_THREADS threads, everything on PostgreSQL and MariaDB in the shared thread pool."""
import threading
import time

import anyio
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.db.calls import SQLITE_WRITE_THREADS, run_read, run_write
from legacy_app.sessions import make_session_factory

from ..conftest import database_url_for


class ConcurrencyRecorder:
    def __init__(self, hold_seconds: float) -> None:
        self.hold_seconds = hold_seconds
        self.running = 0
        self.most = 0
        self.threads = set()
        self.running_at_503 = []  # how many calls were running when each PoolTimeout was raised
        self._lock = threading.Lock()

    def __call__(self, db) -> str:
        with self._lock:
            self.threads.add(threading.current_thread().name)
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.hold_seconds)
        with self._lock:
            self.running -= 1
        return "done"


def run_concurrently(url: str, calls: int, recorder: ConcurrencyRecorder, run=run_write, **settings) -> list:
    engine = create_engine_from(Settings(database_url=url, **settings))
    session_factory = make_session_factory(engine)
    outcomes = []

    async def one() -> None:
        db = session_factory()
        try:
            outcomes.append(await run(recorder, db))
        except PoolTimeout:
            recorder.running_at_503.append(recorder.running)
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


def test_sqlite_writes_run_in_at_most_two_threads_at_once(tmp_path):
    recorder = ConcurrencyRecorder(hold_seconds=0.05)
    outcomes = run_concurrently(f"sqlite:///{tmp_path / 'writes.db'}", 8, recorder)
    assert outcomes == ["done"] * 8
    assert recorder.most == SQLITE_WRITE_THREADS == 2
    assert "MainThread" not in recorder.threads


def test_a_sqlite_write_without_a_thread_within_the_pool_timeout_is_a_pool_timeout(tmp_path):
    recorder = ConcurrencyRecorder(hold_seconds=1.0)
    outcomes = run_concurrently(f"sqlite:///{tmp_path / 'writes.db'}", 3, recorder, pool_timeout=0.3)
    # The third gave up while both threads were still busy, before either write was done: it did not
    # wait for a thread to free. The errors module answers it 503 + Retry-After.
    assert outcomes == ["503", "done", "done"]
    assert recorder.running_at_503 == [SQLITE_WRITE_THREADS]


def test_sqlite_reads_run_on_the_event_loop_one_at_a_time(tmp_path):
    recorder = ConcurrencyRecorder(hold_seconds=0.01)
    outcomes = run_concurrently(f"sqlite:///{tmp_path / 'reads.db'}", 4, recorder, run=run_read)
    assert outcomes == ["done"] * 4
    assert recorder.threads == {"MainThread"} and recorder.most == 1


def test_a_sqlite_read_goes_to_a_thread_when_the_pool_has_no_free_connection(tmp_path):
    """The loop must never wait for the pool: a burst of writes may hold every connection."""
    engine = create_engine_from(Settings(database_url=f"sqlite:///{tmp_path / 'full.db'}", pool_size=1, max_overflow=0))
    recorder = ConcurrencyRecorder(hold_seconds=0)
    db = make_session_factory(engine)()
    try:
        held = engine.connect()  # the pool's only connection, as a write would hold it
        anyio.run(run_read, recorder, db)
        held.close()
        anyio.run(run_read, recorder, db)
    finally:
        db.close()
        engine.dispose()
    assert len(recorder.threads) == 2 and "MainThread" in recorder.threads


@pytest.mark.parametrize("run", [run_read, run_write])
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_server_databases_use_the_shared_thread_pool(kind, run, tmp_path):
    recorder = ConcurrencyRecorder(hold_seconds=0.2)
    outcomes = run_concurrently(database_url_for(kind, tmp_path), 8, recorder, run=run)
    assert outcomes == ["done"] * 8
    assert recorder.most == 8
