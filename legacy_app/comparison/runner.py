"""Serve the probe app once per strategy under the doctor, run the scenarios, collect the figures.

The session scenarios read the doctor's instrument (one instrument for `doctor` and `compare`);
overhead and pool exhaustion are timed against servers of the same app without it.
"""
import contextlib
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

from sqlalchemy.engine import make_url

from ..config import FLOOR_HASHING_ENV, STRATEGIES, Settings
from ..database import create_engine_from
from ..doctor.runner import SETTLE_SECONDS, Doctor, DoctorServer
from ..server.process import PACKAGE_PARENT, ServerProcess
from . import scenarios

PROBE_APP = "legacy_app.comparison.probe:app"
VERSIONED_PACKAGES = ("fastapi", "starlette", "pydantic", "sqlalchemy", "anyio", "uvicorn")


def installed_versions() -> Dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        versions[package] = metadata.version(package)
    return versions


def _settings_env(strategy: str, database_url: str, **env: str) -> Dict[str, str]:
    return {"DATABASE_URL": database_url, "SESSION_STRATEGY": strategy, **FLOOR_HASHING_ENV, **env}


@contextlib.contextmanager
def probe_server(strategy: str, database_url: str, log_dir: Path, name: str, **env: str) -> Iterator[ServerProcess]:
    """The probe app in plain uvicorn, without the instrument: for timing."""
    server = ServerProcess(
        PROBE_APP,
        env=_settings_env(strategy, database_url, **env),
        log_path=log_dir / f"{strategy}-{name}.log",
        extra_args=["--no-access-log", "--log-level", "warning"],
    )
    with server:
        yield server


@contextlib.contextmanager
def doctored_probe(strategy: str, database_url: str, scratch: Path, name: str, **env: str) -> Iterator[scenarios.ProbeRun]:
    """The probe app served by the doctor, and an engine on its database for the row counts."""
    directory = scratch / f"{strategy}-{name}"
    directory.mkdir()
    server = DoctorServer(PROBE_APP, PACKAGE_PARENT, False, directory, env=_settings_env(strategy, database_url, **env))
    engine = create_engine_from(Settings(database_url=database_url))
    try:
        server.wait_until_serving()
        yield scenarios.ProbeRun(Doctor(server, SETTLE_SECONDS), engine)
    finally:
        server.stop()
        engine.dispose()


class Steps:
    """Reports each finished scenario as one line: `compare [3/30] asgi-middleware background_task: 0.4 s`."""

    def __init__(self, total: int, report: Optional[Callable[[str], None]]) -> None:
        self.total, self.report, self.done = total, report, 0
        self.began = time.perf_counter()

    def finished(self, who: str, scenario: str) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.report is not None:
            self.report(f"compare [{self.done}/{self.total}] {who} {scenario}: {now - self.began:.1f} s")
        self.began = now


def run_comparison(
    database_url: Optional[str] = None,
    strategies: Sequence[str] = STRATEGIES,
    overhead_requests: int = 300,
    pool_requests: int = 60,
    pool_timeout: float = 10.0,
    log_dir: Optional[Path] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """`progress`, when given, gets one line per scenario as it finishes."""
    steps = Steps(len(strategies) * (len(scenarios.MAIN_SCENARIOS) + 2) + 1, progress)
    with tempfile.TemporaryDirectory(prefix="legacy_app_compare_") as scratch:
        scratch_dir = Path(scratch)
        url = database_url or f"sqlite:///{scratch_dir / 'compare.db'}"
        logs = log_dir or scratch_dir
        results: Dict[str, Dict[str, Any]] = {name: {} for name in strategies}
        for strategy in strategies:
            with doctored_probe(strategy, url, scratch_dir, "main") as probe:
                for scenario, measure in scenarios.MAIN_SCENARIOS.items():
                    results[strategy][scenario] = measure(probe)
                    steps.finished(strategy, scenario)
        with contextlib.ExitStack() as servers:
            probes = {}
            for strategy in strategies:
                server = servers.enter_context(probe_server(strategy, url, logs, "overhead"))
                probe = probes[strategy] = scenarios.Probe(server.port)
                servers.callback(probe.close)
            for strategy, by_strategy in scenarios.overhead(probes, overhead_requests).items():
                results[strategy]["overhead"] = by_strategy
            steps.finished("all strategies", "overhead")
        for strategy in strategies:
            with doctored_probe(strategy, url, scratch_dir, "factory-failure", PROBE_FACTORY_FAILS="1") as probe:
                results[strategy]["factory_failure"] = scenarios.factory_failure(probe)
            steps.finished(strategy, "factory_failure")
            pool_env = {"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT": str(pool_timeout)}
            with probe_server(strategy, url, logs, "pool", **pool_env) as server:
                results[strategy]["pool_exhaustion"] = scenarios.pool_exhaustion(server.port, pool_requests)
                results[strategy]["pool_exhaustion"]["pool"] = {"size": 2, "overflow": 0, "timeout_s": pool_timeout}
            steps.finished(strategy, "pool_exhaustion")
    return {
        "versions": installed_versions(),
        "database": make_url(url).get_backend_name(),
        "results": results,
    }
