"""Progress of a seeding run, on stderr: tqdm's bar on a terminal; elsewhere (a log, a pipe, CI)
a plain line every few seconds and one at the end, since a bar redrawn with carriage returns is
unreadable there."""
import sys
import threading
import time
from typing import Any, Callable, Optional, TextIO, Tuple

from tqdm import tqdm

LINE_INTERVAL_S = 5.0
# tqdm's own bar, with the time left computed here (below) rather than from tqdm's rate
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class Progress:
    """Counts finished units; thread-safe (the HTTP seeder updates it from its workers).

    A unit that wrote nothing (`update(unchanged=...)`: a user that was there already, with its
    items) takes a fraction of the time of one that writes, so the time left is the units left at
    the rate of the units that wrote: measured over the updates that wrote something, each taking
    the time since the one before. A rerun that skips its first thousand users then says what the
    rest will take. Until a unit has written, only a floor can be given: "at least" the time left at
    the rate so far. `clock` is for tests.

    Off a terminal the line comes from a timer thread, so it keeps coming while one slow step (a
    batch insert, a hash) holds the caller.
    """

    def __init__(self, total: int, desc: str = "seeding", unit: str = "users",
                 file: Optional[TextIO] = None, interval: float = LINE_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.file = file if file is not None else sys.stderr
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.done = 0
        self.unchanged = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._started = self._last_update = clock()
        self._writing_units = 0
        self._writing_seconds = 0.0
        self._stopped = threading.Event()
        self._bar: Optional[tqdm] = None
        self._ticker: Optional[threading.Thread] = None
        if getattr(self.file, "isatty", lambda: False)():
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.file, bar_format=BAR_FORMAT)
        else:
            self._ticker = threading.Thread(target=self._tick, name="seeding-progress", daemon=True)
            self._ticker.start()

    def update(self, count: int = 1, unchanged: int = 0) -> None:
        """`count` units finished, `unchanged` of them without writing anything."""
        with self._lock:
            now = self._clock()
            if count > unchanged:
                self._writing_units += count - unchanged
                self._writing_seconds += now - self._last_update
            self._last_update = now
            self.done += count
            self.unchanged += unchanged
            if self._bar is not None:
                self._bar.set_postfix_str(self._left_text(now), refresh=False)
                self._bar.update(count)

    def time_left(self) -> Optional[Tuple[float, bool]]:
        """(seconds, whether that is only a floor), or None while nothing tells."""
        with self._lock:
            return self._time_left(self._clock())

    def line(self) -> str:
        """The plain line: `seeding: 1230/1500 users (82 %), 1200 already there, 307.5 users/s, 00:04 elapsed, 00:27 left`."""
        with self._lock:
            now = self._clock()
            done, unchanged, left = self.done, self.unchanged, self._left_text(now)
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * done / self.total if self.total else 100.0
        there = f", {unchanged} already there" if unchanged else ""
        return (f"{self.desc}: {done}/{self.total} {self.unit} ({percent:.0f} %){there}, {rate:.1f} {self.unit}/s, "
                f"{tqdm.format_interval(elapsed)} elapsed" + (f", {left}" if left else ""))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._ticker is not None:
            self._stopped.set()
            self._ticker.join()
            self._ticker = None
            self._print_line()

    def _time_left(self, now: float) -> Optional[Tuple[float, bool]]:
        remaining = self.total - self.done
        if remaining <= 0 or self.done == 0:
            return None
        if self._writing_units and self._writing_seconds > 0:
            return remaining * self._writing_seconds / self._writing_units, False
        elapsed = now - self._started
        if elapsed <= 0:
            return None
        return remaining * elapsed / self.done, True  # only unchanged units so far: they are the cheap ones

    def _left_text(self, now: float) -> str:
        left = self._time_left(now)
        if left is None:
            return ""
        seconds, floor = left
        return f"{'at least ' if floor else ''}{tqdm.format_interval(seconds)} left"

    def _tick(self) -> None:
        while not self._stopped.wait(self.interval):
            self._print_line()

    def _print_line(self) -> None:
        print(self.line(), file=self.file, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
