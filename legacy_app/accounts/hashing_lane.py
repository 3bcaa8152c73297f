"""Password hashing's own lane: worker threads under a limiter of its own, so a burst of
registrations can neither exhaust memory nor make reads wait.

Each argon2id hash holds ARGON2_MEMORY_KIB while it runs. On the shared thread pool (40 threads),
a burst of registrations grew one worker by gigabytes, and reads waited behind them (measured in
docs/failure-behaviour.md). Here at most
`lane_size(settings)` hashes run at once, so hashing holds at most lane_size × ARGON2_MEMORY_KIB
per worker; a registration waits for a lane at most DB_POOL_TIMEOUT (then LaneBusy, answered 503),
and never holds a thread of the shared pool.
"""
import asyncio
import functools
import os
import weakref
from typing import Any, Callable, Tuple, TypeVar

import anyio
import anyio.to_thread

from ..config import Settings

T = TypeVar("T")

# More hashes at once than CPUs only share them; and their memory together stays within this.
HASHING_MEMORY_BUDGET_KIB = 256 * 1024


class LaneBusy(Exception):
    """No hashing lane came free within the wait allowed."""


def lane_size(settings: Settings) -> int:
    """HASHING_THREADS, or: one lane per CPU this process may use, as many as the memory budget holds."""
    if settings.hashing_threads > 0:
        return settings.hashing_threads
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, HASHING_MEMORY_BUDGET_KIB // settings.argon2_memory_kib))


class HashingLane:
    def __init__(self, size: int, wait_seconds: float) -> None:
        self.size = size
        self.wait_seconds = wait_seconds
        # anyio limiters belong to an event loop and are made inside it: one pair per loop, at first use.
        self._limiters: "weakref.WeakKeyDictionary[Any, Tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]]" = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """function(*args, **kwargs) in one of the lane's threads; LaneBusy if none is free in time."""
        entry, threads = self._limiters_of_this_loop()
        try:
            with anyio.fail_after(self.wait_seconds):
                await entry.acquire()
        except TimeoutError:
            raise LaneBusy(f"no hashing lane free within {self.wait_seconds:g} s") from None
        try:
            # Its own limiter, not the shared pool's: what this thread does never takes one of those tokens.
            return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs), limiter=threads)
        finally:
            entry.release()

    def _limiters_of_this_loop(self) -> Tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]:
        loop = asyncio.get_running_loop()
        if loop not in self._limiters:
            # The entry limiter bounds the wait (fail_after); the thread limiter is never short of a
            # token once the entry is held: two, because run_sync takes a limiter it acquires itself.
            self._limiters[loop] = (anyio.CapacityLimiter(self.size), anyio.CapacityLimiter(self.size))
        return self._limiters[loop]


def make_hashing_lane(settings: Settings) -> HashingLane:
    return HashingLane(lane_size(settings), settings.pool_timeout)
