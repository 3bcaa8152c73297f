"""`python -m legacy_app <command>`: serve, db, seed, compare."""
import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from alembic.util import CommandError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from .config import LOG_LEVELS, STRATEGIES, ConfigError, Settings
from .seeding.records import SeedFileError


def _first_line(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def serve(args: argparse.Namespace) -> int:
    """Check settings and database first (one clear line and exit 1 if either is wrong), then serve.

    Workers are uvicorn's: separate processes started with spawn, each importing the app and so
    building its own engine and pool; the check's engine is disposed before they start.
    SIGTERM stops gracefully (in-flight requests finish) and the process exits 0: uvicorn re-raises
    the signal after its shutdown, which a no-op handler turns into a normal return.
    """
    import signal

    import uvicorn

    from . import migrate
    from .database import create_engine_from, is_memory_sqlite
    from .metrics import multiprocess_directory
    from .request_log import logging_config

    settings = Settings.from_env()
    if args.workers > 1 and is_memory_sqlite(settings.database_url):
        raise ConfigError("an in-memory SQLite database cannot be shared by several workers; use a file")
    engine = create_engine_from(settings)
    try:
        if settings.migrate_on_start:
            note = migrate.upgrade(engine)
            if note:
                _say(settings, "INFO", note)
        _warn_if_pools_exceed_server(engine, settings, args.workers)
    finally:
        engine.dispose()
    log_level = args.log_level or settings.log_level
    signal.signal(signal.SIGTERM, lambda *_: None)  # replaced by uvicorn while serving, restored after
    # Under several workers, a scrape of any one reports the sum over all (README: Observability).
    with multiprocess_directory(args.workers if settings.metrics else 1):
        uvicorn.run(
            "legacy_app.main:app", host=args.host, port=args.port, workers=args.workers,
            log_level=log_level, log_config=logging_config(log_level, settings.log_format),
            access_log=False,  # legacy_app.request logs each request, with its id
        )
    return 0


def _warn_if_pools_exceed_server(engine: Engine, settings: Settings, workers: int) -> None:
    from . import capacity

    try:
        with engine.connect() as connection:
            budget = capacity.read_budget(connection)
    except SQLAlchemyError as error:  # only reached without MIGRATE_ON_START: serve, /health/ready tells
        _say(settings, "WARNING", f"connection budget not checked: {_first_line(error)}")
        return
    warning = budget and capacity.over_budget_warning(settings, workers, budget)
    if warning:
        _say(settings, "WARNING", warning)


def _say(settings: Settings, level: str, message: str) -> None:
    """A line of serve's own on stderr, before uvicorn's logging starts: in the LOG_FORMAT of the rest."""
    if settings.log_format == "json":
        from .json_log import JsonFormatter

        record = logging.LogRecord("legacy_app", getattr(logging, level), __file__, 0, message, None, None)
        print(JsonFormatter().format(record), file=sys.stderr)
    else:
        prefix = "warning: " if level == "WARNING" else ""
        print(f"legacy_app: {prefix}{message}", file=sys.stderr)


def db(args: argparse.Namespace) -> int:
    from . import migrate
    from .database import create_engine_from

    engine = create_engine_from(Settings.from_env())
    try:
        if args.action == "upgrade":
            note = migrate.upgrade(engine, args.revision)
            print(note or f"database at {migrate.current_revision(engine) or 'base'}")
        elif args.action == "downgrade":
            migrate.downgrade(engine, args.revision)
            print(f"database at {migrate.current_revision(engine) or 'base'}")
        elif args.action == "stamp":
            migrate.stamp(engine, args.revision)
            print(f"database stamped at {migrate.current_revision(engine) or 'base'}")
        elif args.action == "current":
            print(migrate.current_revision(engine) or "none (no migration applied)")
        elif args.action == "check":
            differences = migrate.drift(engine)
            if differences:
                print("models and database differ:")
                for difference in differences:
                    print(f"  {difference}")
                return 1
            print("models and migrations match the database")
    finally:
        engine.dispose()
    return 0


def seed(args: argparse.Namespace) -> int:
    from . import migrate
    from .database import create_engine_from
    from .security import make_password_hasher
    from .seeding import bulk, records

    settings = Settings.from_env()
    if args.file:
        users = records.load(args.file)
        total = len(users)
    else:
        users = records.generated(args.users, args.items_per_user, args.password)
        total = args.users
    engine = create_engine_from(settings)
    try:
        migrate.upgrade(engine)
        result = bulk.seed(engine, users, total, make_password_hasher(settings))
    finally:
        engine.dispose()
    print(f"{engine.url.render_as_string(hide_password=True)}: {result.summary()}")
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


def _positive(raw: str) -> int:
    value = _not_negative(raw)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _not_negative(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="legacy_app", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve_parser = commands.add_parser("serve", help="serve the API with uvicorn (settings from the environment)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--workers", type=_positive, default=1, help="worker processes (default 1; README: Deployment)")
    serve_parser.add_argument("--log-level", choices=LOG_LEVELS, help="default: LOG_LEVEL, else info")
    serve_parser.set_defaults(run=serve)

    db_parser = commands.add_parser("db", help="schema migrations on DATABASE_URL")
    actions = db_parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    upgrade_parser = actions.add_parser("upgrade", help="upgrade to a revision (default head); adopts tutorial databases")
    upgrade_parser.add_argument("revision", nargs="?", default="head")
    downgrade_parser = actions.add_parser("downgrade", help="downgrade to a revision (base: drop everything)")
    downgrade_parser.add_argument("revision")
    stamp_parser = actions.add_parser("stamp", help="record a revision as applied without running it")
    stamp_parser.add_argument("revision")
    actions.add_parser("current", help="print the applied revision")
    actions.add_parser("check", help="exit 1 if the database differs from the models")
    db_parser.set_defaults(run=db)

    seed_parser = commands.add_parser(
        "seed", help="bulk-load users and items straight into DATABASE_URL (idempotent)",
        description="Bulk-load generated users and items, or those of a JSON/CSV file, into DATABASE_URL. "
        "Existing users (by email) and items (by owner and title) are skipped.",
    )
    source = seed_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--users", type=_positive, help="generate this many users (user<N>@seed.example.com)")
    source.add_argument("--file", type=Path, help="a .json or .csv file (format: scripts/README.md)")
    seed_parser.add_argument("--items-per-user", type=_not_negative, default=0, help="items per generated user")
    seed_parser.add_argument("--password", default="seed-password", help="password of generated users")
    seed_parser.set_defaults(run=seed)

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
    except SeedFileError as error:
        print(f"legacy_app seed: {error}", file=sys.stderr)
        return 1
    except CommandError as error:
        print(f"legacy_app {args.command}: {error}", file=sys.stderr)
        return 1
    except SQLAlchemyError as error:
        print(f"legacy_app {args.command}: database error: {_first_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
