"""How many connections `serve` holds: the file limit it raises, the bound it derives, and one log
line per interval (not a traceback per attempt) while accepting fails for want of descriptors."""
import asyncio
import errno
import logging
import resource
import time
from typing import Any, Callable, Dict, Optional

logger = logging.getLogger("legacy_app")

# Descriptors a worker needs besides its connections: the database pool's (one each), the
# listening socket, the event loop's, log and SQLite files, metrics files, the import machinery.
RESERVED_DESCRIPTORS = 64

# What accept() fails with when the process or the system is out of descriptors or buffers.
OUT_OF_RESOURCE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_ERROR_INTERVAL_S = 10.0


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (as far as an unprivileged process may); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # a container may forbid it: serve with what there is
    return soft


def default_max_connections(file_limit: int, pool_size: int, max_overflow: int) -> int:
    """Connections a worker may hold: its file limit, less the pool and what the process itself needs."""
    return max(1, file_limit - pool_size - max_overflow - RESERVED_DESCRIPTORS)


class AcceptErrorLog:
    """The event loop's exception handler: an accept() that failed for want of descriptors is counted
    and logged once per interval with the count; anything else goes to the handler it replaced.

    asyncio reports each failed accept through this handler, with a traceback, and retries about
    once a second per pending connection; uvloop (libuv) accepts and closes such connections itself.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = ACCEPT_ERROR_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.loop = loop
        self.interval = interval
        self.clock = clock
        self.previous = loop.get_exception_handler()
        self.pending = 0  # failures since the last line
        self.reason = ""
        self.last_logged: Optional[float] = None
        self.flush_scheduled = False

    def install(self) -> None:
        self.loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        error = context.get("exception")
        if not (isinstance(error, OSError) and error.errno in OUT_OF_RESOURCE and "accept" in context.get("message", "")):
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.pending += 1
        self.reason = error.strerror or str(error)
        if self.flush_scheduled:  # counted; the scheduled line will say so
            return
        now = self.clock()
        if self.last_logged is None or now - self.last_logged >= self.interval:
            self.flush()
        else:  # scheduled, so that the count of a burst that then stops is logged too
            self.flush_scheduled = True
            loop.call_later(self.interval - (now - self.last_logged), self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if not self.pending:
            return
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        logger.error(
            "accepting connections failed %d time(s) since the last report: %s (file limit %d); "
            "new connections wait in the listen backlog (docs/deployment.md: Connections)",
            self.pending, self.reason, soft,
        )
        self.pending = 0
        self.last_logged = self.clock()


def log_accept_errors_once_per_interval() -> None:
    """Call from the app's start-up, on the loop that serves."""
    AcceptErrorLog(asyncio.get_running_loop()).install()
