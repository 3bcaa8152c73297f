"""A seeding run stopped before its end: by Ctrl-C (SIGINT) or SIGTERM, or by a server or database
that went away. Both seeders write in steps that are there whole or not at all (a registration, an
item; a batch in its transaction) and skip, when run again, the users and items that exist; so the
same command again finishes the work. They say so, with what was written before the stop."""
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Optional, TextIO

RERUN_IS_SAFE = "running the same command again is safe: it skips the users and items that exist and adds the rest"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. A KeyboardInterrupt, so that what handles Ctrl-C handles both (psycopg
    cancels the query in progress, SQLAlchemy drops the connection instead of reusing it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    @property
    def reason(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name}"


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within it, SIGINT and SIGTERM raise Interrupted in the main thread. Once: a second signal ends
    the process at once, as without this (who presses Ctrl-C twice wants out now). A signal that was
    ignored when it began (nohup, a background job of a script) stays ignored; outside the main
    thread, where no handler can be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    caught = [signum for signum, handler in previous.items() if handler is not signal.SIG_IGN]

    def interrupt(signum: int, frame: object) -> None:
        for each in caught:
            signal.signal(each, signal.SIG_DFL)
        raise Interrupted(signum)

    for signum in caught:
        signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum in caught:
            handler = previous[signum]
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def interruption(error: BaseException) -> Optional[Interrupted]:
    """The Interrupted that `error` is, or was raised while handling (a rollback that failed after it)."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        if isinstance(current, Interrupted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def report_stop(prefix: str, reason: str, done: int, total: int, written: str, file: Optional[TextIO] = None) -> None:
    """Two lines: why it stopped and how far it got; what it wrote, and that running it again is safe."""
    out = file if file is not None else sys.stderr
    print(f"{prefix}: stopped with {done} of {total} users done: {reason}", file=out)
    print(f"{prefix}: written before the stop: {written}; {RERUN_IS_SAFE}", file=out, flush=True)
