"""`pytest -p legacy_app.doctor` in a user's own suite: the hazards per test, and --doctor-strict failing exactly those tests.

The user's suite runs in a pytest subprocess (the instrument patches SQLAlchemy and TestClient for the
whole process) against two standalone apps, each with its own engine and SessionLocal.
"""
import re
import subprocess
import sys

import pytest

from legacy_app.compat import driver_url

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.server, pytest.mark.slow]  # each test runs a pytest (or a Python) subprocess
PLUGIN = "legacy_app.doctor"

CLEAN_APP = '''
"""The tutorial's yield dependency: the session closes after the response, background tasks included."""
import os
from fastapi import Depends, FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ["DATABASE_URL"]
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
app = FastAPI()


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


@app.get("/users/")
def read_users(db: Session = Depends(get_db)):
    return {"count": db.execute(text("SELECT 1")).scalar()}
'''

LEAKING_APP = '''
"""The old tutorial's decorator middleware: closed before the background task queries the session."""
import os
from fastapi import BackgroundTasks, Depends, FastAPI, Request, Response
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ["DATABASE_URL"]
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
app = FastAPI()
reports_written = []


@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    response = Response("Internal server error", status_code=500)
    try:
        request.state.db = SessionLocal()
        response = await call_next(request)
    finally:
        request.state.db.close()
    return response


def get_db(request: Request) -> Session:
    return request.state.db


@app.get("/users/")
def read_users(db: Session = Depends(get_db)):
    return {"count": db.execute(text("SELECT 1")).scalar()}


@app.get("/report")
def report(tasks: BackgroundTasks, db: Session = Depends(get_db)):
    tasks.add_task(lambda: reports_written.append(db.execute(text("SELECT 1")).scalar()))
    return {"queued": True}
'''

USER_TESTS = '''
from fastapi.testclient import TestClient

import clean_app
import leaking_app


def test_clean_app():
    with TestClient(clean_app.app) as client:
        assert client.get("/users/").json() == {"count": 1}


def test_leaking_app_plain_route():
    assert TestClient(leaking_app.app).get("/users/").json() == {"count": 1}


def test_leaking_app_background_task():
    assert TestClient(leaking_app.app).get("/report").json() == {"queued": True}
    assert leaking_app.reports_written == [1]  # the task ran before TestClient returned


def test_leaking_app_through_httpx():
    import anyio
    import httpx

    async def report():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=leaking_app.app), base_url="http://app") as client:
            return (await client.get("/report")).json()

    assert anyio.run(report) == {"queued": True}
'''


def write_user_suite(pytester, monkeypatch, url: str):
    monkeypatch.setenv("DATABASE_URL", driver_url(url))
    pytester.makepyfile(clean_app=CLEAN_APP, leaking_app=LEAKING_APP, test_user_suite=USER_TESTS)
    # The project's own configuration (deprecation warnings as errors) stays out of the user's suite.
    pytester.makeini("[pytest]\n")
    return pytester


@pytest.fixture
def user_suite(pytester, database_url, monkeypatch):
    return write_user_suite(pytester, monkeypatch, database_url)


@pytest.fixture
def sqlite_user_suite(pytester, tmp_path, monkeypatch):
    """For what does not depend on the database: SQLite only, to spare a subprocess per server."""
    return write_user_suite(pytester, monkeypatch, f"sqlite:///{tmp_path / 'user.db'}")


def doctor_section(output: str) -> str:
    return output.split("doctor: session lifecycle of the requests the tests made", 1)[1]


def test_summary_names_the_hazards_of_the_leaking_test_only(user_suite):
    result = user_suite.runpytest_subprocess("-p", PLUGIN)
    result.assert_outcomes(passed=4)
    section = doctor_section(result.stdout.str())
    assert re.findall(r"^test_user_suite\.py::\S+", section, re.M) == [
        "test_user_suite.py::test_leaking_app_background_task", "test_user_suite.py::test_leaking_app_through_httpx"]
    # The doctor's verdict on this route when served (tests/data/doctor_sample.json), here in-process.
    assert "GET /report -> 200: session_used_after_close, connection_leaked, transaction_left_open\n" in section
    assert "session_used_after_close: session 3 began a transaction" in section
    # Judged in the test that leaked it, whether the collector brought the connection back before the
    # judgment or something still held it then (both seen, depending on the run).
    assert re.search(r"connection_leaked: connection \d+ checked out at .*(came back only through the garbage collector"
                     r"|was never checked in)", section)
    # Requests sent through httpx's ASGITransport (async suites) are recorded as TestClient's are.
    assert "2 of 4 requests with a hazard in 2 tests (fail them with --doctor-strict)" in section


def test_strict_option_fails_exactly_the_hazardous_test(user_suite):
    result = user_suite.runpytest_subprocess("-p", PLUGIN, "--doctor-strict")
    result.assert_outcomes(passed=2, failed=2)
    assert re.findall(r"^FAILED (\S+)", result.stdout.str(), re.M) == [
        "test_user_suite.py::test_leaking_app_background_task", "test_user_suite.py::test_leaking_app_through_httpx"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_clean_suite_says_so(sqlite_user_suite):
    result = sqlite_user_suite.runpytest_subprocess("-p", PLUGIN, "--doctor-strict", "-k", "not leaking_app_b and not httpx")
    result.assert_outcomes(passed=2, deselected=2)
    assert "no hazard in 2 requests" in doctor_section(result.stdout.str())


def test_without_the_plugin_nothing_is_recorded(sqlite_user_suite):
    result = sqlite_user_suite.runpytest_subprocess()
    result.assert_outcomes(passed=4)
    assert "doctor:" not in result.stdout.str()


def test_importing_the_doctor_needs_no_pytest():
    code = "import sys, legacy_app.doctor; print(sorted({'pytest', 'sqlalchemy'} & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "[]", completed.stderr


SHARED_SESSION_APP = '''
"""One module-level session for every request: one route closes it, the other queries it."""
import os
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

DATABASE_URL = os.environ["DATABASE_URL"]
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
db = sessionmaker(bind=engine)()
app = FastAPI()


@app.post("/close")
def close():
    db.close()
    return {}


@app.get("/count")
def count():
    return {"count": db.execute(text("SELECT 1")).scalar()}
'''

SHARED_SESSION_TESTS = '''
from fastapi.testclient import TestClient

import shared_session_app


def test_closes():
    assert TestClient(shared_session_app.app).post("/close").status_code == 200


def test_queries_later():
    assert TestClient(shared_session_app.app).get("/count").json() == {"count": 1}
'''


def test_a_session_closed_in_one_test_and_used_in_the_next_is_a_use_after_close(pytester, database_url, monkeypatch):
    """Judged test by test, yet what earlier tests did to a session still counts."""
    monkeypatch.setenv("DATABASE_URL", driver_url(database_url))
    pytester.makepyfile(shared_session_app=SHARED_SESSION_APP, test_shared=SHARED_SESSION_TESTS)
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_subprocess("-p", PLUGIN)
    result.assert_outcomes(passed=2)
    section = doctor_section(result.stdout.str())
    assert re.findall(r"^test_shared\.py::\S+", section, re.M) == ["test_shared.py::test_queries_later"]
    assert re.search(r"^  GET /count -> 200: session_used_after_close\b", section, re.M)


ROLLBACK_FIXTURE_TESTS = '''
"""The common fixture: every test runs in a transaction on one connection, rolled back at teardown."""
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import clean_app


@pytest.fixture
def db():
    connection = clean_app.engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection)
    clean_app.app.dependency_overrides[clean_app.get_db] = lambda: session
    yield session
    clean_app.app.dependency_overrides.clear()
    session.close()
    transaction.rollback()
    connection.close()


def test_reads_through_the_fixture_session(db):
    with TestClient(clean_app.app) as client:
        assert client.get("/users/").json() == {"count": 1}
'''


def test_a_fixture_session_rolled_back_at_teardown_is_not_charged_to_the_request(sqlite_user_suite):
    sqlite_user_suite.makepyfile(test_rollback_fixture=ROLLBACK_FIXTURE_TESTS)
    result = sqlite_user_suite.runpytest_subprocess("-p", PLUGIN, "--doctor-strict", "test_rollback_fixture.py")
    result.assert_outcomes(passed=1)
    assert "no hazard in 1 requests" in doctor_section(result.stdout.str())


def test_a_suite_that_sends_no_request_says_none_was_recorded(sqlite_user_suite):
    sqlite_user_suite.makepyfile(test_nothing="def test_nothing():\n    assert True\n")
    result = sqlite_user_suite.runpytest_subprocess("-p", PLUGIN, "test_nothing.py")
    result.assert_outcomes(passed=1)
    section = doctor_section(result.stdout.str())
    assert "no request recorded" in section and "no hazard" not in section
