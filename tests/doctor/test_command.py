"""`python -m legacy_app doctor`: the known answers of tests/doctor_apps/, on SQLite and PostgreSQL.

Each app is standalone (its own engine and SessionLocal, DATABASE_URL from the environment) and is run
through the command exactly as a user runs it: a subprocess, `--json`, the exit status checked. The
expectations are what the doctor measured on both pinned stacks; where the stacks differ, the
expectation says which stack and why.

Every hazard has an app that must show it and one that must not (the clean apps show none):
session_used_after_close and connection_leaked — decorator_middleware /report vs pure_asgi_middleware /report;
session_not_closed — no_finally_middleware /fail vs /users/; transaction_left_open — shared_session vs
yield_dependency; leak_on_disconnect — early_return_on_disconnect vs disconnect_mid_query.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import starlette

from legacy_app.compat import driver_url
from legacy_app.server.process import PACKAGE_PARENT

from ..conftest import database_url_for

pytestmark = [pytest.mark.live, pytest.mark.slow]  # each test runs the doctor, which serves an app in uvicorn

APPS = Path(__file__).parents[1] / "doctor_apps"
USED_AFTER_CLOSE = ["session_used_after_close", "connection_leaked", "transaction_left_open"]
NOT_CLOSED_AND_OPEN = ["connection_leaked", "session_not_closed", "transaction_left_open"]
# Starlette 0.20's BaseHTTPMiddleware cancels the inner app when the client hangs up during the
# response, so the background task (and its use of the closed session) never runs; Starlette 1.x runs it.
HANGUP_CANCELS_BACKGROUND = starlette.__version__.startswith("0.20")

# target -> {(path, client hung up): hazards, or a tuple of the answers timing decides between}
KNOWN_ANSWERS: Dict[str, Dict[Tuple[str, bool], Any]] = {
    "decorator_middleware:app": {
        ("/users/", False): [], ("/users/", True): [],
        ("/report", False): USED_AFTER_CLOSE,
        # On 0.20 the hang-up cancels the task only if it reaches the middleware before the task
        # starts: on a loaded machine it may come too late (seen with CI's two stacks side by side).
        ("/report", True): ([], USED_AFTER_CLOSE) if HANGUP_CANCELS_BACKGROUND else USED_AFTER_CLOSE,
    },
    "pure_asgi_middleware:app": {
        ("/users/", False): [], ("/users/", True): [], ("/report", False): [], ("/report", True): [],
    },
    # The pinned FastAPI versions (0.86 and 0.165) run the exit code after the streamed body.
    "yield_dependency:app": {
        ("/users/", False): [], ("/users/", True): [], ("/export", False): [], ("/export", True): [],
    },
    "no_finally_middleware:app": {
        ("/users/", False): [], ("/users/", True): [],
        ("/fail", False): ["session_not_closed"], ("/fail", True): ["session_not_closed"],
    },
    # The first request begins the shared session's transaction and nothing ends it; the second
    # request (the hung-up one) begins nothing: it runs in the transaction already open.
    "shared_session:app": {
        ("/users/", False): ["connection_leaked", "transaction_left_open"], ("/users/", True): [],
    },
    # remove() on the event loop's thread closes that thread's session, never the worker thread's the
    # route used; the next request on that worker reuses its session and its open transaction.
    "scoped_session_app:app": {
        ("/users/", False): NOT_CLOSED_AND_OPEN, ("/users/", True): [],
    },
    # The client is gone 0.3 s before the query ends: nothing cancels a sync route, the yield
    # dependency closes as usual.
    "disconnect_mid_query:app": {("/slow", False): [], ("/slow", True): []},
    # The client gets 200 for a body cut short and for a task that failed. Hung up on, the cut body's
    # stream may be cancelled before it fails, and on Starlette 0.20 the task with it.
    "late_errors:app": {
        ("/export/whole", False): [], ("/export/whole", True): [],
        ("/export/cut", False): ["error_after_response_start"], ("/export/cut", True): ([], ["error_after_response_start"]),
        ("/tasks/ok", False): [], ("/tasks/ok", True): [],
        ("/tasks/fail", False): ["error_after_response_start"],
        ("/tasks/fail", True): ([], ["error_after_response_start"]) if HANGUP_CANCELS_BACKGROUND else ["error_after_response_start"],
    },
    # Closed by each route and reused by the next request on the thread: allowed, each use ended in time.
    "scoped_reuse:app": {("/users/", False): [], ("/users/", True): [], ("/items/", False): [], ("/items/", True): []},
    # Starlette 0.20's BaseHTTPMiddleware cancels what still runs once the response is sent: the async
    # task's sleep, so it never reaches the closed session (nor does its work get done).
    "async_apps:leaking": {
        ("/users/", False): [], ("/users/", True): [],
        ("/report", False): [] if HANGUP_CANCELS_BACKGROUND else USED_AFTER_CLOSE,
        ("/report", True): [] if HANGUP_CANCELS_BACKGROUND else USED_AFTER_CLOSE,
    },
    "async_apps:clean": {("/users/", False): [], ("/users/", True): [], ("/report", False): [], ("/report", True): []},
    # Found at the app's own openapi_url; /users/{user_id} filled with an id /users/ listed.
    "prefixed_openapi:app": {
        ("/api/v1/users/", False): [], ("/api/v1/users/", True): [],
        ("/api/v1/users/7", False): [], ("/api/v1/users/7", True): [],
    },
    "early_return_on_disconnect:app": {
        ("/updates", False): [], ("/updates", True): NOT_CLOSED_AND_OPEN + ["leak_on_disconnect"],
    },
}


@pytest.fixture(params=["sqlite", "postgresql"])
def app_database_url(request, tmp_path) -> str:
    return driver_url(database_url_for(request.param, tmp_path))


def doctor(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=database_url,
               PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "legacy_app", "doctor", *args], env=env, cwd=str(cwd),
                          capture_output=True, text=True, timeout=180)


def hazards_by_route(document: Dict[str, Any]) -> Dict[Tuple[str, bool], List[str]]:
    return {(r["path"], r["disconnected"]): r["hazards"] for r in document["requests"]}


@pytest.mark.parametrize("target", sorted(KNOWN_ANSWERS))
def test_the_doctor_reports_exactly_the_known_hazards_of_each_app(target, app_database_url, tmp_path):
    result = doctor(target, "--app-dir", str(APPS), "--json", database_url=app_database_url, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    document = json.loads(result.stdout)
    expected = KNOWN_ANSWERS[target]
    actual = hazards_by_route(document)
    assert actual.keys() == expected.keys()
    for route, answer in expected.items():
        assert actual[route] in (answer if isinstance(answer, tuple) else (answer,)), route
    assert result.returncode == (1 if any(actual.values()) else 0)
    assert document["verdict"] == ("hazard" if any(actual.values()) else "clean")
    totals = {}
    for hazards in actual.values():
        for code in hazards:
            totals[code] = totals.get(code, 0) + 1
    assert document["hazards"] == totals


def test_a_session_closed_before_the_background_task_is_observed_closing_before_the_response(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    result = doctor("decorator_middleware:app", "--app-dir", str(APPS), "--json", database_url=url, cwd=tmp_path)
    report = next(r for r in json.loads(result.stdout)["requests"] if r["path"] == "/report" and not r["disconnected"])
    lifecycle = report["observations"]["session_lifecycle"]
    assert [s["closed_before_response_start"] for s in lifecycle] == [True]
    kinds = [e["kind"] for e in report["events"]]
    # The task's query comes after the close and after the last body message, before the app returns.
    assert kinds.index("session_close") < kinds.index("response_end") < kinds.index("begin") < kinds.index("app_return")


def test_the_pure_asgi_middleware_closes_after_the_app_returned_its_background_task(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    result = doctor("pure_asgi_middleware:app", "--app-dir", str(APPS), "--json", database_url=url, cwd=tmp_path)
    report = next(r for r in json.loads(result.stdout)["requests"] if r["path"] == "/report" and not r["disconnected"])
    [session] = report["observations"]["session_lifecycle"]
    assert session["closed_before_response_end"] is False
    assert report["observations"]["checkouts"] == 1


def test_a_requests_file_replaces_the_openapi_requests(tmp_path):
    requests_file = tmp_path / "requests.json"
    requests_file.write_text(json.dumps([{"method": "get", "path": "/fail"}]))
    result = doctor("no_finally_middleware:app", "--app-dir", str(APPS), "--requests", str(requests_file),
                    database_url=f"sqlite:///{tmp_path / 'app.db'}", cwd=tmp_path)
    assert result.returncode == 1
    assert "GET /fail" in result.stdout and "session_not_closed" in result.stdout
    assert "/users/" not in result.stdout
    assert "make the session before `try` and close it in `finally`" in result.stdout


@pytest.mark.parametrize("args, why", [
    (["no_such_module:app"], "legacy_app doctor: cannot import no_such_module: ModuleNotFoundError"),
    (["decorator_middleware:nothing"], "legacy_app doctor: module decorator_middleware has no attribute 'nothing'"),
    (["decorator_middleware:get_db"], "legacy_app doctor: decorator_middleware:get_db is not an ASGI app"),
    (["decorator_middleware"], "legacy_app doctor: TARGET must be module:attribute"),
    (["decorator_middleware:app", "--requests", "missing.json"], "legacy_app doctor: cannot read requests from"),
    (["decorator_middleware:app", "--requests", "non-latin-1-header.json"],
     "legacy_app doctor: non-latin-1-header.json: request 1: header names and values must be strings of Latin-1"),
    (["decorator_middleware:app", "--html", "no-such-directory/page.html"],
     "legacy_app doctor: cannot write the page to no-such-directory/page.html"),
])
def test_a_target_that_cannot_be_run_exits_2_with_one_line_saying_why(args, why, tmp_path):
    (tmp_path / "non-latin-1-header.json").write_text(json.dumps([{"method": "GET", "path": "/", "headers": {"x-name": "Ж"}}]))
    result = doctor(*args, "--app-dir", str(APPS), database_url=f"sqlite:///{tmp_path / 'app.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(why)
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


@pytest.mark.parametrize("strategy", ["asgi-middleware", "http-middleware", "yield-dependency"])
def test_the_services_own_strategies_show_no_hazard(strategy, tmp_path):
    # The service's session class skips the work of closing an empty session; the doctor still sees
    # the close() the strategy made, so /health's unused sessions are not reported as left open.
    env_url = f"sqlite:///{tmp_path / 'service.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "legacy_app", "doctor", "legacy_app.main:app", "--json"],
        env=dict(os.environ, DATABASE_URL=env_url, SESSION_STRATEGY=strategy),
        cwd=str(PACKAGE_PARENT), capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    document = json.loads(result.stdout)
    assert {r["path"] for r in document["requests"]} >= {"/users/", "/items/", "/health"}
    assert document["hazards"] == {}


# --- coverage, auth and secrets --------------------------------------------------------------------

LOGIN_PASSWORD = "s3cret-pass-word"
LOGIN_TOKEN = "tok-7f3a9c2e5b1d4086"  # login_app's
LOGIN_REQUESTS = [
    {"method": "POST", "path": "/token", "form": {"username": "alice", "password": "${LOGIN_APP_PASSWORD}"},
     "save": {"token": "access_token"}, "hangup": False},
    {"method": "GET", "path": "/users/me", "headers": {"Authorization": "Bearer {token}"}},
    {"method": "GET", "path": "/reports/weekly", "headers": {"Authorization": "Bearer {token}"}},
]


def login_doctor(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LOGIN_APP_PASSWORD=LOGIN_PASSWORD, DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "legacy_app", "doctor", "login_app:app", "--app-dir", str(APPS), *args],
                          env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=180)


def test_a_run_where_every_route_answers_401_is_inconclusive_not_clean(tmp_path):
    result = login_doctor("--json", tmp_path=tmp_path)
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert document["verdict"] == "inconclusive" and document["hazards"] == {}
    assert document["coverage"] == {
        "requests": 2, "answered": {"401": 2}, "used_a_session": 0,
        "not_exercised": [{"method": "POST", "path": "/token", "reason": "not a GET: give it in --requests"}],
    }
    assert document["inconclusive"][0] == "no request both used a database session and answered 2xx/3xx"
    assert [line.split(":")[0] for line in document["inconclusive"][1:]] == ["GET /users/me answered 401",
                                                                            "GET /reports/weekly answered 401"]
    table = login_doctor(tmp_path=tmp_path)
    assert table.returncode == 3 and "verdict: inconclusive" in table.stdout and "no hazard" not in table.stdout


def test_after_logging_in_the_doctor_finds_the_hazard_behind_the_login_and_shows_no_secret(tmp_path):
    requests_file = tmp_path / "requests.json"
    requests_file.write_text(json.dumps(LOGIN_REQUESTS))
    page = tmp_path / "page.html"
    result = login_doctor("--requests", str(requests_file), "--json", "--html", str(page), tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    found = {(r["method"], r["path"], r["disconnected"]): (r["status"], r["hazards"]) for r in document["requests"]}
    assert found == {  # the login is sent once ("hangup": false); the protected routes twice
        ("POST", "/token", False): (200, []),
        ("GET", "/users/me", False): (200, []), ("GET", "/users/me", True): (200, []),
        ("GET", "/reports/weekly", False): (200, USED_AFTER_CLOSE),
        ("GET", "/reports/weekly", True): (200, found[("GET", "/reports/weekly", True)][1] if HANGUP_CANCELS_BACKGROUND
                                           else USED_AFTER_CLOSE),  # see decorator_middleware's /report
    }
    assert found[("GET", "/reports/weekly", True)][1] in ([], USED_AFTER_CLOSE)
    table = login_doctor("--requests", str(requests_file), "--header", "X-Tenant: tenant-d41d8cd9", tmp_path=tmp_path)
    kept_logs = [Path(document["server_log"]).read_text(), Path(table.stdout.rsplit("the server's log: ", 1)[1].strip()).read_text()]
    for shown in [result.stdout, result.stderr, page.read_text(), table.stdout, table.stderr, *kept_logs]:
        assert LOGIN_TOKEN not in shown and LOGIN_PASSWORD not in shown and "tenant-d41d8cd9" not in shown


def test_a_server_that_fails_to_start_says_why_and_keeps_its_log(tmp_path):
    (tmp_path / "broken_start.py").write_text(
        "from fastapi import FastAPI\n"
        "app = FastAPI()\n"
        "@app.on_event('startup')\n"
        "def connect():\n"
        "    raise RuntimeError('the database at db.internal is unreachable')\n")
    result = doctor("broken_start:app", "--app-dir", str(tmp_path), database_url=f"sqlite:///{tmp_path / 'app.db'}",
                    cwd=tmp_path)
    assert result.returncode == 2
    assert "RuntimeError: the database at db.internal is unreachable" in result.stderr
    log = Path(result.stderr.rsplit("the server's log: ", 1)[1].strip())
    assert "Traceback" in log.read_text()


# --- the app's own interpreter: Python 3.8 to 3.13 ------------------------------------------------------

APP_INTERPRETERS = {  # Python: the app environment's pins (Pydantic 1.8 runs on 3.8, not on 3.11)
    "3.8": ["fastapi==0.65.2", "starlette==0.14.2", "SQLAlchemy==1.3.24", "pydantic==1.8.2", "uvicorn==0.15.0"],
    "3.13": ["fastapi==0.165.0", "starlette==1.10.0", "SQLAlchemy==2.1.9", "pydantic==2.14.4", "uvicorn==0.55.0"],
}


def app_environment(version: str) -> Path:
    """A virtualenv of that Python holding the app's pins, kept in .venvs/doctor-python<version>."""
    found = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))
    interpreter = found[-1] if found else shutil.which(f"python{version}")
    if not interpreter:
        pytest.skip(f"no Python {version} here (pyenv install {version})")
    venv = PACKAGE_PARENT / ".venvs" / f"doctor-python{version}"
    stamp = " ".join(APP_INTERPRETERS[version])
    pins = venv / ".pins"
    if not (venv / "bin" / "python").exists() or not pins.exists() or pins.read_text() != stamp:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(interpreter), "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *APP_INTERPRETERS[version]], check=True, timeout=600)
        pins.write_text(stamp)
    return venv / "bin" / "python"


@pytest.mark.timeout(900)  # may first make the app's environment: venv (120 s) and pip install (600 s)
@pytest.mark.parametrize("version", sorted(APP_INTERPRETERS))
def test_the_doctor_serves_the_app_with_its_own_interpreter_from_python_3_8_to_3_13(version, tmp_path):
    python = app_environment(version)
    result = doctor("decorator_middleware:app", "--app-dir", str(APPS), "--python", str(python), "--json",
                    database_url=f"sqlite:///{tmp_path / 'app.db'}", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["versions"]["python"].startswith(version + ".")
    assert document["versions"]["fastapi"] == APP_INTERPRETERS[version][0].split("==")[1]
    assert hazards_by_route(document)[("/report", False)] == USED_AFTER_CLOSE


def test_an_app_environment_without_uvicorn_is_told_what_it_needs_in_one_line(tmp_path):
    venv = tmp_path / "no-server"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    result = doctor("decorator_middleware:app", "--app-dir", str(APPS), "--python", str(venv / "bin" / "python"),
                    database_url=f"sqlite:///{tmp_path / 'app.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"legacy_app doctor: the app's environment ({venv / 'bin' / 'python'}) has no "
                                    "uvicorn to serve it: ")


def test_the_fixes_of_an_asyncsession_app_are_the_async_ones(tmp_path):
    result = doctor("async_apps:leaking", "--app-dir", str(APPS), database_url=f"sqlite:///{tmp_path / 'app.db'}",
                    cwd=tmp_path)
    if result.returncode == 0 and HANGUP_CANCELS_BACKGROUND:
        pytest.skip("Starlette 0.20 cancels the task before it uses the session: no hazard, no fix to show")
    fixes = result.stdout.split("\nfixes:\n", 1)[1]
    assert "app.add_middleware(AsyncDBSessionMiddleware, session_factory=async_session)" in fixes
    assert "async with async_session() as db:" in fixes and "SessionLocal" not in fixes


def write_app(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(
        "import os\n"
        "from fastapi import Depends, FastAPI, HTTPException\n"
        "from sqlalchemy import create_engine, text\n"
        "from sqlalchemy.orm import Session, sessionmaker\n"
        "engine = create_engine(os.environ['DATABASE_URL'], connect_args={'check_same_thread': False})\n"
        "SessionLocal = sessionmaker(bind=engine)\n"
        "def get_db():\n"
        "    db = SessionLocal()\n"
        "    try:\n"
        "        yield db\n"
        "    finally:\n"
        "        db.close()\n" + source)


def test_a_404_on_a_path_of_the_apps_own_openapi_makes_the_run_inconclusive(tmp_path):
    write_app(tmp_path, "gone_app", (
        "app = FastAPI()\n"
        "@app.get('/users/')\n"
        "def users(db: Session = Depends(get_db)):\n"
        "    return {'count': db.execute(text('SELECT 1')).scalar()}\n"
        "@app.get('/reports/latest')\n"
        "def latest(db: Session = Depends(get_db)):\n"
        "    raise HTTPException(status_code=404, detail='no report yet')\n"))
    result = doctor("gone_app:app", "--app-dir", str(tmp_path), "--json", database_url=f"sqlite:///{tmp_path / 'app.db'}",
                    cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert document["coverage"]["answered"] == {"200": 1, "404": 1} and document["coverage"]["used_a_session"] == 1
    assert document["inconclusive"] == ["GET /reports/latest answered 404 on a path the app's own OpenAPI lists: "
                                        "give it an id that exists (--requests)"]


def test_an_app_that_disables_its_openapi_is_told_to_give_requests(tmp_path):
    write_app(tmp_path, "hidden_app", "app = FastAPI(openapi_url=None)\n")
    result = doctor("hidden_app:app", "--app-dir", str(tmp_path), database_url=f"sqlite:///{tmp_path / 'app.db'}",
                    cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("legacy_app doctor: the app disables its OpenAPI (openapi_url=None): give --requests")


def test_a_relative_python_path_is_taken_from_where_the_command_runs(tmp_path):
    (tmp_path / "env").symlink_to(Path(sys.prefix), target_is_directory=True)  # this virtualenv, as ./env
    # The server itself runs in --app-dir: the path is made absolute first.
    result = doctor("decorator_middleware:app", "--app-dir", str(APPS), "--python", "env/bin/python",
                    database_url=f"sqlite:///{tmp_path / 'app.db'}", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "verdict: a hazard in" in result.stdout
