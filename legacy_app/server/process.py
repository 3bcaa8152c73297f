"""A uvicorn server in a child process: what `legacy-app compare` measures, and what the benchmarks,
drills and tests that need a real server start."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Union

import requests

PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the directory legacy_app/ is in


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_on(cpus: Optional[Set[int]]) -> Optional[Callable[[], None]]:
    """A Popen preexec_fn that keeps the child, and every thread it starts, on these CPUs."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class ServerProcess:
    """`python -m uvicorn APP`, or with app="cli" the service's own `python -m legacy_app serve`, or with
    app a command line (e.g. ["bash", "scripts/run.sh"]) that command, given serve's options.

    The address goes as --host/--port, or with address_in_environment=True as HOST/PORT variables.
    """

    def __init__(
        self,
        app: Union[str, List[str]],
        env: Dict[str, str],
        log_path: Path,
        extra_args: Optional[List[str]] = None,
        cpus: Optional[Set[int]] = None,
        address_in_environment: bool = False,
    ) -> None:
        self.app = app
        self.env = env
        self.log_path = log_path
        self.extra_args = extra_args or []
        self.cpus = cpus  # CPUs the server (and every thread it starts) may run on; None: any
        self.address_in_environment = address_in_environment
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None
        self._log = None

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        return self.launch().wait_until_serving(timeout)

    def launch(self) -> "ServerProcess":
        """Start the process without waiting for it, so that several servers can start at once."""
        python_path = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, **self.env, "PYTHONPATH": python_path}
        if isinstance(self.app, list):
            command = list(self.app)
        else:
            runner = ["legacy_app", "serve"] if self.app == "cli" else ["uvicorn", self.app]
            command = [sys.executable, "-m", *runner]
        if self.address_in_environment:
            env.update(HOST="127.0.0.1", PORT=str(self.port))
        else:
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command + self.extra_args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=run_on(self.cpus),
        )
        return self

    def wait_until_serving(self, timeout: float = 30.0) -> "ServerProcess":
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            if self._answers_health():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer /health within {timeout:.0f} s:\n{self.log()}")

    def _answers_health(self) -> bool:
        """Any HTTP answer means the server is up (a probe with a failing factory answers 500)."""
        try:
            requests.get(f"{self.url}/health", timeout=1)
            return True
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
