"""The slim package in other people's apps, on the stacks they pin (constraints/stacks/).

Each stack is a user's whole environment, made once and kept in .venvs/stack-<name>; installing the
package's wheel there moves no pin. The tutorial-shaped app of tests/stack_apps/ is then served from that
environment by uvicorn in its two forms: `decorator`, its session made and closed by an
@app.middleware("http") function, and `fixed`, the same file with that function and its get_db replaced
by two lines. Each form answers N background-task requests and N streamed responses that use the
request's session; the test then counts what is left open.

TEST_STACKS picks the stacks: unset, the oldest and the newest; `all`; or names, comma-separated.
PostgreSQL runs when TEST_POSTGRES_URL is set. `-m "not stacks"` deselects this module.
"""
import difflib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from legacy_app.compat import driver_url
from legacy_app.server.process import ServerProcess
from legacy_app.server.client import http_session

from .conftest import database_url_for
from .support.live_server import REPO_ROOT, wait_until
from .support.pinned_env import STACKS_DIR, PinnedEnv
from .support.wheel import legacy_app_wheel  # noqa: F401 - a fixture

# A stack's environment is made (or waited for, while another run holds it: up to 30 min) in the first
# test that uses it: each test may take that long.
pytestmark = [pytest.mark.stacks, pytest.mark.timeout(3600)]

APPS_DIR = REPO_ROOT / "tests" / "stack_apps"
SYNC_APP, ASYNC_APP = "sql_app", "async_sql_app"
# The pool holds 5 connections and 10 more on overflow: what the decorator form leaves open (2 N) and
# /_pool's own connection must fit, or its requests would wait 30 s for one and fail.
N = 5


@dataclass(frozen=True)
class Stack:
    postgres_driver: str  # the app's synchronous engine on PostgreSQL
    async_drivers: Optional[Dict[str, str]]  # database: driver of the AsyncSession app; None on SQLAlchemy 1.3


PSYCOPG3_ASYNC = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
STACKS = {  # oldest first; constraints/stacks/<name>.txt pins each
    "fastapi-0.65": Stack("postgresql+psycopg2", None),
    "fastapi-0.88": Stack("postgresql+psycopg2", {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}),
    "fastapi-0.100": Stack("postgresql+psycopg", PSYCOPG3_ASYNC),
    "current": Stack("postgresql+psycopg", PSYCOPG3_ASYNC),
}
DEFAULT_STACKS = ("fastapi-0.65", "current")


def selected_stacks() -> List[str]:
    value = os.environ.get("TEST_STACKS", "").strip()
    if not value:
        return list(DEFAULT_STACKS)
    if value == "all":
        return list(STACKS)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in STACKS]
    if unknown:
        raise ValueError(f"TEST_STACKS names unknown stacks {unknown}; known: {', '.join(STACKS)} (or `all`)")
    return names


def stack_params() -> list:
    chosen = selected_stacks()
    reason = "stack {}: not in TEST_STACKS (unset: {}; TEST_STACKS=all runs every stack)"
    return [
        pytest.param(name, id=name, marks=() if name in chosen else pytest.mark.skip(
            reason=reason.format(name, " and ".join(DEFAULT_STACKS))))
        for name in STACKS
    ]


# --- the user's environment, with the package installed on top ---------------------------------------


@dataclass
class InstalledStack:
    name: str
    env: PinnedEnv
    build_seconds: float  # 0.0: the cached environment was used
    before: Dict[str, str]  # pip freeze, before and after `pip install legacy_app-*.whl`
    after: Dict[str, str]


@pytest.fixture(scope="session", params=stack_params())
def installed_stack(request, legacy_app_wheel: Path) -> Iterator[InstalledStack]:  # noqa: F811
    env = PinnedEnv(request.param)
    env.acquire()
    before: Dict[str, str] = {}
    after: Dict[str, str] = {}
    try:
        build_seconds = env.ensure()
        before = env.freeze()
        env.pip("install", "-q", str(legacy_app_wheel))  # as a user would: no constraints
        after = env.freeze()
        yield InstalledStack(request.param, env, build_seconds, before, after)
    finally:
        added = sorted(set(after) - set(before))
        if added:  # back to the pins; a moved pin makes the next run build the environment again
            env.pip("uninstall", "-y", "-q", *added)
        env.release()


def test_every_pin_file_is_a_stack_here():
    assert sorted(path.stem for path in STACKS_DIR.glob("*.txt")) == sorted(STACKS)


@pytest.mark.server
def test_installing_the_package_into_a_pinned_stack_keeps_every_pin_and_adds_only_itself(installed_stack):
    stack = installed_stack
    print(f"\n{stack.name}: environment " + (f"made in {stack.build_seconds:.1f} s" if stack.build_seconds else "cached"))
    assert stack.before == stack.env.pins  # the environment holds its pins and nothing else
    moved = {name: (pinned, stack.after.get(name)) for name, pinned in stack.before.items()
             if stack.after.get(name) != pinned}
    assert moved == {}
    added = {name: stack.after[name] for name in sorted(stack.after.keys() - stack.before.keys())}
    print(f"{stack.name}: the install added {added}")
    assert set(added) == {"legacy-app"}  # the slim install brings nothing the stack lacks

    imported = subprocess.run(
        stack.env.python_command("-c", "from legacy_app.sessions import DBSessionMiddleware, get_db; "
                                       "import legacy_app; print(legacy_app.__file__)"),
        capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(str(stack.env.path)), imported.stdout  # the wheel's, not the work tree's


def test_the_fixed_app_is_the_decorator_app_with_two_lines_instead_of_its_middleware_and_get_db():
    for package, middleware in ((SYNC_APP, "DBSessionMiddleware"), (ASYNC_APP, "AsyncDBSessionMiddleware")):
        decorator, fixed = ((APPS_DIR / package / f"{form}.py").read_text().splitlines() for form in ("decorator", "fixed"))
        changes = [line for line in difflib.ndiff(decorator, fixed) if line[:2] in ("- ", "+ ")]
        assert [line for line in changes if line.startswith("+ ")] == [
            f"+ from legacy_app.sessions import {middleware}, get_db",
            f"+ app.add_middleware({middleware}, session_factory=SessionLocal)",
        ]
        removed = "\n".join(line[2:] for line in changes if line.startswith("- "))
        assert removed.startswith('@app.middleware("http")') and "def get_db(request: Request):" in removed


# --- serving the app from the stack ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    checked_out: int  # by the pool's checkout/checkin events
    pool_checkedout: Optional[int]  # engine.pool.checkedout(); None for a NullPool (SQLite before 2.0)
    idle_in_transaction: Optional[int]  # this app's backends in pg_stat_activity; None on SQLite

    def left_open(self) -> Dict[str, int]:
        """Each count this pool and database have of what is left open."""
        counts = {"checked out": self.checked_out, "pool.checkedout()": self.pool_checkedout,
                  "idle in transaction": self.idle_in_transaction}
        return {name: count for name, count in counts.items() if count is not None}


@dataclass
class Outcome:
    after_tasks: Reading  # once the N background tasks have written their rows
    after_streams: Reading  # and then the N streamed bodies were read
    audit_entries: int
    whole_bodies: int
    log: str


@dataclass(frozen=True)
class AppDatabase:
    url: str  # the app's DATABASE_URL, with the driver its stack and flavour have
    admin_url: Optional[str]  # PostgreSQL, for the test's own queries; None on SQLite


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str:
    return request.param


@pytest.fixture(params=[SYNC_APP, ASYNC_APP], ids=["sync", "async"])
def app_package(request, installed_stack) -> str:
    if request.param == ASYNC_APP and STACKS[installed_stack.name].async_drivers is None:
        pytest.skip(f"{installed_stack.name}: SQLAlchemy 1.3 has no AsyncSession")
    return request.param


@pytest.fixture
def app_database(installed_stack, app_package, database, tmp_path) -> Iterator[AppDatabase]:
    """The app's database; on PostgreSQL its tables are dropped before and after."""
    stack = STACKS[installed_stack.name]
    drivers = stack.async_drivers if app_package == ASYNC_APP else {"sqlite": "sqlite", "postgresql": stack.postgres_driver}
    url = database_url_for(database, tmp_path)  # skips PostgreSQL without TEST_POSTGRES_URL
    app_url = make_url(url).set(drivername=drivers[database]).render_as_string(hide_password=False)
    if database == "sqlite":
        yield AppDatabase(app_url, None)
        return
    drop_app_tables(url)
    yield AppDatabase(app_url, url)
    drop_app_tables(url)


def drop_app_tables(url: str) -> None:
    """The app's own tables only: the database is shared with the rest of the suite."""
    engine = create_engine(driver_url(url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(text("DROP TABLE IF EXISTS stack_app_audit, stack_app_users"))
    finally:
        engine.dispose()


def idle_in_transaction_counter(admin_url: Optional[str], application_name: str) -> Callable[[], Optional[int]]:
    if admin_url is None:
        return lambda: None
    engine = create_engine(driver_url(admin_url), poolclass=NullPool)

    def count() -> int:
        with engine.connect() as connection:
            return connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND state = 'idle in transaction'"
            ), {"name": application_name}).scalar()

    return count


def settled(read: Callable[[], Reading], timeout: float = 10.0) -> Reading:
    """The reading once two taken 0.2 s apart agree: a session closes just after its last byte or row."""
    previous = read()
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.2)
        current = read()
        if current == previous or time.monotonic() > deadline:
            return current
        previous = current


def serve_and_exercise(installed: InstalledStack, app: str, database: AppDatabase, log_path: Path) -> Outcome:
    """Serve `app` ("sql_app.decorator", ...) from the stack's environment; N notifications, then N exports."""
    application_name = f"stack-app-{uuid.uuid4().hex[:12]}"
    idle_in_transaction = idle_in_transaction_counter(database.admin_url, application_name)
    server = ServerProcess(
        installed.env.python_command("-m", "uvicorn", f"{app}:app", "--app-dir", str(APPS_DIR)),
        {"DATABASE_URL": database.url, "APPLICATION_NAME": application_name}, log_path)
    with server:
        http = http_session(retries=0)

        def pool() -> dict:
            response = http.get(f"{server.url}/_pool", timeout=10)
            assert response.status_code == 200, response.text + server.log()
            return response.json()

        def read() -> Reading:
            figures = pool()
            return Reading(figures["checked_out"], figures["pool_checkedout"], idle_in_transaction())

        users = []
        for number in range(N):
            response = http.post(f"{server.url}/users/", json={"email": f"user{number}@example.com"}, timeout=10)
            assert response.status_code == 200, response.text + server.log()
            users.append(response.json())
        assert http.get(f"{server.url}/users/{users[0]['id']}", timeout=10).json() == users[0]

        for user in users:
            response = http.post(f"{server.url}/users/{user['id']}/notifications/", timeout=10)
            assert response.status_code == 200, response.text + server.log()
        wait_until(lambda: pool()["audit_entries"] >= N, timeout=30, message=f"{N} audit entries", log=server.log)
        after_tasks = settled(read)

        whole_bodies = 0
        for _ in range(N):
            response = http.get(f"{server.url}/export/users/", timeout=10)
            if response.status_code == 200 and parses_as(response.text, users):
                whole_bodies += 1
        after_streams = settled(read)
        audit_entries = pool()["audit_entries"]
    return Outcome(after_tasks, after_streams, audit_entries, whole_bodies, server.log())


def parses_as(body: str, expected: object) -> bool:
    try:
        return json.loads(body) == expected
    except ValueError:  # cut short
        return False


@pytest.mark.live
def test_the_two_line_change_leaves_nothing_open_with_the_body_whole_and_the_task_run(
    installed_stack, app_package, app_database, tmp_path
):
    outcome = serve_and_exercise(installed_stack, f"{app_package}.fixed", app_database, tmp_path / "fixed.log")
    assert set(outcome.after_tasks.left_open().values()) == {0}, outcome.after_tasks
    assert set(outcome.after_streams.left_open().values()) == {0}, outcome.after_streams
    assert outcome.whole_bodies == N
    assert outcome.audit_entries == N
    assert "Traceback" not in outcome.log, outcome.log


@pytest.mark.live
def test_the_decorator_form_leaves_a_connection_open_per_streamed_body_and_per_background_task(
    installed_stack, app_package, app_database, tmp_path
):
    """Measured the same on every stack, sync and async: call_next returns when the response starts, so
    the `finally` closes the session before the body is streamed and before the background task runs.
    Both then use the closed session, which begins again on a new connection that nobody returns: the
    work succeeds (bodies whole, rows written) and each connection stays checked out, idle in transaction
    on PostgreSQL. (diagnostics.py pauses the garbage collector, which would return some, some time.)"""
    outcome = serve_and_exercise(installed_stack, f"{app_package}.decorator", app_database, tmp_path / "decorator.log")
    assert set(outcome.after_tasks.left_open().values()) == {N}, outcome.after_tasks
    assert set(outcome.after_streams.left_open().values()) == {2 * N}, outcome.after_streams
    assert outcome.whole_bodies == N
    assert outcome.audit_entries == N


# --- the doctor, run from our environment on the app in the user's -------------------------------------

DOCTOR_REQUESTS = [
    {"method": "POST", "path": "/users/", "json": {"email": "doctor@example.com", "password": "secret-1"},
     "save": {"user_id": "id"}, "hangup": False},
    {"method": "POST", "path": "/users/{user_id}/notifications/"},
    {"method": "GET", "path": "/export/users/"},
]


@pytest.mark.parametrize("form", ["decorator", "fixed"])
@pytest.mark.live
def test_the_doctor_serves_the_app_on_the_users_own_stack_and_finds_the_decorator_forms_hazards(
        installed_stack, form, tmp_path):
    requests_file = tmp_path / "requests.json"
    requests_file.write_text(json.dumps(DOCTOR_REQUESTS))
    result = subprocess.run(
        [sys.executable, "-m", "legacy_app", "doctor", f"{SYNC_APP}.{form}:app", "--app-dir", str(APPS_DIR),
         "--python", str(installed_stack.env.python), "--requests", str(requests_file), "--json"],
        cwd=str(tmp_path), env=dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}"),
        capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr
    document = json.loads(result.stdout)
    pinned = installed_stack.env.pins
    assert document["versions"]["fastapi"] == pinned["fastapi"]  # the app's stack, not ours
    assert document["versions"]["sqlalchemy"] == pinned["sqlalchemy"]
    hazards = {(r["method"], r["path"], r["disconnected"]): r["hazards"] for r in document["requests"]}
    late_use = ["session_used_after_close", "connection_leaked", "transaction_left_open"]
    user = "/users/1/notifications/"
    if form == "fixed":
        assert (result.returncode, document["verdict"]) == (0, "clean")
        assert all(found == [] for found in hazards.values()), hazards
    else:
        assert result.returncode == 1
        assert hazards[("POST", user, False)] == late_use and hazards[("GET", "/export/users/", False)] == late_use
    assert [r["status"] for r in document["requests"] if not r["disconnected"]] == [200, 200, 200]


@pytest.mark.server
def test_the_slim_install_has_the_command_line_and_a_command_that_needs_the_extra_says_so_in_one_line(installed_stack):
    legacy_app = str(installed_stack.env.path / "bin" / "legacy-app")
    helped = subprocess.run([legacy_app, "--help"], capture_output=True, text=True, timeout=60, cwd="/")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: legacy_app"), helped.stderr
    served = subprocess.run([legacy_app, "serve"], capture_output=True, text=True, timeout=60, cwd="/")
    assert served.returncode == 1 and served.stdout == ""
    assert served.stderr.startswith("legacy_app serve: needs the service extra (")
    assert served.stderr.endswith("): pip install 'legacy_app[service]'\n") and served.stderr.count("\n") == 1
