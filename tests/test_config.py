"""Settings come from the environment; a bad value stops start-up naming the variable."""
import re
import subprocess
import sys
from dataclasses import fields

import pytest

from legacy_app.config import STRATEGIES, ConfigError, Settings

from .support.live_server import REPO_ROOT, LiveServer
from .support import settings_table


def test_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///./sql_app.db"
    assert settings.session_strategy == "asgi-middleware"
    assert (settings.pool_size, settings.max_overflow, settings.pool_timeout) == (5, 10, 10.0)


def test_values_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@h/db",
            "SESSION_STRATEGY": "yield-dependency",
            "DB_POOL_SIZE": "7",
            "DB_MAX_OVERFLOW": "0",
            "DB_POOL_TIMEOUT": "2.5",
            "ARGON2_MEMORY_KIB": "32768",
            "MIGRATE_ON_START": "false",
            "DB_PREPARED_STATEMENTS": "off",
            "LOG_LEVEL": "WARNING",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.session_strategy == "yield-dependency"
    assert (settings.pool_size, settings.max_overflow, settings.pool_timeout) == (7, 0, 2.5)
    assert settings.argon2_memory_kib == 32768
    assert settings.migrate_on_start is False
    assert settings.prepared_statements is False
    assert settings.log_level == "warning"


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"SESSION_STRATEGY": "middleware"}, "SESSION_STRATEGY must be one of " + ", ".join(STRATEGIES)),
        ({"DB_POOL_SIZE": "five"}, "DB_POOL_SIZE must be an integer; got 'five'"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE must be an integer >= 1"),
        ({"DB_MAX_OVERFLOW": "-1"}, "DB_MAX_OVERFLOW must be an integer >= 0"),
        ({"DB_POOL_TIMEOUT": "soon"}, "DB_POOL_TIMEOUT must be a number"),
        ({"DB_POOL_TIMEOUT": "0"}, "DB_POOL_TIMEOUT must be a number of seconds > 0"),
        ({"ARGON2_MEMORY_KIB": "1024"}, "ARGON2_MEMORY_KIB must be an integer >= 19456"),
        ({"ARGON2_TIME_COST": "1"}, "ARGON2_TIME_COST must be an integer >= 2"),
        ({"MIGRATE_ON_START": "maybe"}, "MIGRATE_ON_START must be one of true, false"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be one of critical, error, warning, info, debug; got 'verbose'"),
        ({"DB_PREPARED_STATEMENTS": "sometimes"}, "DB_PREPARED_STATEMENTS must be one of true, false"),
    ],
)
def test_an_invalid_value_names_the_variable_and_what_is_allowed(environ, message):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(environ)
    assert message in str(raised.value)


ACCEPTED_FORMS = (
    "accepted forms: sqlite:///path/to/file.db, postgresql+psycopg://user:password@host:5432/dbname, "
    "mysql+pymysql://user:password@host:3306/dbname"
)


@pytest.mark.parametrize(
    "url, message",
    [
        ("foo", "DATABASE_URL is not a database URL: 'foo'; "),
        ("postgres:s3cret@db.example", "DATABASE_URL is not a database URL: '***@db.example'; "),
        ("mysql+pymysql://app:s3cret@db.example:port/app", "DATABASE_URL has a port that is not a number: '***@db.example:port/app'; "),
        ("postgres://app:s3cret@db.example/app",
         "DATABASE_URL names 'postgres', which is not a SQLAlchemy dialect: use postgresql+psycopg://app:***@db.example/app; "),
        ("mysql://app@db.example/app",
         "DATABASE_URL needs the mysqldb driver (mysql://), which is not installed (No module named 'MySQLdb'): "
         "use mysql+pymysql://app@db.example/app; "),
        ("mariadb://app@db.example/app",
         "DATABASE_URL needs the mysqldb driver (mariadb://), which is not installed (No module named 'MySQLdb'): "
         "use mysql+pymysql://app@db.example/app; "),
        ("postgresql+pg8000://app@db.example/app",
         "DATABASE_URL needs the pg8000 driver (postgresql+pg8000://), which is not installed "
         "(No module named 'pg8000'): use postgresql+psycopg://app@db.example/app; "),
        ("postgresql+asyncpg://app@db.example/app",  # installed or not
         "DATABASE_URL names an asyncio driver (postgresql+asyncpg://), which the service cannot use: "
         "use postgresql+psycopg://app@db.example/app; "),
        ("sqlite+aiosqlite:///app.db",
         "DATABASE_URL names an asyncio driver (sqlite+aiosqlite://), which the service cannot use: "),
        ("redis://db.example/0", "DATABASE_URL names 'redis', which is not a SQLAlchemy dialect: accepted forms"),
    ],
)
def test_a_bad_database_url_says_what_is_wrong_and_the_accepted_forms_in_one_line(url, message):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"DATABASE_URL": url})
    error = str(raised.value)
    assert error.startswith(message) and error.endswith(ACCEPTED_FORMS) and "\n" not in error
    assert "s3cret" not in error


@pytest.mark.parametrize(
    "url", ["sqlite:///./sql_app.db", "sqlite://", "postgresql+psycopg://u:p@h:5432/db", "postgresql://u@h/db",
            "mysql+pymysql://u@h/db?charset=utf8mb4"],
)
def test_the_documented_database_urls_are_accepted(url):
    assert Settings.from_env({"DATABASE_URL": url}).database_url == url


@pytest.mark.server
def test_serving_with_an_invalid_strategy_exits_with_the_message_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-c", "import legacy_app.main"],
        cwd=str(REPO_ROOT),
        env={"SESSION_STRATEGY": "bogus", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "SESSION_STRATEGY must be one of asgi-middleware, http-middleware, yield-dependency" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.server
def test_serve_with_the_database_down_exits_1_in_one_line_at_the_refused_connection():
    # Nothing listens on port 9: the first connection is refused, and serve gives up on it rather than
    # wait or retry (were it to hang, subprocess.run's timeout ends the test).
    result = subprocess.run(
        [sys.executable, "-m", "legacy_app", "serve", "--port", "9"],
        cwd=str(REPO_ROOT),
        env={"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("legacy_app serve: database error:")
    assert "Connection refused" in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


@pytest.mark.live
def test_serve_without_migrate_on_start_serves_with_the_database_down_and_is_not_ready(tmp_path):
    import requests

    env = {"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere", "MIGRATE_ON_START": "false"}
    with LiveServer(env, tmp_path / "serve.log", app="cli") as server:
        assert requests.get(f"{server.url}/health/ready", timeout=30).status_code == 503
    assert "legacy_app: warning: connection budget not checked: " in server.log()
    assert "Traceback" not in server.log()


def test_observability_settings_defaults_and_values():
    defaults = Settings.from_env({})
    assert (defaults.metrics, defaults.log_format, defaults.idle_in_transaction_timeout, defaults.otlp_endpoint) == (
        True, "text", 60.0, "")
    settings = Settings.from_env({
        "METRICS": "false", "LOG_FORMAT": "JSON", "DB_IDLE_IN_TRANSACTION_TIMEOUT": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    })
    assert (settings.metrics, settings.log_format, settings.idle_in_transaction_timeout, settings.otlp_endpoint) == (
        False, "json", 0.0, "http://127.0.0.1:4318")


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"METRICS": "sometimes"}, "METRICS must be one of true, false, 1, 0, yes, no, on, off; got 'sometimes'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of text, json; got 'xml'"),
        ({"DB_IDLE_IN_TRANSACTION_TIMEOUT": "-1"}, "DB_IDLE_IN_TRANSACTION_TIMEOUT must be a number of seconds from 0 (off) to 2147483; got -1.0"),
        ({"DB_IDLE_IN_TRANSACTION_TIMEOUT": "nan"}, "DB_IDLE_IN_TRANSACTION_TIMEOUT must be a number of seconds from 0 (off) to 2147483"),
        ({"DB_IDLE_IN_TRANSACTION_TIMEOUT": "a minute"}, "DB_IDLE_IN_TRANSACTION_TIMEOUT must be a number; got 'a minute'"),
    ],
)
def test_an_invalid_observability_setting_names_the_variable(environ, message):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(environ)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_every_setting_is_documented_as_declared_in_settings_and_none_besides():
    """docs/configuration.md's table shows each setting's variable, default and meaning as Settings
    declares them, in its order; its other rows are variables Settings does not read (HOST, STACK)."""
    rows = [line for line in settings_table.DOC.read_text().splitlines() if line.startswith("| `")]
    expected = settings_table.settings_rows()
    assert rows[:len(expected)] == expected, "docs/configuration.md is out of date: python -m tests.support.settings_table"
    variables = {item.metadata["env"] for item in fields(Settings)}
    for row in rows[len(expected):]:
        assert not set(re.findall(r"`([A-Z_]+)`", row.split("|")[1])) & variables, row


def test_each_setting_is_read_from_its_own_environment_variable():
    variables = [item.metadata["env"] for item in fields(Settings)]
    assert len(set(variables)) == len(variables)
    for item in fields(Settings):
        if item.type is int and item.name not in ("argon2_time_cost", "argon2_memory_kib"):
            assert getattr(Settings.from_env({item.metadata["env"]: "1234"}), item.name) == 1234, item.name
