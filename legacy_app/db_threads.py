"""Running a crud function off the event loop: the one thread hop a database route makes.

SQLite runs inside this process and its driver takes the GIL back between steps, so threads
querying at once mostly wait for one another: here one thread ran 5,383 `get_user` calls a
second and eight threads together 1,687. SQLite work therefore goes through at most
SQLITE_LANES threads at a time, and a request that gets no lane within the pool timeout is
answered 503, as one that gets no pooled connection. PostgreSQL and MariaDB wait on the network
with the GIL released: they use the shared thread pool, and their connection pool is the limit.
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

SQLITE_LANES = 2  # measured: 1 and 2 lanes serve alike; 2 keeps reads going past one slow write

# Per engine: anyio limiters must be made inside the event loop, so they are made at first use.
_lanes: "weakref.WeakKeyDictionary[Engine, Tuple[anyio.CapacityLimiter, Optional[float]]]" = weakref.WeakKeyDictionary()


async def run_crud(function: Callable[..., T], db: Session, **kwargs: Any) -> T:
    """function(db, **kwargs) in a worker thread; through a lane on SQLite."""
    engine = db.bind
    if not isinstance(engine, Engine) or engine.dialect.name != "sqlite":
        return await run_in_threadpool(function, db, **kwargs)
    lanes, timeout = _sqlite_lanes(engine)
    try:
        with anyio.fail_after(timeout):
            await lanes.acquire()
    except TimeoutError:
        raise PoolTimeout(f"no SQLite lane free within {timeout} s") from None
    try:
        return await anyio.to_thread.run_sync(functools.partial(function, db, **kwargs))
    finally:
        lanes.release()


def _sqlite_lanes(engine: Engine) -> Tuple[anyio.CapacityLimiter, Optional[float]]:
    if engine not in _lanes:
        timeout = engine.pool.timeout() if hasattr(engine.pool, "timeout") else None  # StaticPool: none
        _lanes[engine] = (anyio.CapacityLimiter(SQLITE_LANES), timeout)
    return _lanes[engine]
