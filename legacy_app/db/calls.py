"""Where a route's crud call runs: the event loop, a worker thread, or one of two SQLite threads.

PostgreSQL and MariaDB wait on the network with the GIL released: every call goes to the shared
thread pool, and the connection pool is the limit.

SQLite runs inside this process: a query is CPU work under the GIL wherever it runs, so a thread
gives it no parallelism, only hand-offs: eight threads together ran fewer `get_user` calls a second
than one, and a read's hop to a thread and back cost more than the read (docs/performance.md,
in-process figures). So on SQLite:
- reads run on the event loop (WAL: a reader never waits for a writer's lock), unless the pool
  has no connection free, which only a burst of writes holding them all can cause: then a thread,
  so that the loop never waits for the pool;
- writes, which may wait for the write lock (busy_timeout), run in at most SQLITE_WRITE_THREADS
  threads; one that gets none within the pool timeout is answered 503, as a pool timeout is.
"""
import functools
import weakref
from typing import Any, Callable, Optional, Tuple, TypeVar

import anyio
from sqlalchemy.engine import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

SQLITE_WRITE_THREADS = 2  # SQLite has one writer at a time; 2 keeps the next one ready

# Per engine: anyio limiters must be made inside the event loop, so they are made at first use.
_sqlite_writers: "weakref.WeakKeyDictionary[Engine, Tuple[anyio.CapacityLimiter, Optional[float]]]" = (
    weakref.WeakKeyDictionary()
)


async def run_read(function: Callable[..., T], db: Session, *args: Any, **kwargs: Any) -> T:
    """function(db, ...) for a crud read: on the event loop for SQLite, else in a worker thread."""
    engine = _sqlite_engine(db)
    if engine is not None and _pool_has_a_free_connection(engine):
        return function(db, *args, **kwargs)
    return await run_in_threadpool(function, db, *args, **kwargs)


async def run_write(function: Callable[..., T], db: Session, *args: Any, **kwargs: Any) -> T:
    """function(db, ...) for a crud write, in a worker thread; on SQLite, one of SQLITE_WRITE_THREADS."""
    engine = _sqlite_engine(db)
    if engine is None:
        return await run_in_threadpool(function, db, *args, **kwargs)
    limiter, timeout = _sqlite_write_limiter(engine)
    try:
        with anyio.fail_after(timeout):
            await limiter.acquire()
    except TimeoutError:
        raise PoolTimeout(f"no SQLite write thread free within {timeout} s") from None
    try:
        return await anyio.to_thread.run_sync(functools.partial(function, db, *args, **kwargs))
    finally:
        limiter.release()


def _sqlite_engine(db: Session) -> Optional[Engine]:
    engine = db.bind
    return engine if isinstance(engine, Engine) and engine.dialect.name == "sqlite" else None


def _pool_has_a_free_connection(engine: Engine) -> bool:
    pool = engine.pool
    if not hasattr(pool, "checkedin"):  # StaticPool (in-memory SQLite): its one connection is shared
        return True
    max_overflow = getattr(pool, "_max_overflow", 0)  # QueuePool keeps it private; -1: no limit
    return max_overflow < 0 or pool.checkedin() > 0 or pool.checkedout() < pool.size() + max_overflow


def _sqlite_write_limiter(engine: Engine) -> Tuple[anyio.CapacityLimiter, Optional[float]]:
    if engine not in _sqlite_writers:
        timeout = engine.pool.timeout() if hasattr(engine.pool, "timeout") else None  # StaticPool: none
        _sqlite_writers[engine] = (anyio.CapacityLimiter(SQLITE_WRITE_THREADS), timeout)
    return _sqlite_writers[engine]
