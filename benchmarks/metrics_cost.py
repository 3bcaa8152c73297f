"""What the metrics cost: GET /users/{id} with METRICS=true against METRICS=false, side by side in one run.

python -m benchmarks.metrics_cost [--database sqlite|postgresql] [--rounds 5] [--seconds 2] [--no-pin]

Each round starts two fresh servers of the same code on the same data (100 users x 10 items), one
with metrics and one without, warms both, and runs wrk (one thread, 8 connections) on each in turn,
there and back (on off off on, or off on on off: the rounds alternate who goes first), so that a
slow spell of the machine weighs on both alike. The ratio on/off is taken within each round; the
cost printed is 1 - ratio, the median over rounds with its range. Servers and wrk as in
benchmarks.run: one uvicorn worker (single-process metrics), servers on one CPU and wrk on another.
Exits 1 when the median cost is over the 5 % budget.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from legacy_app.server.process import ServerProcess

from .run import FAST_ENV, cpu_split, seed, warm_up, wrk

ENDPOINT = "/users/1"
ALLOWED_COST = 0.05
VARIANTS = {"on": "true", "off": "false"}


def start(url: str, scratch: Path, cpus: Optional[set]) -> Dict[str, ServerProcess]:
    servers: Dict[str, ServerProcess] = {}
    quiet = ["--no-access-log", "--log-level", "warning"]
    try:
        for name, metrics in VARIANTS.items():
            env = {"DATABASE_URL": url, "METRICS": metrics, **FAST_ENV}
            servers[name] = ServerProcess("legacy_app.main:app", env, scratch / f"{name}.log",
                                          extra_args=quiet, cpus=cpus).launch()
        for server in servers.values():
            server.wait_until_serving()
            warm_up(server, (ENDPOINT,))
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def measure_round(number: int, url: str, scratch: Path, seconds: int, pin: bool) -> Dict[str, float]:
    server_cpus, wrk_cpus = cpu_split() if pin else (None, None)
    servers = start(url, scratch, server_cpus)
    order = ["on", "off"] if number % 2 == 0 else ["off", "on"]
    runs: Dict[str, List[float]] = {"on": [], "off": []}
    try:
        for name in order + order[::-1]:
            runs[name].append(wrk(servers[name].url + ENDPOINT, seconds, wrk_cpus))
    finally:
        for server in servers.values():
            server.stop()
    return {name: statistics.mean(figures) for name, figures in runs.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/legacy_app_bench"))
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each with two fresh servers")
    parser.add_argument("--seconds", type=int, default=2, help="length of each wrk run; 4 runs per round")
    parser.add_argument("--no-pin", action="store_true", help="let servers and wrk run on any CPU")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (scripts/bench.sh installs it)")
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds and --seconds must be at least 1")

    scratch = Path(tempfile.mkdtemp(prefix="legacy_app_metrics_cost_"))
    try:
        url = f"sqlite:///{scratch / 'bench.db'}" if args.database == "sqlite" else args.postgres_url
        seed(url)
        rounds = []
        for number in range(args.rounds):
            taken = measure_round(number, url, scratch, args.seconds, not args.no_pin)
            rounds.append(taken)
            print(f"round {number + 1}/{args.rounds}: on {taken['on']:.0f}/s, off {taken['off']:.0f}/s, "
                  f"ratio {taken['on'] / taken['off']:.3f}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    costs = [1 - r["on"] / r["off"] for r in rounds]
    cost = statistics.median(costs)
    print(f"GET {ENDPOINT}, {args.database}, {args.rounds} round(s) of fresh servers, 2 runs of {args.seconds} s each "
          f"per server and round (wrk -t1 -c8), one uvicorn worker")
    print(f"requests/s, median over rounds: metrics on {statistics.median(r['on'] for r in rounds):.0f}, "
          f"off {statistics.median(r['off'] for r in rounds):.0f}")
    print(f"ratio on/off: {statistics.median(1 - c for c in costs):.3f} "
          f"({min(1 - c for c in costs):.3f}-{max(1 - c for c in costs):.3f})")
    met = cost <= ALLOWED_COST
    print(f"{'PASS' if met else 'FAIL'} metrics cost {cost * 100:.1f} % "
          f"(range {min(costs) * 100:.1f} to {max(costs) * 100:.1f} %; allowed {ALLOWED_COST * 100:.0f} %)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
