"""The command line: a bad DATABASE_URL or address is one line and exit 1, serve's HOST/PORT and
--help defaults, `db current` without creating anything, `db revision` writing the next migration."""
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import requests
from sqlalchemy import text

from legacy_app import cli

from legacy_app.db import migrate
from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.server.process import PACKAGE_PARENT

from .support.live_server import LiveServer

ACCEPTED = "accepted forms: sqlite:///path/to/file.db, postgresql+psycopg://user:password@host:5432/dbname, " \
           "mysql+pymysql://user:password@host:3306/dbname"


def run(args: List[str], env: Dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m legacy_app ARGS` (or any module with ["-m", ...]) with only `env` and a PATH."""
    command = args if args[0] == "-m" else ["-m", "legacy_app", *args]
    return subprocess.run(
        [sys.executable, *command], cwd=str(PACKAGE_PARENT), capture_output=True, text=True, timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PACKAGE_PARENT), **env},
    )


def assert_one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- a bad DATABASE_URL, whichever command opens the database -------------------------------------


@pytest.mark.parametrize(
    "command, url, expected",
    [
        (["serve"], "foo", "DATABASE_URL is not a database URL: 'foo'"),
        (["db", "current"], "postgres://app:s3cret@db.example/app",
         "DATABASE_URL names 'postgres', which is not a SQLAlchemy dialect: use postgresql+psycopg://app:***@db.example/app"),
        (["db", "upgrade"], "mysql://root@db.example/app",
         "DATABASE_URL needs the mysqldb driver (mysql://), which is not installed (No module named 'MySQLdb'): "
         "use mysql+pymysql://root@db.example/app"),
        (["seed", "--users", "1"], "mariadb://root@db.example/app",
         "DATABASE_URL needs the mysqldb driver (mariadb://), which is not installed (No module named 'MySQLdb'): "
         "use mysql+pymysql://root@db.example/app"),
        (["-m", "uvicorn", "legacy_app.main:app", "--port", "0"], "postgres://app:s3cret@db.example/app",
         "DATABASE_URL names 'postgres', which is not a SQLAlchemy dialect: use postgresql+psycopg://"),
    ],
)
@pytest.mark.server
def test_a_bad_database_url_is_one_line_naming_it_with_the_accepted_forms_and_exit_1(command, url, expected):
    result = run(command, {"DATABASE_URL": url})
    assert_one_line(result, "legacy_app: configuration error: " + expected, ACCEPTED)
    assert "s3cret" not in result.stderr


@pytest.mark.server
def test_compare_checks_its_database_url_the_same_way():
    result = run(["compare", "--database-url", "postgres://probe@db.example/app"], {})
    assert_one_line(
        result, "legacy_app: configuration error: --database-url names 'postgres', which is not a SQLAlchemy dialect: "
        "use postgresql+psycopg://probe@db.example/app", ACCEPTED,
    )


@pytest.mark.server
def test_other_configuration_errors_exit_1_too_and_a_wrong_command_line_2():
    assert_one_line(run(["db", "current"], {"DB_POOL_SIZE": "none"}), "DB_POOL_SIZE must be an integer; got 'none'")
    assert run(["serve", "--port", "http"], {}).returncode == 2  # argparse: the command line itself is wrong


# --- serve: where it listens, and a port already in use -------------------------------------------


def serve_until_healthy(tmp_path: Path, env: Dict[str, str], address_in_environment: bool = False) -> LiveServer:
    """`python -m legacy_app serve` until /health answers 200, then stopped by SIGTERM with exit 0."""
    with LiveServer({"DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", **env}, tmp_path / "serve.log", app="cli",
                    address_in_environment=address_in_environment) as server:
        assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
    assert server.process.returncode == 0, server.log()
    return server


@pytest.mark.live
def test_serve_listens_on_the_host_and_port_of_the_environment(tmp_path):
    server = serve_until_healthy(tmp_path, {}, address_in_environment=True)  # HOST=127.0.0.1, PORT=server.port
    assert f"127.0.0.1:{server.port}" in server.log()


@pytest.mark.live
def test_serve_flags_override_host_and_port_of_the_environment(tmp_path):
    with socket.socket() as taken:  # PORT names a port in use: serving there would fail
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        serve_until_healthy(tmp_path, {"HOST": "192.0.2.1", "PORT": str(taken.getsockname()[1])})  # --host/--port win


@pytest.mark.server
def test_an_invalid_port_in_the_environment_is_one_line():
    assert_one_line(run(["serve"], {"PORT": "eighty"}), "PORT must be an integer from 1 to 65535; got 'eighty'")


@pytest.mark.server
def test_a_port_in_use_is_one_line_before_the_database_is_touched(tmp_path):
    database = tmp_path / "never.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["serve", "--port", str(port)], {"DATABASE_URL": f"sqlite:///{database}"})
    assert_one_line(result, f"legacy_app serve: cannot listen on 127.0.0.1:{port}: the port is already in use")
    assert not database.exists()  # nothing migrated, nothing created


# --- --help ----------------------------------------------------------------------------------------


def help_text(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main([*args, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_every_help_shows_the_defaults(capsys):
    serve = help_text(capsys, "serve")
    for default in ("(default: HOST, else 127.0.0.1)", "(default: PORT, else 8000)", "(default: 1)",
                    "(default: LOG_LEVEL, else info)"):
        assert default in serve
    assert "(default: head)" in help_text(capsys, "db", "upgrade")
    seed = help_text(capsys, "seed")
    assert "(default: 0)" in seed and "(default: seed-password)" in seed
    compare = help_text(capsys, "compare")
    assert "(default: 300)" in compare and "(default: 60)" in compare and "(default: a temporary SQLite file)" in compare


@pytest.mark.parametrize("action", ["upgrade", "downgrade", "stamp"])
def test_db_help_lists_the_revisions_it_accepts(capsys, action):
    accepted = f"head, base, or one of this code's revisions: {', '.join(migrate.revisions())}"
    assert migrate.revisions() == ["0001", "0002", "0003"]
    assert accepted in help_text(capsys, "db", action)
    assert accepted in help_text(capsys, "db")


# --- db current ------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [["current"], ["check"], ["stamp", "0001"], ["downgrade", "base"]])
@pytest.mark.server
def test_db_current_on_a_missing_sqlite_file_says_so_exits_1_and_creates_nothing(tmp_path, action):
    """Only `db upgrade` creates a database."""
    database = tmp_path / "missing.db"
    result = run(["db", *action], {"DATABASE_URL": f"sqlite:///{database}"})
    assert_one_line(result, f"legacy_app db: no database at {database}: the SQLite file does not exist")
    assert not database.exists()


def db(capsys, monkeypatch, url: str, *args: str) -> str:
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["db", *args]) == 0
    return capsys.readouterr().out.strip()


@pytest.fixture
def restored_database_url(database_url):
    """A database the test may downgrade; left at head for the other tests."""
    yield database_url
    engine = create_engine_from(Settings(database_url=database_url))
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        migrate.upgrade(engine)  # adopts what is there, whatever revision the test left, and migrates the rest
    finally:
        engine.dispose()


def test_db_current_says_whether_the_database_is_at_head(capsys, monkeypatch, restored_database_url):
    url = restored_database_url
    db(capsys, monkeypatch, url, "upgrade")
    assert db(capsys, monkeypatch, url, "current") == "0003 (head)"
    db(capsys, monkeypatch, url, "downgrade", "0001")
    assert db(capsys, monkeypatch, url, "current") == "0001 (behind head 0003: run db upgrade)"
    db(capsys, monkeypatch, url, "downgrade", "base")
    assert db(capsys, monkeypatch, url, "current") == "none (no migration applied; head is 0003: run db upgrade)"
    db(capsys, monkeypatch, url, "upgrade")
    engine = create_engine_from(Settings(database_url=url))
    try:
        with engine.begin() as connection:  # as a newer release would leave it
            connection.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    finally:
        engine.dispose()
    assert db(capsys, monkeypatch, url, "current") == "0004 (unknown to this code, whose head is 0003: migrated by newer code?)"


# --- db revision -----------------------------------------------------------------------------------


@pytest.fixture
def migrations_copy(tmp_path, monkeypatch) -> Path:
    """db revision writes into a copy of the package's migrations, never into the repository."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = sorted(path.name for path in (migrate.MIGRATIONS / "versions").glob("*.py"))
    monkeypatch.setattr(migrate, "MIGRATIONS", copy)
    yield copy
    assert sorted(path.name for path in (PACKAGE_PARENT / "legacy_app" / "db" / "migrations" / "versions").glob("*.py")) == before


def test_db_revision_writes_the_next_numbered_migration_into_the_migrations_folder(capsys, monkeypatch, migrations_copy):
    monkeypatch.delenv("DATABASE_URL", raising=False)  # an empty migration needs no database
    assert cli.main(["db", "revision", "-m", "Add a nickname to users"]) == 0
    written = migrations_copy / "versions" / "0004_add_a_nickname_to_users.py"
    assert capsys.readouterr().out.startswith(f"wrote {written}: review it, add what it creates to ADOPTION_MARKERS")
    source = written.read_text()
    assert "revision = '0004'" in source and "down_revision = '0003'" in source
    assert "Add a nickname to users" in source
    assert migrate.revisions() == ["0001", "0002", "0003", "0004"]
    assert migrate.next_revision_id() == "0005"


def test_db_revision_autogenerate_writes_what_the_database_lacks(capsys, monkeypatch, migrations_copy, tmp_path):
    url = f"sqlite:///{tmp_path / 'autogenerate.db'}"
    engine = create_engine_from(Settings(database_url=url))
    try:
        migrate.upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_items_owner_id"))  # the models still declare it
    finally:
        engine.dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["db", "revision", "-m", "restore the owner index", "--autogenerate"]) == 0
    source = (migrations_copy / "versions" / "0004_restore_the_owner_index.py").read_text()
    assert "create_index" in source and "ix_items_owner_id" in source


def test_db_revision_autogenerate_refuses_a_database_behind_head_in_one_line(tmp_path, migrations_copy, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    engine = create_engine_from(Settings(database_url=url))
    try:
        migrate.upgrade(engine, "0001")
    finally:
        engine.dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["db", "revision", "-m", "too early", "--autogenerate"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("legacy_app db: ") and "not up to date" in error and error.count("\n") == 1
    assert not list((migrations_copy / "versions").glob("0004_*"))
