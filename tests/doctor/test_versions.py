"""`doctor --versions`: the same requests on other FastAPI releases, each in a copy of the app's environment.

The fast tests read specs and render documents. The `versions` tests (`-m "not versions"` deselects them)
install FastAPI releases from the package index: the app's environment is a tutorial user's
(fastapi, uvicorn and SQLAlchemy at constraints/current.txt's pins), made once, and every environment,
that one included, is kept in $LEGACY_APP_DOCTOR_CACHE (default: .venvs/doctor-versions, which CI may
cache). The known answer is tests/doctor_apps/yield_commit_after.py, whose `get_db` commits after the `yield`.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from legacy_app.doctor import versions
from legacy_app.doctor.runner import CannotRun
from legacy_app.server.process import PACKAGE_PARENT

from ..support.live_server import REPO_ROOT

APPS = Path(__file__).parents[1] / "doctor_apps"
TARGET = "yield_commit_after:app"
REQUESTS = APPS / "yield_commit_after.requests.json"
CONSTRAINTS = REPO_ROOT / "constraints" / "current.txt"
TUTORIAL_PACKAGES = ("fastapi", "uvicorn", "SQLAlchemy")
STREAM_LEAK = ["session_used_after_close", "connection_leaked", "transaction_left_open"]


# --- specs, presets and the document, without installing anything


def test_specs_are_fastapi_pins_or_presets_in_order_each_once():
    assert versions.parse_specs("fastapi==0.105 fastapi==0.118.0,fastapi==0.105.0") == [
        "fastapi==0.105", "fastapi==0.118.0"]
    assert versions.parse_specs("fastapi-session-changes") == [
        "fastapi==0.105.0", "fastapi==0.106.0", "fastapi==0.117.1", "fastapi==0.118.0", "fastapi==0.121.0",
        "fastapi==newest"]
    assert versions.parse_specs("fastapi==0.99.1 fastapi-session-changes")[:2] == [
        "fastapi==0.99.1", "fastapi==0.105.0"]


@pytest.mark.parametrize("text", ["fastapi>=0.100", "starlette==0.27.0", "fastapi==0.105 fastapi", "fastapi==latest",
                                  "fastapi==0.105;rm", "", "  ,  "])
def test_anything_else_is_refused_in_one_line(text):
    with pytest.raises(CannotRun) as refused:
        versions.parse_specs(text)
    assert len(str(refused.value).splitlines()) == 1
    assert str(refused.value).startswith("--versions: ")


def test_the_cache_is_the_variables_directory_else_the_users_cache():
    assert versions.cache_root({"LEGACY_APP_DOCTOR_CACHE": "/tmp/somewhere"}) == Path("/tmp/somewhere")
    assert versions.cache_root({}) == Path.home() / ".cache" / "legacy_app" / "doctor-versions"


def request(path: str, hazards: List[str], disconnected: bool = False) -> Dict[str, Any]:
    return {"method": "GET", "path": path, "disconnected": disconnected, "status": 200, "hazards": hazards}


CLEAN = {"spec": "fastapi==0.106.0", "installed": True, "packages": {"fastapi": "0.106.0", "starlette": "0.27.0"},
         "requests": [request("/a", []), request("/a", [], disconnected=True)], "verdict": "clean", "inconclusive": []}
HAZARD = {"spec": "fastapi==0.118.0", "installed": True, "packages": {"fastapi": "0.118.0", "starlette": "0.48.0"},
          "requests": [request("/a", ["response_before_commit"])], "verdict": "hazard", "inconclusive": []}
INCONCLUSIVE = {"spec": "fastapi==0.121.0", "installed": True, "packages": {"fastapi": "0.121.0"},
                "requests": [dict(request("/a", []), status=401)], "verdict": "inconclusive",
                "inconclusive": ["GET /a answered 401: log in first"]}
NOT_INSTALLED = {"spec": "fastapi==0.0.0", "installed": False, "packages": {}, "requests": [],
                 "error": "No matching distribution found for fastapi==0.0.0"}
COULD_NOT_RUN = {"spec": "fastapi==0.65.2", "installed": True, "packages": {"fastapi": "0.65.2"}, "requests": [],
                 "error": "cannot import yield_commit_after: ImportError: ..."}


@pytest.mark.parametrize("runs, status", [
    ([CLEAN, HAZARD, NOT_INSTALLED], 1),
    ([CLEAN, NOT_INSTALLED, COULD_NOT_RUN], 0),
    ([NOT_INSTALLED, COULD_NOT_RUN], 2),
    ([], 2),
    ([CLEAN, INCONCLUSIVE], 3),  # a run that exercised nothing is never called clean
    ([HAZARD, INCONCLUSIVE], 1),
])
def test_exit_1_on_any_hazard_2_when_no_run_could_run_3_when_one_was_inconclusive_else_0(runs, status):
    assert versions.exit_status({"runs": runs}) == status


def test_the_table_has_a_row_per_version_and_request_and_one_for_what_could_not_be_installed():
    table = versions.render_versions_table({"runs": [CLEAN, HAZARD, NOT_INSTALLED, COULD_NOT_RUN]})
    lines = table.splitlines()
    assert lines[0].split() == ["FastAPI", "Starlette", "request", "status", "hazards"]
    assert lines[1].split() == ["0.106.0", "0.27.0", "GET", "/a", "200", "-"]
    assert lines[2].split() == ["GET", "/a", "(client", "hung", "up)", "200", "-"]
    assert lines[3].split() == ["0.118.0", "0.48.0", "GET", "/a", "200", "response_before_commit"]
    assert lines[4].split()[:4] == ["0.0.0", "-", "not", "installed:"]
    assert lines[4].endswith("No matching distribution found for fastapi==0.0.0")
    assert "could not run: cannot import yield_commit_after" in lines[5]
    assert lines[-1] == ("verdict: hazard on FastAPI 0.118.0; clean on FastAPI 0.106.0; could not run on FastAPI "
                         "0.65.2; not installed on FastAPI 0.0.0")
    summary = versions.render_versions_table({"runs": [CLEAN, INCONCLUSIVE]}).splitlines()[-1]
    assert summary == "verdict: clean on FastAPI 0.106.0; inconclusive on FastAPI 0.121.0"


# --- installing FastAPI releases


def installs_releases(test):
    """Marks a `versions` test: it installs FastAPI releases (cold, six environments: up to an hour)
    and the doctor serves the app on each in uvicorn."""
    for mark in (pytest.mark.versions, pytest.mark.live, pytest.mark.timeout(3600)):
        test = mark(test)
    return test


def cache_dir() -> Path:
    return Path(os.environ.get(versions.CACHE_ENV) or REPO_ROOT / ".venvs" / "doctor-versions")


def tutorial_env(cache: Path) -> Path:
    """A tutorial user's environment (FastAPI, uvicorn, SQLAlchemy at the current pins), made once; its python."""
    stamp = hashlib.sha256(CONSTRAINTS.read_bytes() + sys.version.encode()).hexdigest()[:16]
    path = cache / f"app-env-{stamp}"
    python = versions.env_python(path)
    with versions._locked(cache / f"app-env-{stamp}.lock"):
        if not (path / "made").exists():
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True, timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *TUTORIAL_PACKAGES, "-c", str(CONSTRAINTS)],
                           check=True, capture_output=True, timeout=900)
            (path / "made").write_text(stamp)
    return python


@pytest.fixture(scope="module")
def app_python() -> Path:
    return tutorial_env(cache_dir())


def doctor_versions(specs: str, app_python: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}", LEGACY_APP_DOCTOR_CACHE=str(cache_dir()),
               PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "legacy_app", "doctor", TARGET, "--app-dir", str(APPS), "--requests", str(REQUESTS),
         "--python", str(app_python), "--versions", specs, *args],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=1800)


def environments() -> Dict[str, Tuple[int, int]]:
    """{directory: (inode, mtime_ns) of what it was made with} of every FastAPI environment in the cache."""
    found = {}
    for marker in cache_dir().glob(f"fastapi-*/{versions.MARKER}"):
        stat = marker.stat()
        found[marker.parent.name] = (stat.st_ino, stat.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def session_changes(app_python, tmp_path_factory) -> Tuple[subprocess.CompletedProcess, Dict[str, Any]]:
    """The preset and a release that does not exist, once, as JSON (the slow part: cold, six installs)."""
    result = doctor_versions("fastapi-session-changes fastapi==0.0.0", app_python, tmp_path_factory.mktemp("run"),
                             "--json")
    return result, json.loads(result.stdout)


def release(run: Dict[str, Any]) -> Tuple[int, ...]:
    return tuple(int(part) for part in run["packages"]["fastapi"].split("."))


def hazards(run: Dict[str, Any], path: str, disconnected: bool = False) -> List[str]:
    [found] = [r["hazards"] for r in run["requests"] if r["path"] == path and r["disconnected"] == disconnected]
    return found


@installs_releases
def test_the_yield_dependency_commits_after_the_response_except_on_0_106_to_0_117(session_changes):
    result, document = session_changes
    runs = [run for run in document["runs"] if run["installed"]]
    assert [run["spec"] for run in runs][:5] == versions.PRESETS["fastapi-session-changes"][:5]
    assert len(runs) == 6 and all("error" not in run for run in runs), result.stderr
    for run in runs:
        version = release(run)
        early_exit = (0, 106) <= version < (0, 118)  # the code after `yield` runs before the response
        has_scope = version >= (0, 121)
        assert hazards(run, "/items") == ([] if early_exit else ["response_before_commit"]), version
        assert hazards(run, "/items/function-scope") == (
            [] if early_exit or has_scope else ["response_before_commit"]), version
        # ... and before the streamed body, which then reads through a closed session: only there.
        assert hazards(run, "/items/export") == (STREAM_LEAK if early_exit else []), version
        # Hung up: the POSTs run whole, as sent; the stream may be cancelled before its first read.
        assert hazards(run, "/items", disconnected=True) == hazards(run, "/items"), version
        assert hazards(run, "/items/export", disconnected=True) in (([], STREAM_LEAK) if early_exit else ([],)), version
    newest = runs[-1]
    assert newest["spec"] == "fastapi==" + newest["packages"]["fastapi"]
    assert result.returncode == 1


@installs_releases
def test_only_fastapi_and_what_it_requires_moved(session_changes, app_python):
    _, document = session_changes
    app = versions.describe(str(app_python))["packages"]
    for run in document["runs"]:
        if run["installed"]:
            moved = {name for name, version in run["packages"].items() if app.get(name, {}).get("version") != version}
            assert moved <= set(versions.FASTAPI_REQUIRES), run["spec"]
            assert "sqlalchemy" not in run["packages"] and "uvicorn" not in run["packages"]
    [oldest] = [run for run in document["runs"] if run["spec"] == "fastapi==0.105.0"]
    assert oldest["packages"]["starlette"].startswith("0.27.")
    assert oldest["packages"]["anyio"].startswith("3.")


@installs_releases
def test_a_release_that_cannot_be_installed_is_a_row_saying_so_and_the_others_decide_the_exit(session_changes):
    result, document = session_changes
    failed = document["runs"][-1]
    assert failed == {"spec": "fastapi==0.0.0", "installed": False, "packages": {}, "requests": [],
                      "error": failed["error"]}
    assert "fastapi==0.0.0" in failed["error"] and len(failed["error"].splitlines()) == 1
    assert "doctor --versions [7/7] fastapi==0.0.0: not installed: " in result.stderr
    assert result.returncode == 1  # the hazards of the others


@installs_releases
def test_the_json_is_one_document_of_runs_in_exactly_the_documented_shape(session_changes):
    _, document = session_changes
    assert list(document) == ["runs"]
    for run in document["runs"]:
        assert set(run) - {"error", "verdict", "inconclusive"} == {"spec", "installed", "packages", "requests"}
        assert run.get("verdict", "hazard") in ("clean", "hazard", "inconclusive")
        assert isinstance(run["spec"], str) and isinstance(run["installed"], bool)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in run["packages"].items())
        assert isinstance(run.get("error", ""), str)
        for entry in run["requests"]:
            assert list(entry) == ["method", "path", "disconnected", "status", "hazards"]
            assert isinstance(entry["disconnected"], bool) and isinstance(entry["hazards"], list)
            assert set(entry["hazards"]) <= {"session_used_after_close", "connection_leaked", "transaction_left_open",
                                             "leak_on_disconnect", "error_after_response_start",
                                             "response_before_commit"}


@installs_releases
def test_a_second_run_reuses_every_environment(session_changes, app_python, tmp_path):
    before = environments()
    result = doctor_versions("fastapi==0.105.0 fastapi==0.118.0", app_python, tmp_path)
    assert result.returncode == 1, result.stderr
    assert "installing" not in result.stderr
    assert result.stderr.count(": cached in ") == 2
    after = environments()  # (another test run sharing the cache may add its own meanwhile)
    assert {name: after.get(name) for name in before} == before  # none made again
    table = result.stdout.splitlines()
    assert table[0].split() == ["FastAPI", "Starlette", "request", "status", "hazards"]
    assert table[1].split()[0] == "0.105.0" and table[1].endswith("response_before_commit")


@installs_releases
def test_exit_2_when_no_release_could_be_installed(app_python, tmp_path):
    result = doctor_versions("fastapi==0.0.0", app_python, tmp_path, "--json")
    assert result.returncode == 2, result.stderr
    [run] = json.loads(result.stdout)["runs"]
    assert run["installed"] is False
    env = versions.VersionEnv("fastapi==0.0.0", versions.describe(str(app_python)), str(app_python), cache_dir())
    with versions._locked(env.path.with_name(env.path.name + ".lock")):
        assert not env.path.exists()  # a failed environment is not kept
