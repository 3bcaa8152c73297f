"""Progress of a seeding run, on stderr: tqdm's bar on a terminal; elsewhere (a log, a pipe, CI)
a plain line every few seconds and one at the end, since a bar redrawn with carriage returns is
unreadable there."""
import sys
import threading
import time
from typing import Any, Optional, TextIO

from tqdm import tqdm

LINE_INTERVAL_S = 5.0


class Progress:
    """Counts finished units; thread-safe (the HTTP seeder updates it from its workers).

    Off a terminal the line comes from a timer thread, so it keeps coming while one slow step (a
    batch insert, a hash) holds the caller.
    """

    def __init__(self, total: int, desc: str = "seeding", unit: str = "users",
                 file: Optional[TextIO] = None, interval: float = LINE_INTERVAL_S) -> None:
        self.file = file if file is not None else sys.stderr
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._stopped = threading.Event()
        self._bar: Optional[tqdm] = None
        self._ticker: Optional[threading.Thread] = None
        if getattr(self.file, "isatty", lambda: False)():
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.file)
        else:
            self._ticker = threading.Thread(target=self._tick, name="seeding-progress", daemon=True)
            self._ticker.start()

    def update(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            if self._bar is not None:
                self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._ticker is not None:
            self._stopped.set()
            self._ticker.join()
            self._ticker = None
            self._print_line()

    def _tick(self) -> None:
        while not self._stopped.wait(self.interval):
            self._print_line()

    def _print_line(self) -> None:
        with self._lock:
            done = self.done
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * done / self.total if self.total else 100.0
        left = f", {tqdm.format_interval((self.total - done) / rate)} left" if rate and done < self.total else ""
        print(f"{self.desc}: {done}/{self.total} {self.unit} ({percent:.0f} %), {rate:.1f} {self.unit}/s, "
              f"{tqdm.format_interval(elapsed)} elapsed{left}", file=self.file, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
