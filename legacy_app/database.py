"""The tutorial's `engine`, `SessionLocal` and `Base`, and the per-dialect setup each database needs.

`engine` and `SessionLocal` are built from the settings (the environment) when first used, so
importing this module connects to nothing; create_app(settings, engine=..., session_factory=...)
builds others for tests.
"""
import os
import weakref
from typing import Any, Dict, Union

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.pool import QueuePool, StaticPool

from . import compat
from .config import Settings, environment_settings
from .db import connection_deadline

# sqlalchemy.orm.declarative_base exists from 1.4 on; the old ext.declarative path warns on 1.4 and 2.x.
Base = declarative_base()

_built: Dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """`engine` and `SessionLocal`, made on first use (a module __getattr__, PEP 562)."""
    if name not in ("engine", "SessionLocal"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if not _built:
        from .sessions import make_session_factory

        settings = environment_settings()
        engine = create_engine_from(settings)
        _built.update(engine=engine, SessionLocal=make_session_factory(engine, settings.session_strategy))
    return _built[name]


# Execution option a write transaction sets before its first statement (see begin_write).
_WRITE_INTENT = "legacy_app_write"

CONNECT_TIMEOUT_SECONDS = 5

# libpq parameters (psycopg and psycopg2 alike) that end an established connection whose peer went
# silent: keepalive probes while it is idle (dead after 10 + 3 × 5 s), and for data sent but never
# acknowledged, tcp_user_timeout (milliseconds). connection_deadline covers a peer that acknowledges
# but never answers.
POSTGRESQL_TCP_PARAMETERS = {
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}

SQLITE_PRAGMAS = (
    "foreign_keys=ON",  # off by default in SQLite, per connection
    "journal_mode=WAL",  # readers do not block the writer, nor it them
    "busy_timeout=5000",  # wait up to 5 s for the write lock instead of failing at once
    "synchronous=NORMAL",  # safe with WAL: a power cut can lose the last commits, never corrupt
)


def for_maintenance(settings: Settings) -> Settings:
    """The settings of migrations and seeding: no statement timeout. It bounds a request's
    statements, not a migration's: an index built on a large table may rightly take minutes, and on
    MariaDB, whose DDL is not transactional, a migration cut half-way stays half-applied."""
    return settings.with_overrides(statement_timeout=0)


def create_engine_from(settings: Settings) -> Engine:
    url = make_url(compat.driver_url(settings.database_url))
    kwargs: Dict[str, Any] = {}
    # On PostgreSQL with a statement timeout, connection_deadline's checkout ping (within a deadline)
    # replaces SQLAlchemy's pre-ping.
    deadlines = url.get_backend_name() == "postgresql" and settings.statement_timeout > 0
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
        if is_memory_sqlite(url):
            kwargs["poolclass"] = StaticPool  # one shared connection, or each sees its own empty DB
        else:
            kwargs.update(poolclass=QueuePool, **_pool_kwargs(settings))
    else:
        # pre-ping: a connection the server dropped (restart, failover) is replaced on checkout;
        # connect_timeout: an unreachable server is a prompt error (503), not a hang.
        connect_args: Dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        if url.drivername == "postgresql+psycopg" and not settings.prepared_statements:
            connect_args["prepare_threshold"] = None  # psycopg2 never prepares server-side
        if url.get_backend_name() == "postgresql":
            connect_args.update(POSTGRESQL_TCP_PARAMETERS)
            options = _startup_options(url, settings)
            if options:
                connect_args["options"] = options
        if url.get_backend_name() == "mysql" and settings.statement_timeout > 0:
            # PyMySQL's socket timeouts: a partition is a lost connection (503) after this long.
            answer = settings.statement_timeout + connection_deadline.ANSWER_GRACE_SECONDS
            connect_args.update(read_timeout=answer, write_timeout=answer)
        kwargs.update(pool_pre_ping=not deadlines, connect_args=connect_args, **_pool_kwargs(settings))
        if url.get_backend_name() == "mysql":
            kwargs["pool_recycle"] = 3600  # MariaDB drops connections idle for wait_timeout
            url = url.update_query_dict({"charset": "utf8mb4"}) if "charset" not in url.query else url
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    elif deadlines:
        connection_deadline.install(engine, settings.statement_timeout)
    elif url.get_backend_name() == "mysql" and settings.statement_timeout > 0:
        _limit_mariadb_statements(engine, settings.statement_timeout)
    _forget_connections_after_fork(engine)
    return engine


def is_memory_sqlite(url: Union[str, URL]) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def begin_write(db: Session) -> None:
    """Start the session's transaction as a write transaction.

    On SQLite this emits BEGIN IMMEDIATE, so a transaction that reads before it writes waits
    for the write lock (busy_timeout) up front instead of failing with "database is locked"
    when it tries to upgrade. Other databases ignore the option.
    """
    db.connection(execution_options={_WRITE_INTENT: True})


def _forget_connections_after_fork(engine: Engine) -> None:
    """A forked child starts with an empty pool instead of sharing its parent's sockets.

    Two processes on one connection interleave their protocol messages: wrong results, then errors.
    uvicorn's workers are spawned, not forked, but gunicorn --preload and multiprocessing fork.
    close=False: the child must not close sockets the parent still uses.
    """
    reference = weakref.ref(engine)  # the hook must not keep every engine alive

    def after_fork_in_child() -> None:
        forked = reference()
        if forked is not None:
            forked.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork_in_child)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, rather than pysqlite deciding
        # (pysqlite begins lazily before DML only, and never as IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE_INTENT, False)
        # Straight to the driver: this runs for every transaction, and SQLAlchemy's statement
        # machinery (exec_driver_sql) costs a measurable share of a read (docs/performance.md).
        connection.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _startup_options(url: URL, settings: Settings) -> str:
    """libpq's `options`: the server-side backstops idle_in_transaction_session_timeout and
    statement_timeout (each left out at 0: the server's setting holds), then the URL's own
    ?options=..., which win.

    Startup options rather than a SET on connect: they hold for the connection's whole life and
    cost no round trip. PgBouncer (1.18) refuses the `options` parameter: there, turn these off
    and set the timeouts on the server (docs/deployment.md).
    """
    parts = []
    for name, seconds in (("idle_in_transaction_session_timeout", settings.idle_in_transaction_timeout),
                          ("statement_timeout", settings.statement_timeout)):
        if seconds > 0:
            parts.append(f"-c {name}={max(1, round(seconds * 1000))}")
    own = url.query.get("options", "")
    parts.append(own if isinstance(own, str) else " ".join(own))  # last: the URL's own settings win
    return " ".join(part for part in parts if part).strip()


def _limit_mariadb_statements(engine: Engine, seconds: float) -> None:
    """MariaDB ends a statement running longer than `seconds` (max_statement_time; MySQL has no such variable)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if "mariadb" not in dbapi_connection.get_server_info().lower():
            return
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET SESSION max_statement_time = {float(seconds)!r}")
        cursor.close()


def _pool_kwargs(settings: Settings) -> Dict[str, Any]:
    return {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
    }
