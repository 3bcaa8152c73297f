"""The two helpers every test with a real server uses: LiveServer starts one, wait_until waits for a condition."""
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TypeVar, Union

from legacy_app.config import FLOOR_HASHING_ENV
from legacy_app.server.process import PACKAGE_PARENT, ServerProcess

REPO_ROOT = PACKAGE_PARENT
SERVICE_APP = "legacy_app.main:app"
STARTED = "Application startup complete."  # uvicorn's line, once per worker

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 30.0, message: str = "the condition", log: Optional[Callable[[], str]] = None
) -> T:
    """Poll `condition` until it returns something truthy, and return that; at `timeout` seconds fail
    with an assertion naming `message` (what was awaited) and, when given, the log."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {message}" + (f"\n{log()}" if log else ""))
        time.sleep(0.05)
    return result


class LiveServer(ServerProcess):
    """The service in a real server process: `uvicorn legacy_app.main:app` unless `app` names another
    (see ServerProcess: "cli", a command line; `options` such as address_in_environment pass on), with
    password hashing at the floor unless `env` sets it. `with` starts and stops it; its log() stays readable.
    """

    def __init__(
        self, env: Dict[str, str], log_path: Path, app: Union[str, List[str]] = SERVICE_APP, workers: int = 1,
        start_timeout: float = 30.0, extra_args: Optional[List[str]] = None, **options: Any,
    ) -> None:
        workers_args = ["--workers", str(workers)] if workers != 1 else []
        super().__init__(app, {**FLOOR_HASHING_ENV, **env}, log_path, extra_args=workers_args + (extra_args or []), **options)
        self.workers = workers
        self.start_timeout = start_timeout

    def start(self, timeout: Optional[float] = None) -> "LiveServer":
        super().start(self.start_timeout if timeout is None else timeout)
        return self

    def wait_for_every_worker(self) -> None:
        """Wait until each worker has logged that its application started (/health answers once one has)."""
        wait_until(lambda: self.log().count(STARTED) >= self.workers, message=f"{self.workers}× {STARTED!r} logged",
                   log=self.log)
