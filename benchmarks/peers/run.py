"""Benchmark: our session middleware beside its peers, on the tutorial's app, side by side, in one run.

python -m benchmarks.peers [--rounds 5] [--seconds 1] [--no-pin]   (scripts/bench-peers.sh makes its virtualenv)

One SQLite file with the same data (100 users x 10 items) serves every variant of benchmarks/peers/app.py,
each as one uvicorn worker. As in benchmarks/run.py (whose helpers this uses): each round starts fresh
servers, warms them, and drives every endpoint on every server in turn, there and back, with wrk
(one thread, 8 connections); a ratio is taken within a round, between servers that ran side by side,
and the figure reported is its median over the rounds, with its range. With two CPUs the servers run
on one and wrk on the other. A variant whose package is missing or whose server does not start is
reported as not measured, with the reason.
"""
import argparse
import importlib.metadata
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from sqlalchemy import create_engine, insert

from benchmarks.peers import PEERS
from benchmarks.run import cpu_split, drive_round, stop_servers, summary, warm_up
from benchmarks.tutorial_app.models import Base, Item, User
from legacy_app.server.process import ServerProcess

OURS = "ours"
OTHERS = tuple(peer for peer in PEERS if peer != OURS)
USER_ENDPOINT, NO_DB_ENDPOINT = "/users/1", "/ping"
ENDPOINTS = (USER_ENDPOINT, NO_DB_ENDPOINT)
TARGETS: List[Tuple[str, str, float]] = [
    # (endpoint, ours compared with, at least): both peers below go through BaseHTTPMiddleware
    (NO_DB_ENDPOINT, "decorator", 1.5),
    (NO_DB_ENDPOINT, "fastapi-sqlalchemy", 1.5),
    (NO_DB_ENDPOINT, "yield", 0.9),
    *((USER_ENDPOINT, peer, 1.0) for peer in OTHERS),  # no slower than any of them
]
USERS, ITEMS_PER_USER = 100, 10
STACK = ("fastapi", "starlette", "pydantic", "SQLAlchemy", "uvicorn", "fastapi-sqlalchemy", "advanced-alchemy")


def seed(path: Path) -> str:
    """The tutorial's tables in a new SQLite file, with USERS users of ITEMS_PER_USER items each."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(User), [
            {"id": n, "email": f"user{n}@seed.example.com", "hashed_password": "seed-passwordnotreallyhashed",
             "is_active": True} for n in range(1, USERS + 1)])
        connection.execute(insert(Item), [
            {"title": f"Item {k}", "description": f"Item {k} of user {n}", "owner_id": n}
            for n in range(1, USERS + 1) for k in range(1, ITEMS_PER_USER + 1)])
    engine.dispose()
    return url


def start_servers(
    names: Tuple[str, ...], database_url: str, scratch: Path, cpus: Optional[Set[int]]
) -> Tuple[Dict[str, ServerProcess], Dict[str, str]]:
    """(the servers that answer, the reason each of the others does not)."""
    servers: Dict[str, ServerProcess] = {}
    failed: Dict[str, str] = {}
    quiet = ["--no-access-log", "--log-level", "warning"]
    try:
        for name in names:
            env = {"PEER": name, "DATABASE_URL": database_url}
            servers[name] = ServerProcess("benchmarks.peers.app:app", env, scratch / f"{name}.log",
                                          extra_args=quiet, cpus=cpus).launch()
        for name in names:
            try:
                servers[name].wait_until_serving()
                warm_up(servers[name], ENDPOINTS)
            except RuntimeError as error:
                servers.pop(name).stop()
                lines = [line for line in str(error).splitlines() if line.strip()]
                failed[name] = lines[-1].strip() if lines else "did not start"
    except BaseException:
        stop_servers(servers)
        raise
    return servers, failed


Round = Dict[str, Dict[str, float]]  # round[endpoint][peer] = requests/s


class Bench:
    def __init__(self, database_url: str, scratch: Path, seconds: int, pin: bool) -> None:
        self.database_url = database_url
        self.scratch = scratch
        self.seconds = seconds
        self.server_cpus, self.wrk_cpus = cpu_split() if pin else (None, None)
        self.rounds: List[Round] = []
        self.not_measured: Dict[str, str] = {}

    def measured(self) -> Tuple[str, ...]:
        return tuple(name for name in PEERS if name not in self.not_measured)

    def measure_round(self) -> None:
        servers, failed = start_servers(self.measured(), self.database_url, self.scratch, self.server_cpus)
        self.not_measured.update(failed)
        try:
            self.rounds.append(drive_round(servers, ENDPOINTS, len(self.rounds), self.seconds, self.wrk_cpus))
        finally:
            stop_servers(servers)

    def figures(self, endpoint: str, name: str) -> List[float]:
        return [r[endpoint][name] for r in self.rounds if name in r[endpoint]]

    def ratios(self, endpoint: str, name: str, baseline: str) -> List[float]:
        return [r[endpoint][name] / r[endpoint][baseline] if r[endpoint][baseline] else float("inf")
                for r in self.rounds if {name, baseline} <= r[endpoint].keys()]

    def pinning(self) -> str:
        if self.server_cpus and self.wrk_cpus:
            return f"servers on CPU {min(self.server_cpus)}, wrk on CPU {min(self.wrk_cpus)}"
        return "no CPU pinning"


def stack() -> str:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return ", ".join(f"{name} {version(name)}" for name in STACK)


def report(bench: Bench, args: argparse.Namespace) -> int:
    """Print the tables and the targets; the number of targets missed."""
    width = max(len(name) for name in PEERS) + 2
    print(f"Requests/s, median over {args.rounds} rounds with fresh servers, 2 runs of {args.seconds} s per round "
          f"(wrk -t1 -c8), one uvicorn worker each, SQLite ({USERS} users x {ITEMS_PER_USER} items), {bench.pinning()}")
    print(stack())
    print(f"{'endpoint':12}" + "".join(f"{name:>{width}}" for name in PEERS))
    for endpoint in ENDPOINTS:
        cells = [bench.figures(endpoint, name) for name in PEERS]
        print(f"{endpoint:12}" + "".join(f"{statistics.median(c):>{width}.0f}" if c else f"{'n/a':>{width}}" for c in cells))
    for name, reason in bench.not_measured.items():
        print(f"  {name}: not measured: {reason}")
    print("\nRatios ours / peer, each taken within a round: median (lowest-highest)")
    ratio_width = width + len("ours / ")
    print(f"{'endpoint':12}" + "".join(f"{'ours / ' + name:>{ratio_width}}" for name in OTHERS))
    for endpoint in ENDPOINTS:
        cells = [bench.ratios(endpoint, OURS, name) for name in OTHERS]
        print(f"{endpoint:12}" + "".join(f"{summary(c) if c else 'n/a':>{ratio_width}}" for c in cells))
    missed = 0
    print("\nTargets (a session created for every request by our middleware):")
    for endpoint, baseline, at_least in TARGETS:
        values = bench.ratios(endpoint, OURS, baseline)
        if not values:
            print(f"  SKIP {endpoint} ours / {baseline}: {baseline} not measured")
            continue
        met = statistics.median(values) >= at_least
        missed += not met
        print(f"  {'PASS' if met else 'FAIL'} {endpoint} ours / {baseline} = {summary(values, 3)} (target >= {at_least}x)")
    return missed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each with fresh servers")
    parser.add_argument("--seconds", type=int, default=1,
                        help="length of each wrk run (whole seconds); each server runs twice per endpoint and round")
    parser.add_argument("--no-pin", action="store_true", help="let servers and wrk run on any CPU")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (scripts/bench-peers.sh installs it)")
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds and --seconds must be at least 1")

    scratch = Path(tempfile.mkdtemp(prefix="legacy_app_bench_peers_"))
    try:
        bench = Bench(seed(scratch / "tutorial.db"), scratch, args.seconds, not args.no_pin)
        for number in range(1, args.rounds + 1):
            bench.measure_round()
            print(f"round {number}/{args.rounds} done", file=sys.stderr, flush=True)
        if OURS in bench.not_measured:
            raise SystemExit(f"our middleware's server did not start: {bench.not_measured[OURS]}")
        missed = report(bench, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if missed else 0
