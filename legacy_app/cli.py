"""`python -m legacy_app <command>`: serve, compare."""
import argparse
import json
import sys
from typing import List, Optional

from .config import STRATEGIES, ConfigError


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .config import Settings

    Settings.from_env()  # a bad setting is one clear line, before uvicorn starts
    uvicorn.run("legacy_app.main:app", host=args.host, port=args.port, log_level=args.log_level)
    return 0


def compare(args: argparse.Namespace) -> int:
    from .comparison.report import render_table
    from .comparison.runner import run_comparison

    document = run_comparison(
        database_url=args.database_url,
        strategies=args.strategies,
        overhead_requests=args.requests,
        pool_requests=args.pool_requests,
    )
    print(json.dumps(document, indent=2) if args.json else render_table(document))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="legacy_app", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve_parser = commands.add_parser("serve", help="serve the API with uvicorn (settings from the environment)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--log-level", default="info")
    serve_parser.set_defaults(run=serve)

    compare_parser = commands.add_parser(
        "compare",
        help="measure the session strategies in real uvicorn servers on the installed versions",
        description="Run each session strategy in a real uvicorn server and report what was observed.",
    )
    compare_parser.add_argument("--json", action="store_true", help="print one JSON document")
    compare_parser.add_argument("--database-url", help="database to probe (default: a temporary SQLite file)")
    compare_parser.add_argument(
        "--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES), metavar="STRATEGY",
        help=f"strategies to compare (default: all: {', '.join(STRATEGIES)})",
    )
    compare_parser.add_argument("--requests", type=int, default=300, help="measured requests per route for overhead")
    compare_parser.add_argument("--pool-requests", type=int, default=60, help="concurrent requests for pool exhaustion")
    compare_parser.set_defaults(run=compare)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as error:
        print(f"legacy_app: configuration error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
