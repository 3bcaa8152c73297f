"""Seeding: over HTTP into a running server (seed.sh) and in bulk into the database, both idempotent,
both showing progress."""
import argparse
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from sqlalchemy import text

from legacy_app.cli import build_parser
from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.seeding import bulk, over_http, records
from legacy_app.seeding.over_http import Seeder, Tally, Unreachable
from legacy_app.seeding.progress import Progress
from legacy_app.seeding.records import SeedItem, SeedUser

from ..conftest import CHEAP_HASHER, count_rows, database_url_for, env_for_hashing, reset_database
from ..support.live_server import REPO_ROOT, wait_until

pytestmark = pytest.mark.server  # the seeders run as commands, most against a live server

EXAMPLES = REPO_ROOT / "scripts" / "examples"


def over_http_command(*args: str) -> Tuple[List[str], Dict[str, str]]:
    """scripts/seed.sh when this interpreter is that script's virtualenv; else the module it runs."""
    stack = Path(sys.prefix).name  # .venvs/current or .venvs/legacy
    if stack in ("current", "legacy") and Path(sys.prefix).parent == REPO_ROOT / ".venvs":
        return ["bash", str(REPO_ROOT / "scripts" / "seed.sh"), *args], {"STACK": stack, "PATH": "/usr/bin:/bin"}
    return [sys.executable, "-m", "legacy_app.seeding.over_http", *args], {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}


def seed_over_http(*args: str, env: Optional[Dict[str, str]] = None, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    command, base_env = over_http_command(*args)
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


@pytest.mark.timeout(60)  # one health check, no retries: it ends well within this
def test_an_unreachable_server_fails_fast_naming_the_url():
    result = seed_over_http("--url", "http://127.0.0.1:9", "--users", "5")
    assert result.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in result.stderr
    assert "seeding:" not in result.stderr  # stopped at the health check: no user was attempted


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


def bulk_command(database_url: str, *args: str) -> Tuple[List[str], Dict[str, str]]:
    env = {
        "DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), **env_for_hashing(),
    }
    return [sys.executable, "-m", "legacy_app", "seed", *args], env


def bulk_seed(database_url: str, *args: str) -> subprocess.CompletedProcess:
    command, env = bulk_command(database_url, *args)
    return subprocess.run(command, cwd=str(REPO_ROOT), env=env, capture_output=True, text=True, timeout=300)


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


def test_a_bulk_seed_rerun_hashes_no_password_of_a_user_that_exists(tmp_path):
    """Hashing is the slow part (0.1 s a password at the defaults): a rerun of a file whose users
    each have their own password would otherwise hash them all again, to store none."""
    hashed: List[str] = []

    class Counting:
        def hash(self, password: str) -> str:
            hashed.append(password)
            return CHEAP_HASHER.hash(password)

    def users(count: int) -> List[SeedUser]:
        return [SeedUser(f"user{n}@seed.example.com", f"password-{n}") for n in range(1, count + 1)]

    url = f"sqlite:///{tmp_path / 'seed.db'}"
    reset_database(url)
    engine = create_engine_from(Settings(database_url=url))
    try:
        bulk.seed(engine, users(3), 3, Counting())
        assert sorted(hashed) == ["password-1", "password-2", "password-3"]
        hashed.clear()
        assert bulk.seed(engine, users(4), 4, Counting()).users_created == 1
        assert hashed == ["password-4"]
    finally:
        engine.dispose()

def test_bulk_seed_from_a_file(database_url):
    result = bulk_seed(database_url, "--file", str(EXAMPLES / "users.csv"))
    assert result.returncode == 0, result.stderr
    assert "users: 2 created, 0 skipped; items: 2 created, 0 skipped" in result.stdout


def test_bulk_seed_refuses_bad_arguments_in_one_line(tmp_path):
    result = bulk_seed(f"sqlite:///{tmp_path / 'x.db'}", "--users", "-5")
    assert result.returncode == 2 and "must not be negative" in result.stderr and "Traceback" not in result.stderr
    result = bulk_seed(f"sqlite:///{tmp_path / 'x.db'}", "--file", str(tmp_path / "missing.json"))
    assert result.returncode == 1 and "cannot read" in result.stderr and "Traceback" not in result.stderr


def help_of_each_option(help_text: str) -> Dict[str, str]:
    """--help's text for each option, its lines joined ("--timeout": "--timeout TIMEOUT seconds ... (default: 10.0)")."""
    options = re.split(r"^(?:options|optional arguments):$", help_text, flags=re.M)[1]
    entries = re.split(r"\n(?=  -)", options.strip("\n"))
    return {entry.split()[0].rstrip(","): " ".join(entry.split()) for entry in entries}


def option_defaults(parser: argparse.ArgumentParser) -> Dict[str, object]:
    return {action.option_strings[0]: action.default for action in parser._actions
            if action.option_strings and action.default not in (None, True, False, argparse.SUPPRESS)}


def test_seed_help_shows_every_default(monkeypatch):
    """scripts/seed.sh --help and legacy-app seed --help: each option that has a default says which."""
    monkeypatch.setenv("PORT", "8123")  # --url's default follows PORT, as scripts/run.sh does
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    for result, parser in [(seed_over_http("--help", env={"PORT": "8123"}), over_http.build_parser()),
                           (bulk_seed("sqlite://", "--help"), commands.choices["seed"])]:
        assert result.returncode == 0, result.stderr
        shown = help_of_each_option(result.stdout)
        defaults = option_defaults(parser)
        assert defaults and set(defaults) <= set(shown), (defaults, shown)
        for option, default in defaults.items():
            assert shown[option].endswith(f"(default: {default})"), shown[option]
    shown = help_of_each_option(seed_over_http("--help", env={"PORT": "8123"}).stdout)
    assert shown["--url"].endswith("(default: http://127.0.0.1:8123)")
    assert shown["--items-per-user"].endswith("(default: 0)") and shown["--concurrency"].endswith("(default: 4)")


def test_bulk_seed_tells_its_progress_which_users_wrote_nothing(tmp_path, monkeypatch):
    updates = []

    class Recording(Progress):
        def update(self, count: int = 1, unchanged: int = 0) -> None:
            updates.append((count, unchanged))
            super().update(count, unchanged)

    monkeypatch.setattr(bulk, "Progress", Recording)
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    reset_database(url)
    engine = create_engine_from(Settings(database_url=url))
    try:
        bulk.seed(engine, records.generated(10, 1, "pw"), 10, CHEAP_HASHER)
        bulk.seed(engine, records.generated(15, 1, "pw"), 15, CHEAP_HASHER)  # 10 there, with their item
        bulk.seed(engine, records.generated(15, 2, "pw"), 15, CHEAP_HASHER)  # all there, each gets an item
    finally:
        engine.dispose()
    assert updates == [(10, 0), (15, 10), (15, 0)]


def test_seeding_a_user_over_http_says_whether_it_wrote_anything(live_server_factory, tmp_path):
    server = live_server_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'seed.db'}")
    seeder, tally = Seeder(server.url, timeout=10), Tally()
    user = SeedUser("kate@seed.example.com", "seed-password", [SeedItem("Item 1")])
    try:
        assert seeder.seed_user(user, tally) is True  # registered, with its item
        assert seeder.seed_user(user, tally) is False  # there, with its item: a lookup only
        user.items.append(SeedItem("Item 2"))
        assert seeder.seed_user(user, tally) is True  # there, and given its second item
    finally:
        seeder.close()
    assert tally.summary() == "users: 1 created, 2 skipped, 0 failed; items: 2 created, 2 skipped, 0 failed"


# --- stopped before the end: Ctrl-C, SIGTERM, the server or the database gone ------------------------

RERUN_IS_SAFE = "running the same command again is safe: it skips the users and items that exist and adds the rest"
STOPPED_OVER_HTTP = re.compile(
    r"^seed: stopped with (?P<done>\d+) of 200 users done: (?P<reason>.+)\n"
    r"seed: written before the stop: users: (?P<users>\d+) created, 0 skipped, \d+ failed; "
    r"items: (?P<items>\d+) created, 0 skipped, \d+ failed; " + re.escape(RERUN_IS_SAFE) + r"\n\Z", re.M
)
STOPPED_BULK = re.compile(
    r"^legacy_app seed: stopped with (?P<done>\d+) of 15000 users done: (?P<reason>.+)\n"
    r"legacy_app seed: written before the stop: users: (?P<users>\d+) created, 0 skipped; "
    r"items: (?P<items>\d+) created, 0 skipped; " + re.escape(RERUN_IS_SAFE) + r"\n", re.M
)


def _sigint_as_at_a_terminal() -> None:
    # A shell's background job starts with SIGINT ignored (CI runs the suites so), and a child
    # inherits that; the seeder rightly leaves an ignored signal ignored. Ctrl-C at a terminal is the case here.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(command: List[str], env: Dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_sigint_as_at_a_terminal)


def rows(url: str) -> Tuple[int, int]:
    return count_rows(url, "users"), count_rows(url, "items")


@pytest.mark.slow  # stops a real run part-way, then runs it again
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_seed_over_http_stopped_by_a_signal_says_what_it_wrote_and_the_same_command_finishes_it(
    live_server_factory, tmp_path, signum, exit_code
):
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    server = live_server_factory(DATABASE_URL=url)
    args = ("--url", server.url, "--users", "200", "--items-per-user", "2")
    seeding = start(*over_http_command(*args))
    wait_until(lambda: count_rows(url, "users") >= 5, message="5 users seeded")
    seeding.send_signal(signum)
    out, err = seeding.communicate(timeout=60)
    assert seeding.returncode == exit_code, err
    stopped = STOPPED_OVER_HTTP.search(err)
    assert stopped and stopped["reason"] == f"interrupted by {signum.name}", err
    assert out == ""  # the summary of a whole run is not printed
    users, items = int(stopped["users"]), int(stopped["items"])
    assert 5 <= users < 200 and int(stopped["done"]) <= users
    assert rows(url) == (users, items)  # the answers on their way were waited for and counted; no request after
    again = seed_over_http(*args)
    assert again.returncode == 0, again.stderr
    assert (f"users: {200 - users} created, {users} skipped, 0 failed; "
            f"items: {400 - items} created, {items} skipped, 0 failed") in again.stdout
    assert rows(url) == (200, 400)


@pytest.mark.slow  # stops a real run part-way, then runs it again
def test_a_seed_over_http_whose_server_went_away_says_what_it_wrote_and_the_same_command_finishes_it(
    live_server_factory, tmp_path
):
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    server = live_server_factory(DATABASE_URL=url)
    seeding = start(*over_http_command("--url", server.url, "--users", "200", "--items-per-user", "2"))
    wait_until(lambda: count_rows(url, "users") >= 5, message="5 users seeded")
    server.stop()
    out, err = seeding.communicate(timeout=60)
    assert seeding.returncode == 2, err
    stopped = STOPPED_OVER_HTTP.search(err)
    assert stopped and server.url in stopped["reason"], err
    written = rows(url)
    # a registration whose answer was lost with the server may be there too: at least what it said
    assert 5 <= written[0] < 200 and written >= (int(stopped["users"]), int(stopped["items"]))
    restarted = live_server_factory(DATABASE_URL=url)
    again = seed_over_http("--url", restarted.url, "--users", "200", "--items-per-user", "2")
    assert again.returncode == 0, again.stderr
    assert (f"users: {200 - written[0]} created, {written[0]} skipped, 0 failed; "
            f"items: {400 - written[1]} created, {written[1]} skipped, 0 failed") in again.stdout
    assert rows(url) == (200, 400)


@pytest.fixture
def postgres_url(tmp_path) -> str:
    url = database_url_for("postgresql", tmp_path)  # skipped when TEST_POSTGRES_URL is unset
    reset_database(url)
    return url


def execute(url: str, *statements: str) -> list:
    """Each statement in one transaction; the rows of the last."""
    engine = create_engine_from(Settings(database_url=url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                result = connection.execute(text(statement))
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.mark.slow  # stops a real run part-way, then runs it again
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "connection ended"])
def test_a_bulk_seed_stopped_mid_batch_says_what_its_batches_wrote_and_the_same_command_finishes_it(postgres_url, stop):
    """Its batches are of 5000 users: the insert of the 5001st is held in the database until it stops."""
    drop = ["DROP TRIGGER IF EXISTS seed_test_hold ON users", "DROP FUNCTION IF EXISTS seed_test_hold()"]
    execute(
        postgres_url, *drop,
        "CREATE FUNCTION seed_test_hold() RETURNS trigger LANGUAGE plpgsql AS "
        "'BEGIN PERFORM pg_sleep(5); RETURN NEW; END'",
        "CREATE TRIGGER seed_test_hold BEFORE INSERT ON users FOR EACH ROW "
        "WHEN (NEW.email = 'user5001@seed.example.com') EXECUTE FUNCTION seed_test_hold()",
    )
    held = "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()"
    args = ("--users", "15000", "--items-per-user", "1")
    try:
        seeding = start(*bulk_command(postgres_url, *args))
        wait_until(lambda: execute(postgres_url, held), timeout=60, message="the second batch held")
        if stop == "connection ended":
            execute(postgres_url, held.replace("SELECT pid", "SELECT pg_terminate_backend(pid)"))
        else:
            seeding.send_signal(getattr(signal, stop))
        out, err = seeding.communicate(timeout=60)
    finally:
        execute(postgres_url, *drop)
    reasons = {"SIGINT": (130, "interrupted by SIGINT"), "SIGTERM": (143, "interrupted by SIGTERM"),
               "connection ended": (1, "a database error (below)")}
    assert (seeding.returncode, out) == (reasons[stop][0], ""), err
    stopped = STOPPED_BULK.search(err)
    assert stopped and stopped["reason"] == reasons[stop][1], err
    assert (stopped["done"], stopped["users"], stopped["items"]) == ("5000", "5000", "5000")
    assert rows(postgres_url) == (5000, 5000)  # the first batch, committed; nothing of the second
    if stop == "connection ended":
        assert "legacy_app seed: database error: " in err.split(RERUN_IS_SAFE)[1]
    again = bulk_seed(postgres_url, *args)
    assert again.returncode == 0, again.stderr
    assert "users: 10000 created, 5000 skipped; items: 10000 created, 5000 skipped" in again.stdout
    assert rows(postgres_url) == (15000, 15000)


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
