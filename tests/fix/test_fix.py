"""`legacy_app fix`: the session hazards it rewrites, the ones it refuses, and every other byte left alone.

tests/fix_apps/ are apps fix has never been tuned on, written as users write them; tests/fix_apps/expected/
holds, written by hand, what each rewritten one must become, byte for byte. The doctor then checks the
rewrite on real servers: the hazard gone, every request answered as before (a body the hazard cut short
now whole). Every run works on a copy in tmp_path; the repository's apps are never written.
"""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Optional, Tuple

import fastapi
import pytest
import sqlalchemy
import starlette

from legacy_app import fix as fixing
from legacy_app.fix import CannotFix, fix_paths, render
from legacy_app.server.process import PACKAGE_PARENT

from ..support.live_server import REPO_ROOT
from ..support.app_answers import answers, finish, hazards_by_path, start_doctor

APPS = Path(__file__).parents[1] / "fix_apps"
EXPECTED = APPS / "expected"
DOCTOR_APPS = Path(__file__).parents[1] / "doctor_apps"
REWRITTEN = sorted(str(p.relative_to(EXPECTED)) for p in EXPECTED.rglob("*.py"))
# file -> (line, what the reason says)
REFUSED = {
    "committing_middleware.py": (19, "commits the session itself (a commit policy of its own)"),
    "scoped_remove.py": (17, "removes the scoped_session db_session in a middleware"),
    "timed_middleware.py": (29, 'does more than the session (`response.headers["X-DB-Session"] = "1"`)'),
    "reports_streaming.py": (34, "the route export streams its body (StreamingResponse) and reads through db"),
}
UNTOUCHED = sorted(REFUSED) + ["clean_app.py", "shop/database.py", "shop/main.py"]
USED_AFTER_CLOSE = ["session_used_after_close", "connection_leaked", "transaction_left_open"]
LEGACY_PYTHON = REPO_ROOT / ".venvs" / "legacy" / "bin" / "python"


def version(text: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


HAS_FUNCTION_SCOPE = version(fastapi.__version__) >= (0, 121)
STARLETTE_020 = starlette.__version__.startswith("0.20")
SQLALCHEMY_2 = version(sqlalchemy.__version__) >= (2, 0, 22)


def copy_apps(tmp_path: Path) -> Path:
    apps = tmp_path / "apps"
    shutil.copytree(APPS, apps, ignore=shutil.ignore_patterns("expected", "__pycache__"))
    return apps


def fake_python(tmp_path: Path, fastapi_version: Optional[str]) -> str:
    """An interpreter that answers fix's one question (FastAPI's version), as the app's would."""
    script = tmp_path / f"python-fastapi-{fastapi_version}"
    answer = f"echo {fastapi_version}" if fastapi_version else "echo 'PackageNotFoundError: fastapi' >&2; exit 1"
    script.write_text(f"#!/bin/sh\n{answer}\n")
    script.chmod(0o755)
    return str(script)


def run_fix(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "legacy_app", "fix", *args], env=env, cwd=str(cwd),
                          capture_output=True, text=True, timeout=120)


# --- the rewrites, byte for byte ----------------------------------------------------------------------


def test_write_turns_each_app_into_its_expected_file_and_leaves_the_rest_byte_for_byte(tmp_path):
    apps = copy_apps(tmp_path)
    fix_paths([apps], "write", python=fake_python(tmp_path, "0.121.0"))
    for name in REWRITTEN:
        assert (apps / name).read_bytes() == (EXPECTED / name).read_bytes(), name
    for name in UNTOUCHED:
        assert (apps / name).read_bytes() == (APPS / name).read_bytes(), name


@pytest.mark.server
def test_diff_prints_a_unified_diff_that_changes_nothing_on_disk_and_exits_0(tmp_path):
    apps = copy_apps(tmp_path)
    result = run_fix("apps", "--python", fake_python(tmp_path, "0.121.0"), cwd=tmp_path)  # --diff is the default
    assert result.returncode == 0, result.stderr
    assert "--- a/apps/inventory_basehttp.py\n+++ b/apps/inventory_basehttp.py\n" in result.stdout
    assert ("+app.add_middleware(DBSessionMiddleware, session_factory=SessionFactory, state_attribute='session')\n"
            in result.stdout)
    assert '+        scope="function",\n' in result.stdout
    for name in REWRITTEN + UNTOUCHED:
        assert (apps / name).read_bytes() == (APPS / name).read_bytes(), name
    # The refusals are listed in every mode, on stderr, with file:line: why.
    for name, (line, why) in REFUSED.items():
        assert f"apps/{name}:{line}: refused: " in result.stderr and why in result.stderr, name
    assert "requirement: add the line legacy_app>=1.1 to the app's requirements" in result.stderr


@pytest.mark.server
def test_check_exits_1_on_something_to_fix_or_refused_and_0_on_a_clean_app(tmp_path):
    apps = copy_apps(tmp_path)
    fixable = run_fix("--check", "apps/inventory_basehttp.py", cwd=tmp_path)
    assert fixable.returncode == 1 and fixable.stdout == ""
    assert "apps/inventory_basehttp.py:16: would fix: the BaseHTTPMiddleware session middleware" in fixable.stderr
    refused = run_fix("--check", "apps/committing_middleware.py", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("apps/committing_middleware.py:19: refused: commits the session itself")
    clean = run_fix("--check", "apps/clean_app.py", cwd=tmp_path)
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "", "nothing to fix (1 Python file read)\n")
    assert (apps / "inventory_basehttp.py").read_bytes() == (APPS / "inventory_basehttp.py").read_bytes()


@pytest.mark.server
def test_a_second_run_finds_nothing(tmp_path):
    apps = copy_apps(tmp_path)
    for name in REFUSED:
        (apps / name).unlink()
    python = fake_python(tmp_path, "0.121.0")
    written = run_fix("--write", "--python", python, "apps", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    read = len(list(apps.rglob("*.py")))
    assert written.stderr.endswith(f"fixed 7 in 7 files, refused 0 ({read} Python files read)\n")
    again = run_fix("--check", "--python", python, "apps", cwd=tmp_path)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", f"nothing to fix ({read} Python files read)\n")


def test_the_file_keeps_its_encoding_and_its_line_endings(tmp_path):
    latin1 = tmp_path / "catalogo_latin1.py"
    shutil.copy(APPS / "catalogo_latin1.py", latin1)
    crlf = tmp_path / "crlf_app.py"
    crlf.write_bytes((DOCTOR_APPS / "decorator_middleware.py").read_bytes().replace(b"\n", b"\r\n"))
    bom = tmp_path / "bom_app.py"
    bom.write_bytes(b"\xef\xbb\xbf" + (DOCTOR_APPS / "decorator_middleware.py").read_bytes())
    plain = tmp_path / "plain_app.py"
    shutil.copy(DOCTOR_APPS / "decorator_middleware.py", plain)
    fix_paths([latin1, crlf, bom, plain], "write")
    assert latin1.read_bytes() == (EXPECTED / "catalogo_latin1.py").read_bytes()
    assert "Catálogo" in latin1.read_bytes().decode("latin-1")
    assert b"app.add_middleware(DBSessionMiddleware, session_factory=SessionLocal)\n" in plain.read_bytes()
    assert crlf.read_bytes() == plain.read_bytes().replace(b"\n", b"\r\n")
    assert bom.read_bytes() == b"\xef\xbb\xbf" + plain.read_bytes()


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_cannot_be_rewritten_safely_is_reported_with_file_line_and_reason_and_left_alone(name, tmp_path):
    path = tmp_path / name
    shutil.copy(APPS / name, path)
    report = fix_paths([path], "write", python=fake_python(tmp_path, "0.121.0"))
    [finding] = report.findings
    line, why = REFUSED[name]
    assert (finding.status, finding.line) == ("refused", line) and why in finding.message
    assert report.changes == [] and path.read_bytes() == (APPS / name).read_bytes()


def test_the_doctors_known_answers_it_cannot_fix_are_refused(tmp_path):
    shutil.copy(DOCTOR_APPS / "scoped_session_app.py", tmp_path)
    shutil.copy(DOCTOR_APPS / "yield_dependency.py", tmp_path)  # a yield dependency that commits nothing
    report = fix_paths([tmp_path], "check", python=fake_python(tmp_path, "0.121.0"))
    assert [(f.path.name, f.line, f.status) for f in report.findings] == [("scoped_session_app.py", 23, "refused")]
    assert report.exit_code == 1


HEAD = """from fastapi import BackgroundTasks, Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker
engine = create_engine("sqlite://")
"""
MIDDLEWARE = """
@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    request.state.db = {made}
    try:
        return await call_next(request)
    finally:
        request.state.db.close()
"""
YIELD_COMMIT = """
def get_db():
    db = SessionLocal()
    try:
        yield db
        db.commit()
    finally:
        db.close()
"""


@pytest.mark.parametrize("source, line, why", [
    (HEAD + "app = FastAPI()\n" + MIDDLEWARE.format(made="SessionLocal()") + "SessionLocal = sessionmaker(engine)\n",
     9, "SessionLocal is defined after the middleware is registered; move its definition above"),
    (HEAD + "app = FastAPI()\n" + MIDDLEWARE.format(made="Session(engine)"),
     9, "it makes the session with arguments (Session(engine))"),
    (HEAD + "Scoped = scoped_session(sessionmaker(engine))\napp = FastAPI()\n" + MIDDLEWARE.format(made="Scoped()"),
     10, "the session comes from the scoped_session Scoped"),
    (HEAD + "SessionLocal = sessionmaker(engine)\napp = FastAPI()\n" + YIELD_COMMIT
     + "def current_user(db: Session = Depends(get_db)):\n    yield 'alice'\n",
     15, "the yield dependency current_user depends on it, and FastAPI refuses"),
    (HEAD + "SessionLocal = sessionmaker(engine)\napp = FastAPI()\n" + YIELD_COMMIT
     + "@app.get('/')\ndef report(tasks: BackgroundTasks, db: Session = Depends(get_db)):\n"
       "    tasks.add_task(lambda: db.execute('SELECT 1'))\n",
     16, "hands work to a background task (add_task) and reads through db"),
])
def test_unseen_shapes_it_cannot_rewrite_safely_are_refused_with_the_reason(source, line, why, tmp_path):
    path = tmp_path / "app.py"
    path.write_text(source)
    report = fix_paths([path], "check", python=fake_python(tmp_path, "0.121.0"))
    assert [(f.status, f.line) for f in report.findings] == [("refused", line)], render(report)
    assert why in report.findings[0].message and report.changes == []


@pytest.mark.parametrize("fastapi_version, expected", [
    ("0.121.0", "fixed"),
    ("0.165.0", "fixed"),
    ("0.118.0", "needs FastAPI 0.121+: upgrade fastapi to >=0.121 and run fix again, or commit in the routes"),
    ("0.105.0", "needs FastAPI 0.121+"),
    ("0.110.0", None),  # 0.106 to 0.117 commit before the response: nothing to fix
    (None, "cannot decide whether that runs after the response: FastAPI is not installed in"),
])
def test_the_depends_rewrite_follows_the_apps_own_fastapi(fastapi_version, expected, tmp_path):
    path = tmp_path / "blog_yield_commit.py"
    shutil.copy(APPS / "blog_yield_commit.py", path)
    report = fix_paths([path], "diff", python=fake_python(tmp_path, fastapi_version))
    if expected is None:
        assert report.findings == [] and report.changes == []
    elif expected == "fixed":
        [finding] = report.findings
        assert finding.status == "fixed"
        assert 'Depends(get_db, scope="function") now runs it before (lines 34, 49, 56)' in finding.message
        assert report.changes[0].after == (EXPECTED / "blog_yield_commit.py").read_text()
    else:
        [finding] = report.findings
        assert (finding.status, finding.line) == ("refused", 25) and expected in finding.message
        assert report.changes == []


def test_the_depends_of_a_dependency_in_another_file_are_rewritten_where_they_are(tmp_path):
    apps = copy_apps(tmp_path)
    report = fix_paths([apps / "shop"], "diff", python=fake_python(tmp_path, "0.121.0"))
    assert [c.path.relative_to(apps).as_posix() for c in report.changes] == ["shop/routers/items.py"]
    assert report.changes[0].after == (EXPECTED / "shop" / "routers" / "items.py").read_text()
    [finding] = report.findings
    assert finding.path.name == "database.py" and "as its `with ...begin()` block ends" in finding.message


# --- when it cannot run -------------------------------------------------------------------------------


@pytest.mark.server
def test_a_file_that_does_not_parse_exits_2_in_one_line_and_nothing_is_written(tmp_path):
    apps = copy_apps(tmp_path)
    (apps / "broken.py").write_text("def broken(:\n    pass\n")
    result = run_fix("--write", "apps", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("legacy_app fix: apps/broken.py:1:") and "cannot parse" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (apps / "inventory_basehttp.py").read_bytes() == (APPS / "inventory_basehttp.py").read_bytes()


@pytest.mark.server
def test_a_path_that_does_not_exist_exits_2_in_one_line(tmp_path):
    result = run_fix("--check", "no/such/app.py", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "legacy_app fix: no/such/app.py: no such file or directory\n"


def test_a_failed_write_leaves_the_original_whole_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "decorator_middleware.py"
    shutil.copy(DOCTOR_APPS / "decorator_middleware.py", path)

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fixing.sources.os, "replace", refuse)
    with pytest.raises(CannotFix, match="decorator_middleware.py: cannot write: No space left on device"):
        fix_paths([path], "write")
    assert path.read_bytes() == (DOCTOR_APPS / "decorator_middleware.py").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decorator_middleware.py"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
@pytest.mark.server
def test_an_unwritable_directory_exits_2_and_the_original_stays(tmp_path):
    directory = tmp_path / "readonly"
    directory.mkdir()
    shutil.copy(DOCTOR_APPS / "decorator_middleware.py", directory)
    directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = run_fix("--write", "readonly", cwd=tmp_path)
    finally:
        directory.chmod(stat.S_IRWXU)
    assert result.returncode == 2 and "cannot write" in result.stderr
    assert (directory / "decorator_middleware.py").read_bytes() == (DOCTOR_APPS / "decorator_middleware.py").read_bytes()


def test_render_lists_findings_by_file_and_line_then_the_total(tmp_path):
    shutil.copy(DOCTOR_APPS / "decorator_middleware.py", tmp_path)
    shutil.copy(DOCTOR_APPS / "scoped_session_app.py", tmp_path)
    lines = render(fix_paths([tmp_path], "check")).splitlines()
    assert lines[0].startswith(f"{tmp_path / 'decorator_middleware.py'}:21: would fix: the @app.middleware(\"http\") ")
    assert lines[1].startswith(f"{tmp_path / 'scoped_session_app.py'}:23: refused: ")
    assert lines[-1] == "would fix 1 in 1 file, refused 1 (2 Python files read)"


@pytest.mark.server
def test_a_folder_without_python_files_is_not_an_app_with_nothing_to_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_fix("--check", "empty", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", "legacy_app fix: no Python file under empty\n")


# --- verified by the doctor ---------------------------------------------------------------------------

CASES = [
    pytest.param(DOCTOR_APPS / "decorator_middleware.py", "app", [("GET", "/users/"), ("GET", "/report")], None,
                 {"/report": USED_AFTER_CLOSE}, id="decorator_middleware"),
    # The route that raises still answers 500; its session is now closed all the same.
    pytest.param(DOCTOR_APPS / "no_finally_middleware.py", "app", [("GET", "/users/"), ("GET", "/fail")], None,
                 {"/fail": ["session_not_closed"]}, id="no_finally_middleware"),
    # Starlette 0.20's BaseHTTPMiddleware cancels the background task before it reaches the closed session.
    pytest.param(DOCTOR_APPS / "async_apps.py", "leaking", [("GET", "/users/"), ("GET", "/report")], None,
                 {"/report": USED_AFTER_CLOSE}, id="async_apps-leaking",
                 marks=pytest.mark.skipif(STARLETTE_020, reason="Starlette 0.20 shows no hazard here")),
    pytest.param(DOCTOR_APPS / "decorator_middleware.py", "app", [("GET", "/users/"), ("GET", "/report")],
                 str(LEGACY_PYTHON), {"/report": USED_AFTER_CLOSE}, id="decorator_middleware-legacy-stack",
                 marks=pytest.mark.skipif(not LEGACY_PYTHON.exists(), reason=f"no {LEGACY_PYTHON}")),
    # Its sessions refuse use once closed: the decorator middleware cut the CSV short; now it is whole.
    pytest.param(APPS / "orders_local_session.py", "app",
                 [("GET", "/orders.csv"), ("GET", "/orders/1"), ("GET", "/orders/2")], None,
                 {"/orders.csv": ["error_after_response_start"]}, id="orders_local_session-cut-body",
                 marks=pytest.mark.skipif(not SQLALCHEMY_2, reason="close_resets_only needs SQLAlchemy 2.0.22+")),
    pytest.param(APPS / "inventory_basehttp.py", "app", [("GET", "/stock/"), ("GET", "/audit")], None,
                 {"/audit": USED_AFTER_CLOSE}, id="inventory_basehttp-state-session"),
    pytest.param(APPS / "blog_yield_commit.py", "app", [("POST", "/posts"), ("GET", "/posts/count"), ("GET", "/health")],
                 None, {"/posts": ["response_before_commit"]}, id="blog_yield_commit",
                 marks=pytest.mark.skipif(not HAS_FUNCTION_SCOPE, reason="Depends(scope=) needs FastAPI 0.121+")),
]


@pytest.mark.parametrize("app_file, attribute, requests, python, hazards_before", CASES)
@pytest.mark.live
@pytest.mark.slow
def test_the_doctor_finds_the_hazard_gone_and_every_answer_as_before(app_file, attribute, requests, python,
                                                                   hazards_before, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    for directory in (before, after):
        directory.mkdir()
        shutil.copy(app_file, directory)
    report = fix_paths([after], "write", python=python)
    assert [f.status for f in report.findings] == ["fixed"], render(report)
    target = f"{app_file.stem}:{attribute}"
    doctors = [start_doctor(target, d, requests, f"sqlite:///{d / 'doctor.db'}", d, python) for d in (before, after)]
    answered = [answers(target, d, requests, f"sqlite:///{d / 'served.db'}", d / "server.log", python)
                for d in (before, after)]
    found_before, found_after = (hazards_by_path(finish(doctor)) for doctor in doctors)
    assert found_before == {path: hazards_before.get(path, []) for _, path in requests}
    assert found_after == {path: [] for _, path in requests}
    for (method, path), (status, body), (status_now, body_now) in zip(requests, *answered):
        assert status_now == status, path
        if path in hazards_before and body_now != body:  # a body the hazard cut short is whole now
            assert body_now.startswith(body) and len(body_now) > len(body), path
        else:
            assert body_now == body, path
