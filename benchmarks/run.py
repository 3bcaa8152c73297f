"""Benchmark: this service (each session strategy) against the tutorial app, side by side, in one run.

python -m benchmarks.run [--database sqlite|postgresql] [--seconds 4] [--rounds 3]

Both get the same data (100 users x 10 items), one uvicorn worker each, and the same wrk load
(one thread, 8 connections). Rounds interleave the servers, and each figure is the median of the
rounds, so a noisy moment hurts every server alike. Prints requests/s and the ratios the targets
are stated in, with PASS/FAIL for each target.
"""
import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from legacy_app.config import FLOOR_HASHING_ENV
from legacy_app.server_process import ServerProcess

REFERENCE = "tutorial"
OURS = ("asgi-middleware", "http-middleware", "yield-dependency")
READ_ENDPOINTS = ("/users/1", "/users/?limit=100", "/items/?limit=100", "/health")
TARGETS: List[Tuple[str, str, str, float]] = [
    # (endpoint, server, compared with, at least)
    ("/users/1", "asgi-middleware", REFERENCE, 2.0),
    ("/users/?limit=100", "asgi-middleware", REFERENCE, 5.0),
    ("/items/?limit=100", "asgi-middleware", REFERENCE, 2.0),
    ("/health", "asgi-middleware", "yield-dependency", 0.95),
]
REGISTER_LUA = """
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"email": "bench' .. RUN .. '-' .. tid .. '-' .. counter .. '@example.com", "password": "bench-password"}'
  return wrk.format("POST", "/users/", {["Content-Type"] = "application/json"}, body)
end
"""
FAST_ENV = FLOOR_HASHING_ENV


def wrk(url: str, seconds: float, connections: int = 8, script: Optional[Path] = None) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if bad or errors:
        raise RuntimeError(f"{url}: not every answer was a success:\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def seed(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, **FAST_ENV}
    subprocess.run([sys.executable, "-m", "legacy_app", "seed", "--users", "100", "--items-per-user", "10"],
                   env=env, check=True, capture_output=True)


def reference_copy(source: Path, target: Path) -> None:
    """The tutorial's own database (its schema, default journal) with the same rows."""
    from sqlalchemy import create_engine

    from benchmarks.tutorial_app.models import Base

    engine = create_engine(f"sqlite:///{target}")
    Base.metadata.create_all(engine)
    engine.dispose()
    connection = sqlite3.connect(target)
    connection.execute("ATTACH DATABASE ? AS source", (str(source),))
    connection.execute("INSERT INTO users SELECT id, email, hashed_password, is_active FROM source.users")
    connection.execute("INSERT INTO items SELECT id, title, description, owner_id FROM source.items")
    connection.commit()
    connection.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/legacy_app_bench"))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (scripts/bench.sh installs it)")

    scratch = Path(tempfile.mkdtemp(prefix="legacy_app_bench_"))
    if args.database == "sqlite":
        ours_url = f"sqlite:///{scratch / 'ours.db'}"
        seed(ours_url)
        reference_copy(scratch / "ours.db", scratch / "tutorial.db")
        reference_url = f"sqlite:///{scratch / 'tutorial.db'}"
    else:
        ours_url = reference_url = args.postgres_url
        seed(ours_url)

    servers: Dict[str, ServerProcess] = {}
    results: Dict[str, Dict[str, List[float]]] = {}
    with ExitStack() as stack:
        def start(name: str, app: str, env: Dict[str, str]) -> None:
            server = ServerProcess(app, env, scratch / f"{name}.log", extra_args=["--no-access-log", "--log-level", "warning"])
            servers[name] = stack.enter_context(server)

        start(REFERENCE, "benchmarks.tutorial_app.main:app", {"DATABASE_URL": reference_url})
        for strategy in OURS:
            start(strategy, "legacy_app.main:app", {"DATABASE_URL": ours_url, "SESSION_STRATEGY": strategy, **FAST_ENV})
        for endpoint in READ_ENDPOINTS:
            for name, server in servers.items():
                wrk(server.url + endpoint, 1)  # warm-up
            for _ in range(args.rounds):
                for name, server in servers.items():
                    results.setdefault(endpoint, {}).setdefault(name, []).append(wrk(server.url + endpoint, args.seconds))
        script = scratch / "register.lua"
        for name in OURS:
            script.write_text(f"RUN = '{name}'\n" + REGISTER_LUA)
            results.setdefault("POST /users/", {})[name] = [wrk(servers[name].url, args.seconds, connections=4, script=script)]

    medians = {endpoint: {name: statistics.median(v) for name, v in by_name.items()} for endpoint, by_name in results.items()}
    names = [REFERENCE, *OURS]
    print(f"Requests/s, median of {args.rounds} rounds of {args.seconds:g} s (wrk -t1 -c8), one uvicorn worker, {args.database}")
    print(f"{'endpoint':22}" + "".join(f"{name:>18}" for name in names))
    for endpoint, by_name in medians.items():
        print(f"{endpoint:22}" + "".join(f"{by_name[n]:>18.0f}" if n in by_name else f"{'-':>18}" for n in names))
    print("\nRatios (default strategy asgi-middleware):")
    for endpoint in READ_ENDPOINTS:
        ratios = ", ".join(f"{n} {medians[endpoint][n] / medians[endpoint][REFERENCE]:.2f}x" for n in OURS)
        print(f"  {endpoint:20} vs tutorial: {ratios}")
    failed = 0
    print("\nTargets (stated for SQLite):" if args.database == "sqlite" else "\nThe targets are stated for SQLite; against them:")
    for endpoint, name, baseline, at_least in TARGETS:
        ratio = medians[endpoint][name] / medians[endpoint][baseline]
        ok = ratio >= at_least
        failed += not ok
        print(f"  {'PASS' if ok else 'FAIL'} {endpoint} {name} / {baseline} = {ratio:.2f}x (target >= {at_least}x)")
    print(f"\nPOST /users/ (argon2id t={FAST_ENV['ARGON2_TIME_COST']}, m={FAST_ENV['ARGON2_MEMORY_KIB']} KiB, "
          f"p={FAST_ENV['ARGON2_PARALLELISM']}; the tutorial does not hash): "
          + ", ".join(f"{n} {medians['POST /users/'][n]:.0f} users/s" for n in OURS))
    shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed and args.database == "sqlite" else 0


if __name__ == "__main__":
    sys.exit(main())
