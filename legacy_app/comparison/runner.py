"""Start one probe server per strategy and configuration, run the scenarios, collect the figures."""
import contextlib
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

from sqlalchemy.engine import make_url

from ..config import FLOOR_HASHING_ENV, STRATEGIES
from ..server_process import ServerProcess
from . import scenarios

PROBE_APP = "legacy_app.comparison.probe:app"
VERSIONED_PACKAGES = ("fastapi", "starlette", "pydantic", "sqlalchemy", "anyio", "uvicorn")


def installed_versions() -> Dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        versions[package] = metadata.version(package)
    return versions


@contextlib.contextmanager
def probe_server(strategy: str, database_url: str, log_dir: Path, name: str, **env: str) -> Iterator[ServerProcess]:
    settings_env = {
        "DATABASE_URL": database_url,
        "SESSION_STRATEGY": strategy,
        **FLOOR_HASHING_ENV,
        **env,
    }
    server = ServerProcess(
        PROBE_APP,
        env=settings_env,
        log_path=log_dir / f"{strategy}-{name}.log",
        extra_args=["--no-access-log", "--log-level", "warning"],
    )
    with server:
        yield server


def run_comparison(
    database_url: Optional[str] = None,
    strategies: Sequence[str] = STRATEGIES,
    overhead_requests: int = 300,
    pool_requests: int = 60,
    pool_timeout: float = 10.0,
    log_dir: Optional[Path] = None,
) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="legacy_app_compare_") as scratch:
        scratch_dir = Path(scratch)
        url = database_url or f"sqlite:///{scratch_dir / 'compare.db'}"
        logs = log_dir or scratch_dir
        results: Dict[str, Dict[str, Any]] = {name: {} for name in strategies}
        with contextlib.ExitStack() as servers:
            probes = {}
            for strategy in strategies:
                server = servers.enter_context(probe_server(strategy, url, logs, "main"))
                probe = probes[strategy] = scenarios.Probe(server.port)
                for scenario, measure in scenarios.MAIN_SCENARIOS.items():
                    results[strategy][scenario] = measure(probe)
            for strategy, by_strategy in scenarios.overhead(probes, overhead_requests).items():
                results[strategy]["overhead"] = by_strategy
        for strategy in strategies:
            with probe_server(strategy, url, logs, "factory-failure", PROBE_FACTORY_FAILS="1") as server:
                results[strategy]["factory_failure"] = scenarios.factory_failure(scenarios.Probe(server.port))
            pool_env = {"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "0", "DB_POOL_TIMEOUT": str(pool_timeout)}
            with probe_server(strategy, url, logs, "pool", **pool_env) as server:
                results[strategy]["pool_exhaustion"] = scenarios.pool_exhaustion(server.port, pool_requests)
                results[strategy]["pool_exhaustion"]["pool"] = {"size": 2, "overflow": 0, "timeout_s": pool_timeout}
    return {
        "versions": installed_versions(),
        "database": make_url(url).get_backend_name(),
        "results": results,
    }
