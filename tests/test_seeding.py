"""Seeding: over HTTP into a running server (seed.sh) and in bulk into the database, both idempotent."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.seeding import records

from .conftest import count_rows, env_for_hashing
from .live_server import REPO_ROOT

EXAMPLES = REPO_ROOT / "scripts" / "examples"


def seed_over_http(*args: str) -> subprocess.CompletedProcess:
    """scripts/seed.sh when this interpreter is that script's virtualenv; else the module it runs."""
    venv = Path(sys.prefix).name
    stack = {".venv": "current", ".venv-legacy": "legacy"}.get(venv)
    if stack and Path(sys.prefix).parent == REPO_ROOT:
        command = ["bash", str(REPO_ROOT / "scripts" / "seed.sh"), *args]
        env = {"STACK": stack, "PATH": "/usr/bin:/bin"}
    else:
        command = [sys.executable, "-m", "legacy_app.seeding.over_http", *args]
        env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, cwd=str(REPO_ROOT), env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def server(live_server_factory, database_url):
    return live_server_factory(DATABASE_URL=database_url)


def test_seeding_a_live_server_twice_leaves_the_same_data(server, database_url):
    first = seed_over_http("--url", server.url, "--users", "20", "--items-per-user", "3")
    assert first.returncode == 0, first.stderr
    assert "users: 20 created, 0 skipped, 0 failed; items: 60 created, 0 skipped, 0 failed" in first.stdout
    second = seed_over_http("--url", server.url, "--users", "20", "--items-per-user", "3")
    assert second.returncode == 0, second.stderr
    assert "users: 0 created, 20 skipped, 0 failed; items: 0 created, 60 skipped, 0 failed" in second.stdout
    assert (count_rows(database_url, "users"), count_rows(database_url, "items")) == (20, 60)


@pytest.mark.parametrize("example", ["users.json", "users.csv"])
def test_the_example_files_seed_the_same_records(server, database_url, example):
    result = seed_over_http("--url", server.url, "--file", str(EXAMPLES / example))
    assert result.returncode == 0, result.stderr
    assert "users: 2 created, 0 skipped, 0 failed; items: 2 created, 0 skipped, 0 failed" in result.stdout
    assert records.load(EXAMPLES / "users.json") == records.load(EXAMPLES / "users.csv")


def test_an_unreachable_server_fails_fast_naming_the_url():
    began = time.monotonic()
    result = seed_over_http("--url", "http://127.0.0.1:9", "--users", "5")
    assert time.monotonic() - began < 10
    assert result.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in result.stderr


def test_a_row_the_server_refuses_is_counted_and_fails_the_run(live_server_factory, tmp_path):
    url = f"sqlite:///{tmp_path / 'frozen.db'}"
    server = live_server_factory(DATABASE_URL=url)
    engine = create_engine_from(Settings(database_url=url))
    with engine.begin() as connection:  # a real database-side refusal of every new item
        connection.execute(text("CREATE TRIGGER frozen BEFORE INSERT ON items BEGIN SELECT RAISE(ABORT, 'frozen'); END"))
    engine.dispose()
    result = seed_over_http("--url", server.url, "--users", "2", "--items-per-user", "1")
    assert result.returncode == 1
    assert "users: 2 created, 0 skipped, 0 failed; items: 0 created, 0 skipped, 2 failed" in result.stdout
    assert "failed: item 'Item 1' of user1@seed.example.com: HTTP 404" in result.stderr


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.json", '[{"email": "nope", "password": "pw"}]', "user #1: email"),
        ("bad.csv", "email,title\nx@example.com,t\n", "missing ['password']"),
        ("bad.csv", "email,password,title\nx@example.com,pw," + "t" * 201 + "\n", "line 2: title"),
        ("bad.txt", "", "unknown format"),
    ],
)
def test_an_invalid_seed_file_is_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(records.SeedFileError) as raised:
        records.load(path)
    assert message in str(raised.value)


def bulk_seed(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        "DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), **env_for_hashing(),
    }
    return subprocess.run([sys.executable, "-m", "legacy_app", "seed", *args], cwd=str(REPO_ROOT), env=env,
                          capture_output=True, text=True, timeout=300)


def distinct_hashes(database_url: str) -> set:
    engine = create_engine_from(Settings(database_url=database_url))
    with engine.connect() as connection:
        hashes = {row[0] for row in connection.execute(text("SELECT DISTINCT hashed_password FROM users"))}
    engine.dispose()
    assert all(h.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for h in hashes)
    return hashes


def test_bulk_seed_is_idempotent_and_hashes_each_password_once(database_url):
    first = bulk_seed(database_url, "--users", "1200", "--items-per-user", "3")
    assert first.returncode == 0, first.stderr
    assert "users: 1200 created, 0 skipped; items: 3600 created, 0 skipped" in first.stdout
    assert len(distinct_hashes(database_url)) == 1  # one password, hashed once (salted once)
    second = bulk_seed(database_url, "--users", "1500", "--items-per-user", "4")
    assert second.returncode == 0, second.stderr
    assert "users: 300 created, 1200 skipped; items: 2400 created, 3600 skipped" in second.stdout
    assert (count_rows(database_url, "users"), count_rows(database_url, "items")) == (1500, 6000)
    assert len(distinct_hashes(database_url)) == 2  # the second run hashed its one password once more


def test_bulk_seed_from_a_file(database_url):
    result = bulk_seed(database_url, "--file", str(EXAMPLES / "users.csv"))
    assert result.returncode == 0, result.stderr
    assert "users: 2 created, 0 skipped; items: 2 created, 0 skipped" in result.stdout


def test_bulk_seed_refuses_bad_arguments_in_one_line(tmp_path):
    result = bulk_seed(f"sqlite:///{tmp_path / 'x.db'}", "--users", "-5")
    assert result.returncode == 2 and "must not be negative" in result.stderr and "Traceback" not in result.stderr
    result = bulk_seed(f"sqlite:///{tmp_path / 'x.db'}", "--file", str(tmp_path / "missing.json"))
    assert result.returncode == 1 and "cannot read" in result.stderr and "Traceback" not in result.stderr
