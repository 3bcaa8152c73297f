"""Benchmark: this service (each session strategy) against the tutorial app, side by side, in one run.

python -m benchmarks.run [--database sqlite|postgresql] [--rounds 5] [--health-pairs 24] [--seconds 1] [--no-pin]

Every server gets the same data (100 users x 10 items), runs as one uvicorn worker, and gets the
same wrk load (one thread, 8 connections). Each round starts fresh servers, warms them, and drives
every endpoint on every server in turn, there and back; a ratio is taken within a round, between
servers that ran side by side, and the figure reported is the median over the rounds, with its
range. Fresh servers each round because one process can be a few per cent faster than another
running the same code (two servers of the same code differed by up to 7 % here), which a 5 % target
cannot tolerate from a single pair; for the same reason the /health target, a ratio near 1, gets
further rounds of its own. With two or more CPUs, the servers run on one CPU and wrk on another, so
the load generator never competes with the server it measures. Prints requests/s, the ratios, and
PASS/FAIL for each target; POST /users/ is measured last, once per strategy.
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
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from legacy_app.config import FLOOR_HASHING_ENV
from legacy_app.server.process import ServerProcess, run_on
from legacy_app.server.client import http_session

REFERENCE = "tutorial"
OURS = ("asgi-middleware", "http-middleware", "yield-dependency")
SERVERS = (REFERENCE, *OURS)
READ_ENDPOINTS = ("/users/1", "/users/?limit=100", "/items/?limit=100", "/health")
TARGETS: List[Tuple[str, str, str, float]] = [
    # (endpoint, server, compared with, at least)
    ("/users/1", "asgi-middleware", REFERENCE, 2.0),
    ("/users/?limit=100", "asgi-middleware", REFERENCE, 4.0),
    ("/items/?limit=100", "asgi-middleware", REFERENCE, 1.8),
    ("/health", "asgi-middleware", "yield-dependency", 0.95),
]
# The /health target is a ratio near 1 with a 5 % margin: it gets extra rounds of its own.
HEALTH_PAIR = ("asgi-middleware", "yield-dependency")
WARM_UP_REQUESTS = 30
WRITE_SECONDS = 4
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


def cpu_split() -> Tuple[Optional[Set[int]], Optional[Set[int]]]:
    """(CPUs for the servers, CPUs for wrk): one each when there are two, else no pinning."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return {available[0]}, {available[1]}


def wrk(url: str, seconds: float, cpus: Optional[Set[int]], connections: int = 8, script: Optional[Path] = None) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True,
        preexec_fn=run_on(cpus),
    ).stdout
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


def warm_up(server: ServerProcess, endpoints: Tuple[str, ...]) -> None:
    """First requests pay for imports, caches and connections; none of that is measured."""
    with http_session() as session:
        for endpoint in endpoints:
            for _ in range(WARM_UP_REQUESTS):
                status = session.get(server.url + endpoint, timeout=30).status_code
                if status != 200:
                    raise RuntimeError(f"{server.url}{endpoint}: warm-up answered {status}")


def start_servers(
    names: Tuple[str, ...], endpoints: Tuple[str, ...], urls: Dict[str, str], scratch: Path, cpus: Optional[Set[int]]
) -> Dict[str, ServerProcess]:
    servers: Dict[str, ServerProcess] = {}
    quiet = ["--no-access-log", "--log-level", "warning"]
    try:
        for name in names:
            if name == REFERENCE:
                app, env = "benchmarks.tutorial_app.main:app", {"DATABASE_URL": urls[REFERENCE]}
            else:
                app, env = "legacy_app.main:app", {"DATABASE_URL": urls[name], "SESSION_STRATEGY": name, **FAST_ENV}
            servers[name] = ServerProcess(app, env, scratch / f"{name}.log", extra_args=quiet, cpus=cpus).launch()
        for server in servers.values():
            server.wait_until_serving()
            warm_up(server, endpoints)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: Dict[str, ServerProcess]) -> None:
    for server in servers.values():
        server.stop()


def rotated(names: Tuple[str, ...], by: int) -> List[str]:
    """Each round starts with a different server, so none is always first after the warm-up."""
    by %= len(names)
    return list(names[by:] + names[:by])


Round = Dict[str, Dict[str, float]]  # round[endpoint][server] = requests/s


def drive_round(servers: Dict[str, ServerProcess], endpoints: Sequence[str], number: int, seconds: float,
                wrk_cpus: Optional[Set[int]]) -> Round:
    """One round: every server on every endpoint, there and back (A B C D D C B A), so that every server's
    two runs are centred on the same moment and a slow spell of the machine weighs on all of them alike."""
    names = tuple(servers)
    taken: Round = {}
    for endpoint in endpoints:
        order = rotated(names, number)
        runs: Dict[str, List[float]] = {name: [] for name in names}
        for name in order + order[::-1]:
            runs[name].append(wrk(servers[name].url + endpoint, seconds, wrk_cpus))
        taken[endpoint] = {name: statistics.mean(figures) for name, figures in runs.items()}
    return taken


class Bench:
    def __init__(self, urls: Dict[str, str], scratch: Path, seconds: int, pin: bool) -> None:
        self.urls = urls
        self.scratch = scratch
        self.seconds = seconds
        self.server_cpus, self.wrk_cpus = cpu_split() if pin else (None, None)
        self.rounds: List[Round] = []
        self.posts: Dict[str, float] = {}

    def measure_round(self, names: Tuple[str, ...], endpoints: Tuple[str, ...]) -> None:
        servers = start_servers(names, endpoints, self.urls, self.scratch, self.server_cpus)
        try:
            self.rounds.append(drive_round(servers, endpoints, len(self.rounds), self.seconds, self.wrk_cpus))
        finally:
            stop_servers(servers)

    def measure_writes(self) -> None:
        """Last, so that no round reads the users they add."""
        servers = start_servers(OURS, READ_ENDPOINTS, self.urls, self.scratch, self.server_cpus)
        script = self.scratch / "register.lua"
        try:
            for name in OURS:
                # A token per run: on PostgreSQL the users of earlier runs are still there.
                script.write_text(f"RUN = '{name}-{uuid.uuid4().hex[:8]}'\n" + REGISTER_LUA)
                self.posts[name] = wrk(servers[name].url, WRITE_SECONDS, self.wrk_cpus, connections=4, script=script)
        finally:
            stop_servers(servers)

    def figures(self, endpoint: str, name: str) -> List[float]:
        return [r[endpoint][name] for r in self.rounds if name in r.get(endpoint, {})]

    def ratios(self, endpoint: str, name: str, baseline: str) -> List[float]:
        """name / baseline within each round that measured both (infinite where the baseline completed no request)."""
        return [r[endpoint][name] / r[endpoint][baseline] if r[endpoint][baseline] else float("inf")
                for r in self.rounds if {name, baseline} <= r.get(endpoint, {}).keys()]

    def pinning(self) -> str:
        if self.server_cpus and self.wrk_cpus:
            return f"servers on CPU {min(self.server_cpus)}, wrk on CPU {min(self.wrk_cpus)}"
        return "no CPU pinning"


def metrics_state() -> str:
    """The servers inherit the environment: METRICS=false runs them without metrics."""
    return "off" if os.environ.get("METRICS", "true").strip().lower() in ("0", "false", "no", "off") else "on"


def summary(values: List[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f}x ({min(values):.2f}-{max(values):.2f})"


def report(bench: Bench, args: argparse.Namespace) -> int:
    """Print the tables and the targets; the number of targets missed."""
    print(f"Requests/s, median over rounds with fresh servers ({args.rounds}, and {args.health_pairs} more for "
          f"/health {' and '.join(HEALTH_PAIR)}), 2 runs of {args.seconds} s per round (wrk -t1 -c8), one uvicorn worker, "
          f"{args.database}, {bench.pinning()}, this service's metrics {metrics_state()} (METRICS)")
    print(f"{'endpoint':22}" + "".join(f"{name:>18}" for name in SERVERS))
    for endpoint in READ_ENDPOINTS:
        print(f"{endpoint:22}" + "".join(f"{statistics.median(bench.figures(endpoint, n)):>18.0f}" for n in SERVERS))
    print("\nRatios, each taken within a round: median (lowest-highest)")
    for endpoint in READ_ENDPOINTS:
        print(f"  {endpoint:20} vs tutorial: " + ", ".join(f"{n} {summary(bench.ratios(endpoint, n, REFERENCE))}" for n in OURS))
    health = bench.ratios("/health", *HEALTH_PAIR)
    print(f"  {'/health':20} {HEALTH_PAIR[0]} vs {HEALTH_PAIR[1]}: {summary(health)} over {len(health)} rounds")
    missed = 0
    print("\nTargets (stated for SQLite):" if args.database == "sqlite" else "\nThe targets are stated for SQLite; against them:")
    for endpoint, name, baseline, at_least in TARGETS:
        values = bench.ratios(endpoint, name, baseline)
        met = statistics.median(values) >= at_least
        missed += not met
        print(f"  {'PASS' if met else 'FAIL'} {endpoint} {name} / {baseline} = {summary(values, 3)} (target >= {at_least}x)")
    print(f"\nPOST /users/, {WRITE_SECONDS} s, 4 connections (argon2id t={FAST_ENV['ARGON2_TIME_COST']}, "
          f"m={FAST_ENV['ARGON2_MEMORY_KIB']} KiB, p={FAST_ENV['ARGON2_PARALLELISM']}; the tutorial does not hash): "
          + ", ".join(f"{n} {bench.posts[n]:.0f} users/s" for n in OURS))
    return missed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/legacy_app_bench"))
    parser.add_argument("--seconds", type=int, default=1,
                        help="length of each wrk run (whole seconds); each server runs twice per endpoint and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every endpoint, each with fresh servers")
    parser.add_argument("--health-pairs", type=int, default=24,
                        help="further rounds of /health alone, asgi-middleware and yield-dependency")
    parser.add_argument("--no-pin", action="store_true", help="let servers and wrk run on any CPU")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (scripts/bench.sh installs it)")
    if args.rounds < 1 or args.seconds < 1 or args.health_pairs < 0:
        parser.error("--rounds and --seconds must be at least 1, --health-pairs at least 0")

    scratch = Path(tempfile.mkdtemp(prefix="legacy_app_bench_"))
    try:
        if args.database == "sqlite":
            ours_url = f"sqlite:///{scratch / 'ours.db'}"
            seed(ours_url)
            reference_copy(scratch / "ours.db", scratch / "tutorial.db")
            reference_url = f"sqlite:///{scratch / 'tutorial.db'}"
        else:
            ours_url = reference_url = args.postgres_url
            seed(ours_url)
        bench = Bench({REFERENCE: reference_url, **{name: ours_url for name in OURS}}, scratch, args.seconds, not args.no_pin)
        for number in range(1, args.rounds + 1):
            bench.measure_round(SERVERS, READ_ENDPOINTS)
            print(f"round {number}/{args.rounds} done", file=sys.stderr, flush=True)
        for number in range(1, args.health_pairs + 1):
            bench.measure_round(HEALTH_PAIR, ("/health",))
            print(f"/health round {number}/{args.health_pairs}: {bench.ratios('/health', *HEALTH_PAIR)[-1]:.3f}",
                  file=sys.stderr, flush=True)
        bench.measure_writes()
        missed = report(bench, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if missed and args.database == "sqlite" else 0


if __name__ == "__main__":
    sys.exit(main())
