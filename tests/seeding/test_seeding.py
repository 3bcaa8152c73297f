"""Seeding: over HTTP into a running server (seed.sh) and in bulk into the database, both idempotent,
both showing progress."""
import io
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from sqlalchemy import text

from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.seeding import records
from legacy_app.seeding.over_http import Seeder, Unreachable
from legacy_app.seeding.progress import Progress

from .conftest import count_rows, env_for_hashing
from .live_server import REPO_ROOT

EXAMPLES = REPO_ROOT / "scripts" / "examples"


def seed_over_http(*args: str, env: Optional[Dict[str, str]] = None, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    """scripts/seed.sh when this interpreter is that script's virtualenv; else the module it runs."""
    stack = Path(sys.prefix).name  # .venvs/current or .venvs/legacy
    if stack in ("current", "legacy") and Path(sys.prefix).parent == REPO_ROOT / ".venvs":
        command = ["bash", str(REPO_ROOT / "scripts" / "seed.sh"), *args]
        base_env = {"STACK": stack, "PATH": "/usr/bin:/bin"}
    else:
        command = [sys.executable, "-m", "legacy_app.seeding.over_http", *args]
        base_env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, cwd=str(cwd), env={**base_env, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def server(live_server_factory, database_url):
    return live_server_factory(DATABASE_URL=database_url)


def test_seeding_a_live_server_twice_leaves_the_same_data(server, database_url):
    first = seed_over_http("--url", server.url, "--users", "20", "--items-per-user", "3")
    assert first.returncode == 0, first.stderr
    assert "users: 20 created, 0 skipped, 0 failed; items: 60 created, 0 skipped, 0 failed" in first.stdout
    assert "seeding: 20/20 users (100 %)" in first.stderr  # not a terminal: progress as plain lines
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


def test_seed_sh_without_url_seeds_the_server_run_sh_starts_at_port(server, database_url):
    """--url defaults to http://127.0.0.1:$PORT (8000 when PORT is unset), where scripts/run.sh serves."""
    result = seed_over_http("--users", "2", env={"PORT": str(server.port)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"http://127.0.0.1:{server.port}: users: 2 created")
    assert count_rows(database_url, "users") == 2


def test_a_relative_seed_file_is_read_from_the_callers_directory(server, tmp_path):
    (tmp_path / "mine.json").write_text((EXAMPLES / "users.json").read_text())
    result = seed_over_http("--url", server.url, "--file", "mine.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "users: 2 created" in result.stdout


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
    assert "seeding: 1200/1200 users (100 %)" in first.stderr  # not a terminal: progress as plain lines
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


# --- progress ------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_is_a_plain_line_every_interval_and_one_at_the_end():
    out = io.StringIO()
    with Progress(10, file=out, interval=0.05) as progress:
        for _ in range(10):
            progress.update()
            time.sleep(0.02)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) >= 3  # ~0.2 s at one line per 0.05 s, and the last
    assert all(re.fullmatch(r"seeding: \d+/10 users \(\d+ %\), [\d.]+ users/s, 00:00 elapsed(, 00:00 left)?", line)
               for line in lines), lines
    assert lines[-1].startswith("seeding: 10/10 users (100 %), ")


def test_progress_keeps_reporting_while_one_step_holds_the_caller():
    out = io.StringIO()
    with Progress(1, file=out, interval=0.05):
        time.sleep(0.3)  # e.g. one batch insert: no update() meanwhile
    assert out.getvalue().count("seeding: 0/1 users") >= 3


def test_progress_on_a_terminal_is_tqdms_bar():
    out = Terminal()
    with Progress(4, file=out) as progress:
        progress.update(4)
    assert "\r" in out.getvalue() and "4/4" in out.getvalue() and "|" in out.getvalue()


# --- HTTP: retries for idempotent requests only, truncated bodies reported ----------------------------


class DroppingServer:
    """Reads each request and closes the connection without an answer, `drops` times; then answers.

    `answer` is what it then sends. Counts the requests per method.
    """

    def __init__(self, drops: int, answer: bytes) -> None:
        self.drops, self.answer = drops, answer
        self.methods: List[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                request = connection.recv(65536)
                self.methods.append(request.split(b" ", 1)[0].decode())
                if len(self.methods) > self.drops:
                    connection.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


WHOLE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]"


def test_a_lookup_whose_answer_was_lost_is_sent_again_a_registration_never():
    lookups = DroppingServer(drops=1, answer=WHOLE)
    registrations = DroppingServer(drops=1, answer=WHOLE)
    try:
        assert Seeder(lookups.url, timeout=5).call("GET", "/users/?email=a%40example.com").json() == []
        assert lookups.methods == ["GET", "GET"]
        with pytest.raises(Unreachable, match="cannot reach"):
            Seeder(registrations.url, timeout=5).call("POST", "/users/", {"email": "a@example.com", "password": "pw"})
        assert registrations.methods == ["POST"]  # it may have been carried out: not sent twice
    finally:
        lookups.close()
        registrations.close()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n[{\"id\": 1}",  # shorter than declared
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n9\r\n[{\"id\": 1\r\n",  # no last chunk
], ids=["content-length", "chunked"])
def test_a_body_cut_short_is_reported_as_cut_short_not_read_as_whole(answer):
    server = DroppingServer(drops=0, answer=answer)
    try:
        with pytest.raises(Unreachable, match="the answer was cut short"):
            Seeder(server.url, timeout=5).call("GET", "/users/?email=a%40example.com")
    finally:
        server.close()
