"""`legacy-app serve`: settings, the address and the database checked first, migrated once, then uvicorn."""
import argparse
import errno
import logging
import os
import socket
import sys
from typing import Tuple

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..config import CommandFailed, ConfigError, Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def first_line(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def port_number(raw: str) -> int:
    """A TCP port, 1 to 65535 (--port, or the PORT variable)."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be from 1 to 65535")
    return value


def serve(args: argparse.Namespace) -> int:
    """Check settings and database first (one clear line and exit 1 if either is wrong), then serve.

    Workers are uvicorn's: separate processes started with spawn, each importing the app and so
    building its own engine and pool; the check's engine is disposed before they start.
    SIGTERM stops gracefully (in-flight requests finish) and the process exits 0: uvicorn re-raises
    the signal after its shutdown, which a no-op handler turns into a normal return.
    """
    import signal

    import uvicorn

    from ..database import create_engine_from, for_maintenance, is_memory_sqlite
    from ..db import migrate
    from ..observability.logs import logging_config
    from ..observability.metrics import multiprocess_directory
    from .connections import default_max_connections, raise_file_limit
    from .header_timeout import HeaderTimeoutProtocol

    host, port = _listen_address(args)
    _check_can_listen(host, port)  # before the database is touched: a second server migrates nothing
    settings = Settings.from_env()
    file_limit = raise_file_limit()  # inherited by the workers
    max_connections = settings.max_connections or default_max_connections(
        file_limit, settings.pool_size, settings.max_overflow
    )
    if args.workers > 1 and is_memory_sqlite(settings.database_url):
        raise ConfigError("an in-memory SQLite database cannot be shared by several workers; use a file")
    engine = create_engine_from(for_maintenance(settings))
    try:
        if settings.migrate_on_start:
            note, done = migrate.upgrade_on_start(engine)
            for line in filter(None, (note, done)):
                _say(settings, "INFO", line)
        _warn_if_pools_exceed_server(engine, settings, args.workers)
    finally:
        engine.dispose()
    # Migrated once, here: the app's start-up, in every worker uvicorn starts (and in this process
    # with one worker), must not run it again. The workers inherit this environment.
    os.environ["MIGRATE_ON_START"] = "false"
    log_level = args.log_level or settings.log_level
    _say(settings, "INFO", f"file limit {file_limit}; at most {max_connections} connections per worker "
         f"(MAX_CONNECTIONS); request heads within {settings.header_timeout:g} s (HEADER_TIMEOUT)")
    signal.signal(signal.SIGTERM, lambda *_: None)  # replaced by uvicorn while serving, restored after
    # Under several workers, a scrape of any one reports the sum over all (docs/observability.md).
    with multiprocess_directory(args.workers if settings.metrics else 1):
        uvicorn.run(
            "legacy_app.main:app", host=host, port=port, workers=args.workers,
            log_level=log_level, log_config=logging_config(log_level, settings.log_format),
            access_log=False,  # legacy_app.request logs each request, with its id
            limit_concurrency=max_connections,  # per worker: beyond it uvicorn answers 503 at once
            http=HeaderTimeoutProtocol,  # closes connections slower than HEADER_TIMEOUT to send their head
        )
    return 0


def _listen_address(args: argparse.Namespace) -> Tuple[str, int]:
    """--host and --port, else the HOST and PORT environment variables, else 127.0.0.1:8000."""
    host = args.host or os.environ.get("HOST", "").strip() or DEFAULT_HOST
    if args.port is not None:
        return host, args.port
    raw = os.environ.get("PORT", "").strip()
    if not raw:
        return host, DEFAULT_PORT
    try:
        return host, port_number(raw)
    except argparse.ArgumentTypeError:
        raise ConfigError(f"PORT must be an integer from 1 to 65535; got {raw!r}") from None


def _check_can_listen(host: str, port: int) -> None:
    """Bind the address as uvicorn will (SO_REUSEADDR, so a socket in TIME_WAIT does not count), and let go.

    uvicorn would report a port in use only after the migration ran, among its start-up lines.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # uvicorn's rule
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CommandFailed(
                    f"cannot listen on {host}:{port}: the port is already in use (another server?); "
                    "choose another with --port or PORT"
                ) from None
            raise CommandFailed(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def _warn_if_pools_exceed_server(engine: Engine, settings: Settings, workers: int) -> None:
    from ..db import capacity

    try:
        with engine.connect() as connection:
            budget = capacity.read_budget(connection)
    except SQLAlchemyError as error:  # only reached without MIGRATE_ON_START: serve, /health/ready tells
        _say(settings, "WARNING", f"connection budget not checked: {first_line(error)}")
        return
    warning = budget and capacity.over_budget_warning(settings, workers, budget)
    if warning:
        _say(settings, "WARNING", warning)


def _say(settings: Settings, level: str, message: str) -> None:
    """A line of serve's own on stderr, before uvicorn's logging starts: in the LOG_FORMAT of the rest."""
    if settings.log_format == "json":
        from ..observability.json_log import JsonFormatter

        record = logging.LogRecord("legacy_app", getattr(logging, level), __file__, 0, message, None, None)
        print(JsonFormatter().format(record), file=sys.stderr)
    else:
        prefix = "warning: " if level == "WARNING" else ""
        print(f"legacy_app: {prefix}{message}", file=sys.stderr)
