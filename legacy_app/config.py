"""One Settings object, read from the environment in one place."""
import os
import functools
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Dict, Mapping, Optional

ASGI_MIDDLEWARE = "asgi-middleware"
HTTP_MIDDLEWARE = "http-middleware"
YIELD_DEPENDENCY = "yield-dependency"
STRATEGIES = (ASGI_MIDDLEWARE, HTTP_MIDDLEWARE, YIELD_DEPENDENCY)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS = ("text", "json")
# PostgreSQL keeps idle_in_transaction_session_timeout and statement_timeout in milliseconds, as 32-bit integers.
MAX_IDLE_IN_TRANSACTION_SECONDS = 2_147_483

# OWASP Password Storage Cheat Sheet: argon2id with at least 19 MiB and 2 iterations.
ARGON2_MIN_MEMORY_KIB = 19 * 1024
ARGON2_MIN_TIME_COST = 2

# The cheapest hashing the service accepts, as environment variables: for the probe servers,
# fault drills, benchmarks and tests, whose subject is not the hash.
FLOOR_HASHING_ENV = {
    "ARGON2_TIME_COST": str(ARGON2_MIN_TIME_COST),
    "ARGON2_MEMORY_KIB": str(ARGON2_MIN_MEMORY_KIB),
    "ARGON2_PARALLELISM": "1",
}

class ConfigError(ValueError):
    """A setting has a value the service cannot start with."""


class CommandFailed(Exception):
    """A command cannot do what was asked; the command line prints the message as one line and exits 1."""


def setting(env: str, default: Any, meaning: str, shown: str = "") -> Any:
    """A Settings field: its environment variable, default and meaning, written here only.

    Settings.from_env and the table in docs/configuration.md read these (`python -m tests.support.settings_table`
    rewrites the table; tests/test_config.py checks it).
    `shown` replaces the default in that table where the default is worked out at start.
    """
    return field(default=default, metadata={"env": env, "meaning": meaning, "shown": shown})


@dataclass(frozen=True)
class Settings:
    database_url: str = setting(
        "DATABASE_URL", "sqlite:///./sql_app.db",
        "SQLAlchemy URL: `sqlite:///path`, `postgresql+psycopg://user@host/db`, `mysql+pymysql://user@host/db`; "
        "anything else SQLAlchemy or the installed drivers cannot open (`postgres://`, `mysql://`, `mariadb://`) "
        "is refused at start-up with the form to use instead ([databases](databases.md))",
    )
    session_strategy: str = setting(
        "SESSION_STRATEGY", ASGI_MIDDLEWARE, "`asgi-middleware`, `http-middleware` or `yield-dependency` ([session strategies](session-strategies.md))",
    )
    pool_size: int = setting("DB_POOL_SIZE", 5, "connections kept in the pool (SQLite files and servers)")
    max_overflow: int = setting("DB_MAX_OVERFLOW", 10, "extra connections allowed beyond the pool size")
    pool_timeout: float = setting(
        "DB_POOL_TIMEOUT", 10.0, "seconds a request waits for a free connection before it is answered 503",
    )
    # argon2-cffi's default profile (RFC 9106 "low memory"): 64 MiB, 3 passes, 4 lanes.
    argon2_time_cost: int = setting("ARGON2_TIME_COST", 3, f"argon2id passes (at least {ARGON2_MIN_TIME_COST})")
    argon2_memory_kib: int = setting(
        "ARGON2_MEMORY_KIB", 64 * 1024, f"argon2id memory in KiB (at least {ARGON2_MIN_MEMORY_KIB}, OWASP's floor)",
    )
    argon2_parallelism: int = setting("ARGON2_PARALLELISM", 4, "argon2id parallelism (threads per hash)")
    hashing_threads: int = setting(
        "HASHING_THREADS", 0,
        "passwords hashed at once per worker (the hashing lane, [failure behaviour](failure-behaviour.md)); `0`: one per CPU the "
        "process may use, at most as many as 256 MiB holds at `ARGON2_MEMORY_KIB` (2 on a 2-CPU machine at the "
        "defaults). Worst-case hashing memory per worker: this × `ARGON2_MEMORY_KIB`",
    )
    migrate_on_start: bool = setting(
        "MIGRATE_ON_START", True,
        "upgrade the schema to the newest migration at start-up (adopting a database `create_all()` made)",
    )
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES", 64 * 1024,  # the largest valid request is about 10 KB
        "larger request bodies are answered 413 before they are parsed (at least 1024)",
    )
    max_items_per_user: int = setting(
        "MAX_ITEMS_PER_USER", 1000,
        "items one user may hold; one more is a 409 and stores nothing (at least 1). It bounds "
        "`GET /users/{id}` ([the largest responses](api.md))",
    )
    # psycopg 3 prepares a statement run 5 times on a connection; PgBouncer < 1.21 in transaction
    # mode hands the next transaction another server connection, where it does not exist.
    prepared_statements: bool = setting(
        "DB_PREPARED_STATEMENTS", True,
        "`false` stops psycopg 3 preparing statements: needed behind PgBouncer in transaction mode ([deployment](deployment.md))",
    )
    log_level: str = setting(
        "LOG_LEVEL", "info", "`debug`, `info`, `warning`, `error` or `critical`; at `info` every request is logged",
    )
    log_format: str = setting(
        "LOG_FORMAT", "text",
        "`json`: every line `serve` logs is one JSON object, request lines with their fields as keys ([observability](observability.md))",
    )
    metrics: bool = setting("METRICS", True, "`false` turns off `GET /metrics` and every metric hook ([observability](observability.md))")
    idle_in_transaction_timeout: float = setting(
        "DB_IDLE_IN_TRANSACTION_TIMEOUT", 60.0,
        "seconds PostgreSQL lets a connection sit idle inside a transaction before it ends it (a leaked "
        "transaction cannot hold its locks and its connection for ever); `0` leaves the server's own setting "
        "(needed behind PgBouncer)",
    )
    statement_timeout: float = setting(
        "DB_STATEMENT_TIMEOUT", 10.0,
        "seconds a statement may run: PostgreSQL's `statement_timeout`, MariaDB's `max_statement_time`; a "
        "connection that gives no answer for this plus 1 s is cut by the service ([failure behaviour](failure-behaviour.md)); "
        "`0` leaves the server's setting and cuts nothing (needed behind PgBouncer). Not applied to `db`, `seed` "
        "and the migration at start-up, whose statements may rightly run longer",
    )
    otlp_endpoint: str = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "",
        "OpenTelemetry's standard variable: set, request and SQL spans are exported there over OTLP/HTTP "
        "(needs the `otel` extra: `pip install '.[service,otel]'`; [traces](observability.md))",
    )
    max_connections: int = setting(
        "MAX_CONNECTIONS", 0,
        "connections one `serve` worker holds at once (uvicorn's limit_concurrency); beyond it a request is "
        "answered 503 at once. `0`: the file limit (which `serve` raises to the hard limit) less the pool "
        "(`DB_POOL_SIZE` + `DB_MAX_OVERFLOW`) and 64 for the process itself ([deployment](deployment.md))",
        shown="from the file limit",
    )
    header_timeout: float = setting(
        "HEADER_TIMEOUT", 10.0,
        "seconds a connection under `serve` has to send a complete request head, from when it opened or began "
        "its next request; then it is closed ([deployment](deployment.md))",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "log_level", self.log_level.lower())  # LOG_LEVEL=INFO is fine too
        object.__setattr__(self, "log_format", self.log_format.lower())
        if self.session_strategy not in STRATEGIES:
            raise ConfigError(
                f"SESSION_STRATEGY must be one of {', '.join(STRATEGIES)}; "
                f"got {self.session_strategy!r}"
            )
        _require(self.pool_size >= 1, "DB_POOL_SIZE", "an integer >= 1", self.pool_size)
        _require(self.max_overflow >= 0, "DB_MAX_OVERFLOW", "an integer >= 0", self.max_overflow)
        _require(self.pool_timeout > 0, "DB_POOL_TIMEOUT", "a number of seconds > 0", self.pool_timeout)
        _require(
            self.argon2_time_cost >= ARGON2_MIN_TIME_COST,
            "ARGON2_TIME_COST", f"an integer >= {ARGON2_MIN_TIME_COST}", self.argon2_time_cost,
        )
        _require(
            self.argon2_memory_kib >= ARGON2_MIN_MEMORY_KIB,
            "ARGON2_MEMORY_KIB", f"an integer >= {ARGON2_MIN_MEMORY_KIB}", self.argon2_memory_kib,
        )
        _require(self.argon2_parallelism >= 1, "ARGON2_PARALLELISM", "an integer >= 1", self.argon2_parallelism)
        _require(self.max_body_bytes >= 1024, "MAX_BODY_BYTES", "an integer >= 1024", self.max_body_bytes)
        _require(self.max_items_per_user >= 1, "MAX_ITEMS_PER_USER", "an integer >= 1", self.max_items_per_user)
        _require(self.log_level in LOG_LEVELS, "LOG_LEVEL", f"one of {', '.join(LOG_LEVELS)}", self.log_level)
        _require(self.log_format in LOG_FORMATS, "LOG_FORMAT", f"one of {', '.join(LOG_FORMATS)}", self.log_format)
        _require(
            0 <= self.idle_in_transaction_timeout <= MAX_IDLE_IN_TRANSACTION_SECONDS,
            "DB_IDLE_IN_TRANSACTION_TIMEOUT", f"a number of seconds from 0 (off) to {MAX_IDLE_IN_TRANSACTION_SECONDS}",
            self.idle_in_transaction_timeout,
        )
        _require(self.max_connections >= 0, "MAX_CONNECTIONS", "an integer >= 0 (0: sized from the file limit)", self.max_connections)
        _require(self.header_timeout > 0, "HEADER_TIMEOUT", "a number of seconds > 0", self.header_timeout)
        _require(
            0 <= self.statement_timeout <= MAX_IDLE_IN_TRANSACTION_SECONDS,
            "DB_STATEMENT_TIMEOUT", f"a number of seconds from 0 (off) to {MAX_IDLE_IN_TRANSACTION_SECONDS}",
            self.statement_timeout,
        )
        _require(self.hashing_threads >= 0, "HASHING_THREADS", "an integer >= 0 (0: from the CPU count)", self.hashing_threads)
        check_database_url(self.database_url)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        environ = os.environ if environ is None else environ
        values: Dict[str, object] = {}
        for item in fields(cls):
            variable = item.metadata["env"]
            raw = environ.get(variable)
            if raw is None or raw.strip() == "":
                continue
            parse = _PARSERS.get(item.type, str)
            try:
                values[item.name] = parse(raw.strip())
            except ValueError:
                raise ConfigError(f"{variable} must be {_DESCRIPTIONS[item.type]}; got {raw!r}") from None
        return cls(**values)

    def with_overrides(self, **changes: object) -> "Settings":
        return replace(self, **changes)


@functools.lru_cache(maxsize=None)
def environment_settings() -> Settings:
    """The process's settings from its environment, read once: for callers that bring none (the
    tutorial's `database.engine`, and crud calls made as the tutorial makes them)."""
    return Settings.from_env()


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_PARSERS: Dict[object, Callable[[str], object]] = {int: int, float: float, bool: _parse_bool, str: str}
_DESCRIPTIONS = {
    int: "an integer",
    float: "a number",
    bool: "one of true, false, 1, 0, yes, no, on, off",
    str: "text",
}


# What the message for a bad DATABASE_URL offers instead; the drivers the service installs.
ACCEPTED_URLS = (
    "sqlite:///path/to/file.db",
    "postgresql+psycopg://user:password@host:5432/dbname",
    "mysql+pymysql://user:password@host:3306/dbname",
)
_SUGGESTED_DRIVER = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
                     "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql", "sqlite": "sqlite"}


def check_database_url(url: str, name: str = "DATABASE_URL") -> None:
    """Raise ConfigError, in one line naming `name`, unless SQLAlchemy can build an engine for `url`.

    Every command that opens the database gets its URL through here (Settings), so a typo is one
    clear line at start-up instead of a traceback from deep inside create_engine().
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from . import compat

    accepted = f"accepted forms: {', '.join(ACCEPTED_URLS)}"
    try:
        parsed = make_url(compat.driver_url(url))
    except ArgumentError:
        raise ConfigError(f"{name} is not a database URL: {_masked(url)!r}; {accepted}") from None
    except ValueError:  # make_url's int(port)
        raise ConfigError(f"{name} has a port that is not a number: {_masked(url)!r}; {accepted}") from None
    scheme = parsed.drivername
    backend = parsed.get_backend_name()
    suggestion = _SUGGESTED_DRIVER.get(backend)
    instead = f"use {parsed.set(drivername=suggestion).render_as_string(hide_password=True)}; " if suggestion else ""
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(f"{name} names {scheme!r}, which is not a SQLAlchemy dialect: {instead}{accepted}") from None
    if getattr(dialect, "is_async", False):  # asyncpg, aiosqlite, ...: the service's engine is synchronous
        raise ConfigError(
            f"{name} names an asyncio driver ({scheme}://), which the service cannot use: {instead}{accepted}"
        )
    try:
        compat.import_dbapi(dialect)
    except ImportError as error:
        raise ConfigError(
            f"{name} needs the {dialect.driver} driver ({scheme}://), which is not installed "
            f"({str(error).splitlines()[0]}): "
            f"{instead}{accepted}"
        ) from None


def _masked(raw: str) -> str:
    """An unparseable URL as it may be shown: whatever precedes an @ may be a password."""
    return f"***@{raw.rsplit('@', 1)[1]}" if "@" in raw else raw


def _require(ok: bool, variable: str, expected: str, got: object) -> None:
    if not ok:
        raise ConfigError(f"{variable} must be {expected}; got {got!r}")
