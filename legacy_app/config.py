"""One Settings object, read from the environment in one place."""
import os
from dataclasses import dataclass, fields, replace
from typing import Callable, Dict, Mapping, Optional, TypeVar

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

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting has a value the service cannot start with."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./sql_app.db"
    session_strategy: str = ASGI_MIDDLEWARE
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 10.0
    # argon2-cffi's default profile (RFC 9106 "low memory"): 64 MiB, 3 passes, 4 lanes.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4
    migrate_on_start: bool = True
    max_body_bytes: int = 64 * 1024  # the largest valid request is about 10 KB
    # Bounds GET /users/{id} (a user comes with all its items): README, "The largest responses".
    max_items_per_user: int = 1000
    # psycopg 3 prepares a statement run 5 times on a connection; PgBouncer < 1.21 in transaction
    # mode hands the next transaction another server connection, where it does not exist.
    prepared_statements: bool = True
    log_level: str = "info"
    log_format: str = "text"
    metrics: bool = True
    # PostgreSQL ends a session left idle inside a transaction this long: a leaked transaction cannot
    # hold its locks and its connection for ever. 0 leaves the server's own setting.
    idle_in_transaction_timeout: float = 60.0
    # The server ends a statement running this long, and the client cuts a connection that gives no
    # answer for about as long (a silent partition). 0 leaves the server's setting and cuts nothing.
    statement_timeout: float = 10.0
    # Password hashes computed at once per worker (hashing_lane); 0 sizes it from the CPUs and memory.
    hashing_threads: int = 0
    # OpenTelemetry's standard variable: set, the service exports traces there (the `otel` extra).
    otlp_endpoint: str = ""
    # Connections one `serve` worker holds at most (uvicorn's limit_concurrency: beyond it, 503 at
    # once); 0: sized from the file limit serve raises at start (legacy_app/connections.py).
    max_connections: int = 0
    # Seconds a connection has to send a complete request head; then `serve` closes it.
    header_timeout: float = 10.0

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
        for field in fields(cls):
            variable = ENV_NAMES[field.name]
            raw = environ.get(variable)
            if raw is None or raw.strip() == "":
                continue
            parse = _PARSERS.get(field.type, str)
            try:
                values[field.name] = parse(raw.strip())
            except ValueError:
                raise ConfigError(f"{variable} must be {_DESCRIPTIONS[field.type]}; got {raw!r}") from None
        return cls(**values)

    def with_overrides(self, **changes: object) -> "Settings":
        return replace(self, **changes)


ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "session_strategy": "SESSION_STRATEGY",
    "pool_size": "DB_POOL_SIZE",
    "max_overflow": "DB_MAX_OVERFLOW",
    "pool_timeout": "DB_POOL_TIMEOUT",
    "argon2_time_cost": "ARGON2_TIME_COST",
    "argon2_memory_kib": "ARGON2_MEMORY_KIB",
    "argon2_parallelism": "ARGON2_PARALLELISM",
    "migrate_on_start": "MIGRATE_ON_START",
    "max_body_bytes": "MAX_BODY_BYTES",
    "prepared_statements": "DB_PREPARED_STATEMENTS",
    "log_level": "LOG_LEVEL",
    "log_format": "LOG_FORMAT",
    "metrics": "METRICS",
    "idle_in_transaction_timeout": "DB_IDLE_IN_TRANSACTION_TIMEOUT",
    "statement_timeout": "DB_STATEMENT_TIMEOUT",
    "hashing_threads": "HASHING_THREADS",
    "otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "max_items_per_user": "MAX_ITEMS_PER_USER",
    "max_connections": "MAX_CONNECTIONS",
    "header_timeout": "HEADER_TIMEOUT",
}


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
