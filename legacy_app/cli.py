"""`python -m legacy_app <command>`: serve, db, seed, compare, doctor, fix."""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from sqlalchemy.engine.url import make_url  # 1.3 has it here only
from sqlalchemy.exc import SQLAlchemyError

from .config import LOG_LEVELS, STRATEGIES, CommandFailed, ConfigError, Settings, check_database_url
from .server.serve import DEFAULT_HOST, DEFAULT_PORT, first_line, port_number, serve

# The slim install (`pip install legacy_app`) has the session middleware and this command line; the
# commands that serve, migrate, seed or compare need what the `service` extra adds.
SERVICE_EXTRA = "pip install 'legacy_app[service]'"

def db(args: argparse.Namespace) -> int:
    from .database import create_engine_from, for_maintenance
    from .db import migrate

    if args.action == "revision" and not args.autogenerate:  # writes a file; needs no database
        print(_wrote(migrate.new_revision(args.message)))
        return 0
    settings = Settings.from_env()
    if args.action != "upgrade":  # only upgrade may create the database
        _refuse_missing_sqlite_file(settings.database_url)
    engine = create_engine_from(for_maintenance(settings))
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
            with engine.connect() as connection:
                print(migrate.schema_state(connection).describe())
        elif args.action == "check":
            differences = migrate.drift(engine)
            if differences:
                print("models and database differ:")
                for difference in differences:
                    print(f"  {difference}")
                return 1
            print("models and migrations match the database")
        elif args.action == "revision":
            print(_wrote(migrate.new_revision(args.message, engine)))
    finally:
        engine.dispose()
    return 0


def _refuse_missing_sqlite_file(url: str) -> None:
    """Connecting to a SQLite file that does not exist creates it: only `db upgrade` may."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") or parsed.query.get("uri"):
        return
    if not Path(parsed.database).exists():
        raise CommandFailed(f"no database at {parsed.database}: the SQLite file does not exist (db upgrade creates it)")


def _wrote(path: Path) -> str:
    return (
        f"wrote {path}: review it, add what it creates to ADOPTION_MARKERS in legacy_app/db/migrate.py, "
        "then run db upgrade"
    )


def seed(args: argparse.Namespace) -> int:
    from .accounts.passwords import make_password_hasher
    from .database import create_engine_from, for_maintenance
    from .db import migrate
    from .seeding import bulk, records

    settings = Settings.from_env()
    if args.file:
        users = records.load(args.file)
        total = len(users)
    else:
        users = records.generated(args.users, args.items_per_user, args.password)
        total = args.users
    engine = create_engine_from(for_maintenance(settings))
    try:
        migrate.upgrade(engine)
        result = bulk.seed(engine, users, total, make_password_hasher(settings), settings.max_items_per_user)
    finally:
        engine.dispose()
    print(f"{engine.url.render_as_string(hide_password=True)}: {result.summary()}")
    return 1 if result.items_over_limit else 0  # rows not stored, as seeding over HTTP counts a 409


def compare(args: argparse.Namespace) -> int:
    from .comparison.report import render_table
    from .comparison.runner import run_comparison

    document = run_comparison(
        database_url=args.database_url,
        strategies=args.strategies,
        overhead_requests=args.requests,
        pool_requests=args.pool_requests,
        progress=lambda line: print(line, file=sys.stderr, flush=True),  # stderr: --json output stays one document
    )
    print(json.dumps(document, indent=2) if args.json else render_table(document))
    return 0


DOCTOR_CANNOT_RUN = 2
DOCTOR_INCONCLUSIVE = 3


def doctor(args: argparse.Namespace) -> int:
    """Exit 0 clean, 1 a hazard, 2 (one line) when the target could not be run, 3 when the run exercised too
    little to call the app clean."""
    from .doctor.report import render_table
    from .doctor.runner import CannotRun, run_doctor

    if args.versions is not None:
        return doctor_versions(args)
    if args.html is not None and not _writable(args.html):  # found out now, not after the run
        print(f"legacy_app doctor: cannot write the page to {args.html}", file=sys.stderr)
        return DOCTOR_CANNOT_RUN
    try:
        document = run_doctor(args.target, app_dir=args.app_dir, factory=args.factory,
                              requests_file=args.requests, settle=args.settle, python=args.python,
                              headers=args.header, openapi_url=args.openapi_url)
    except CannotRun as error:
        print(f"legacy_app doctor: {error}", file=sys.stderr)
        return DOCTOR_CANNOT_RUN
    if args.html is not None:
        from .doctor.timeline import render_html

        args.html.write_text(render_html(document), encoding="utf-8")
    print(json.dumps(document, indent=2) if args.json else render_table(document))
    # A hazard wins over inconclusive: what was exercised did show one.
    return {"hazard": 1, "inconclusive": DOCTOR_INCONCLUSIVE}.get(document["verdict"], 0)


def doctor_versions(args: argparse.Namespace) -> int:
    """`doctor --versions`: exit 1 when any version shows a hazard, 2 when none could run, else 0."""
    from .doctor.runner import CannotRun
    from .doctor.versions import exit_status, parse_specs, render_versions_table, run_versions

    if args.html is not None:
        print("legacy_app doctor: --html draws one run's timeline; run without --versions for it", file=sys.stderr)
        return DOCTOR_CANNOT_RUN
    try:
        document = run_versions(args.target, parse_specs(args.versions), app_dir=args.app_dir, factory=args.factory,
                                requests_file=args.requests, settle=args.settle, python=args.python,
                                headers=args.header, openapi_url=args.openapi_url,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    except CannotRun as error:
        print(f"legacy_app doctor: {error}", file=sys.stderr)
        return DOCTOR_CANNOT_RUN
    print(json.dumps(document, indent=2) if args.json else render_versions_table(document))
    return exit_status(document)


FIX_CANNOT_RUN = 2


def fix(args: argparse.Namespace) -> int:
    """The diff (--diff, the default) on stdout, the findings on stderr. Exit 0; with --check 1 when something
    is to fix or was refused; 2 (one line) when it cannot run: an unreadable path, a file that does not parse,
    a failed write, no libcst."""
    try:
        from .fix import CannotFix, fix_paths, render
    except ImportError as error:
        if (error.name or "").split(".")[0] != "libcst":
            raise
        print("legacy_app fix: needs libcst: pip install 'legacy_app[fix]'", file=sys.stderr)
        return FIX_CANNOT_RUN
    mode = "write" if args.write else "check" if args.check else "diff"
    try:
        report = fix_paths(args.paths, mode, python=args.python)
    except CannotFix as error:
        print(f"legacy_app fix: {error}", file=sys.stderr)
        return FIX_CANNOT_RUN
    if mode == "diff":
        sys.stdout.write(report.diff())
    sys.stderr.write(render(report))
    return report.exit_code


def _writable(path: Path) -> bool:
    directory = path.parent if str(path.parent) else Path(".")
    return directory.is_dir() and os.access(directory, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError("must be between 0 and 60 seconds")
    return value


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


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in --help; none where there is none to show (flags, None)."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        if action.default is None or isinstance(action.default, bool) or "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _one_line_errors() -> Tuple[type, ...]:
    """The service's own errors that main() prints as one line (none in the slim install)."""
    try:
        from alembic.util import CommandError

        from .seeding.records import SeedFileError
    except ImportError:
        return ()
    return (CommandError, SeedFileError)


def _revisions_text() -> str:
    try:
        from .db.migrate import revisions
    except ImportError:
        return f"head, base, or one of this code's revisions (listed once the service extra is installed: {SERVICE_EXTRA})"
    return f"head, base, or one of this code's revisions: {', '.join(revisions())}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="legacy_app", description=__doc__, formatter_class=_HelpWithDefaults)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def add_command(name: str, **kwargs: object) -> argparse.ArgumentParser:
        return commands.add_parser(name, formatter_class=_HelpWithDefaults, **kwargs)

    serve_parser = add_command(
        "serve", help="serve the API with uvicorn (settings from the environment)",
        description="Check the settings, the address and the database, upgrade the schema (MIGRATE_ON_START), "
        "then serve. Exits 1 with one line when any of them is wrong.",
    )
    serve_parser.add_argument("--host", help=f"address to listen on (default: HOST, else {DEFAULT_HOST})")
    serve_parser.add_argument("--port", type=port_number, help=f"port to listen on (default: PORT, else {DEFAULT_PORT})")
    serve_parser.add_argument("--workers", type=_positive, default=1, help="worker processes (docs/deployment.md)")
    serve_parser.add_argument("--log-level", choices=LOG_LEVELS, help="(default: LOG_LEVEL, else info)")
    serve_parser.set_defaults(run=serve)

    accepted = _revisions_text()
    db_parser = add_command("db", help="schema migrations on DATABASE_URL", description=f"Revisions: {accepted}.")
    actions = db_parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def add_action(name: str, help: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help, description=help, formatter_class=_HelpWithDefaults)

    upgrade_parser = add_action("upgrade", "upgrade to a revision; adopts databases create_all() made")
    upgrade_parser.add_argument("revision", nargs="?", default="head", help=accepted)
    downgrade_parser = add_action("downgrade", "downgrade to a revision (base: drop everything)")
    downgrade_parser.add_argument("revision", help=accepted)
    stamp_parser = add_action("stamp", "record a revision as applied without running it")
    stamp_parser.add_argument("revision", help=accepted)
    add_action("current", "print the applied revision and whether it is the head (a missing SQLite file: exit 1)")
    add_action("check", "exit 1 if the database differs from the models")
    revision_parser = add_action(
        "revision", "write the next migration (0003, ...) into legacy_app/db/migrations/versions/"
    )
    revision_parser.add_argument("-m", "--message", required=True, help="what the migration does (also its file name)")
    revision_parser.add_argument(
        "--autogenerate", action="store_true",
        help="fill it in from the differences between the models and DATABASE_URL (which must be at head)",
    )
    db_parser.set_defaults(run=db)

    seed_parser = add_command(
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

    compare_parser = add_command(
        "compare",
        help="measure the session strategies in real uvicorn servers on the installed versions",
        description="Serve the probe app once per strategy under the doctor's instrument in a real uvicorn "
        "server, run the scenarios, and report what was observed; overhead and pool exhaustion are timed "
        "on servers without the instrument.",
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

    doctor_parser = add_command(
        "doctor", help="measure the session lifecycle of any FastAPI or Starlette app that uses SQLAlchemy",
        description="Serve TARGET in a real uvicorn server — with the app's own interpreter (--python), "
        "under SQLAlchemy listeners and an outermost ASGI recorder that need nothing but the standard library "
        "and the app's SQLAlchemy — send each request once as sent and once hanging up right after sending it, "
        "and report every request's status, the hazards, the errors the app raised and what was not exercised. "
        "Exit 0: clean; 1: a hazard; 2: the target could not be run; 3: inconclusive (no request both used a "
        "session and succeeded, or a request was refused 401/403, or 404 on a path of the app's OpenAPI).",
    )
    doctor_parser.add_argument("target", metavar="TARGET", help="module:attribute of the ASGI app")
    doctor_parser.add_argument("--app-dir", type=Path, default=Path("."), help="directory TARGET is imported from")
    doctor_parser.add_argument("--factory", action="store_true",
                               help="TARGET is a function that returns the app (dependency overrides, say)")
    doctor_parser.add_argument(
        "--python", metavar="PATH",
        help="the app's interpreter (its virtualenv's bin/python), which serves it on the app's own stack; it "
        "needs uvicorn (default: this one)",
    )
    doctor_parser.add_argument(
        "--requests", type=Path, metavar="FILE",
        help='a JSON list of {"method", "path", "json" or "form"?, "headers"?, "save"?, "hangup"?}; "{name}" '
        'takes a value saved from an earlier answer, "${VAR}" the environment\'s (docs/doctor.md) (default: the '
        "GETs of the app's OpenAPI, path parameters filled from ids seen in earlier answers or the schema's examples)",
    )
    doctor_parser.add_argument(
        "--header", action="append", default=[], metavar='"NAME: VALUE"',
        help="a header sent with every request (repeatable); its value never appears in the output",
    )
    doctor_parser.add_argument(
        "--openapi-url", metavar="PATH",
        help="where the app serves its OpenAPI (default: the app's own openapi_url, else the usual places)",
    )
    doctor_parser.add_argument(
        "--versions", metavar="SPECS",
        help='run the same requests on other FastAPI releases: "fastapi==0.105 fastapi==0.118 ..." (fastapi==newest '
        "for the newest) or a preset, fastapi-session-changes (0.105, 0.106, 0.117.1, 0.118, 0.121 and the newest); "
        "each in a copy of the app's environment (--python) where only FastAPI and what it requires (Starlette, "
        "anyio, ...) moved; one table, version by request. The copies are kept for the next run in "
        "$LEGACY_APP_DOCTOR_CACHE (default ~/.cache/legacy_app/doctor-versions): rm -r that directory to clear "
        "them. Progress on stderr; exit 1: a hazard on any version, 2: none could run, 3: one was inconclusive",
    )
    doctor_parser.add_argument("--json", action="store_true", help="print one JSON document")
    doctor_parser.add_argument("--html", type=Path, metavar="FILE", help="also write a timeline page to FILE")
    doctor_parser.add_argument(
        "--settle", type=_seconds, default=0.5,
        help="seconds to wait after the app returned before judging a request",
    )
    doctor_parser.set_defaults(run=doctor)

    fix_parser = add_command(
        "fix", help="rewrite an app's session hazards into legacy_app.sessions; refuse, with the reason, what it cannot",
        description="Rewrite, in an app's own source, a session middleware of @app.middleware(\"http\") or of a "
        "BaseHTTPMiddleware subclass into one add_middleware(DBSessionMiddleware, ...) line, and every Depends() of a "
        "yield dependency that commits after its yield into Depends(..., scope=\"function\") (FastAPI 0.121+). What "
        "cannot be rewritten safely is listed with its file, line and reason, and left alone; every other byte stays "
        "as it was. Exit 0; with --check 1 when something is to fix or was refused; 2 (one line) when it cannot run.",
    )
    fix_parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a file, or a folder of the app's source")
    fix_mode = fix_parser.add_mutually_exclusive_group()
    fix_mode.add_argument("--diff", action="store_true", help="print the changes as a unified diff (the default)")
    fix_mode.add_argument("--write", action="store_true",
                          help="apply them: each file replaced atomically, in its own encoding")
    fix_mode.add_argument("--check", action="store_true",
                          help="change nothing; exit 1 when something is to fix or was refused (for CI)")
    fix_parser.add_argument(
        "--python", metavar="PATH",
        help="the app's interpreter, whose FastAPI decides the Depends rewrite (default: this one)",
    )
    fix_parser.set_defaults(run=fix)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Exit 0 on success, 2 for a command line argparse refuses, 1 for any other failure, each in one line."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "database_url", None) is not None:  # compare's URL, checked as DATABASE_URL is
            check_database_url(args.database_url, "--database-url")
        return args.run(args)
    except ConfigError as error:
        # 1, not 2: the command line was right, the environment it runs in is not (as for the database).
        print(f"legacy_app: configuration error: {error}", file=sys.stderr)
        return 1
    except CommandFailed as error:
        print(f"legacy_app {args.command}: {error}", file=sys.stderr)
        return 1
    except _one_line_errors() as error:  # a seed file's or a migration's error
        print(f"legacy_app {args.command}: {error}", file=sys.stderr)
        return 1
    except ImportError as error:  # the slim install, or a stack older than the service's
        module = error.name or "legacy_app"
        if module.split(".")[0] == "legacy_app":
            raise
        why = f"{module} is not installed" if isinstance(error, ModuleNotFoundError) else f"this {module} is too old"
        print(f"legacy_app {args.command}: needs the service extra ({why}): {SERVICE_EXTRA}", file=sys.stderr)
        return 1
    except SQLAlchemyError as error:
        print(f"legacy_app {args.command}: database error: {first_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
