"""scripts/run.sh, the README's first command: serves the API, passes --workers on, stops on SIGTERM;
the virtualenv it installs runs the package from any directory; scripts/test.sh keeps pytest's exit
status and names the databases that ran."""
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from legacy_app.server.process import PACKAGE_PARENT

from .support.live_server import LiveServer

# Each test runs a script, which first makes sure its virtualenv is installed (pip, when a requirement changed).
pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

# The stack whose virtualenv runs these tests is the one the scripts must use.
STACK = "legacy" if Path(sys.prefix).name == "legacy" else "current"
VENV_BIN = PACKAGE_PARENT / ".venvs" / STACK / "bin"
RUN_SH = ["bash", str(PACKAGE_PARENT / "scripts" / "run.sh")]
needs_script_venv = pytest.mark.skipif(
    Path(sys.prefix).resolve() != VENV_BIN.parent.resolve(), reason="runs under the scripts' virtualenv only (scripts/test.sh)"
)


@pytest.mark.live
def test_run_script_serves_with_two_workers_and_stops_cleanly(tmp_path):
    env = {"STACK": STACK, "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}"}
    # PORT (and HOST) in the environment, as the README runs it; the first call may install the run requirements.
    with LiveServer(env, tmp_path / "run.log", app=RUN_SH, workers=2, address_in_environment=True, start_timeout=120) as server:
        server.wait_for_every_worker()
        assert requests.get(f"{server.url}/users/?limit=1", timeout=10).status_code == 200
    log_text = server.log()
    assert server.process.returncode == 0, log_text  # stopped by SIGTERM
    assert len(set(line for line in log_text.splitlines() if "Started server process" in line)) == 2
    assert "Traceback" not in log_text


@needs_script_venv
@pytest.mark.parametrize("command", [["legacy-app", "--help"], ["python", "-m", "legacy_app", "--help"]])
def test_the_venv_runs_the_package_from_any_directory(tmp_path, command):
    """The scripts install the package editable: an activated virtualenv needs no cd into the repository."""
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "VIRTUAL_ENV": str(VENV_BIN.parent)}  # what `source .../activate` sets
    result = subprocess.run(command, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "seed" in result.stdout and "compare" in result.stdout


@needs_script_venv
def test_the_installed_package_is_the_working_tree(tmp_path):
    """Editable: an edit in the repository is what the virtualenv runs, with no reinstall."""
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", "import legacy_app; print(legacy_app.__file__)"],
        cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == PACKAGE_PARENT / "legacy_app" / "__init__.py"


def run_test_script(tmp_path: Path, test_body: str, **database_urls: str) -> subprocess.CompletedProcess:
    test_file = tmp_path / "test_one.py"
    test_file.write_text(f"def test_one():\n    {test_body}\n")
    env = {"PATH": "/usr/bin:/bin", "STACK": STACK, **database_urls}
    return subprocess.run(["bash", str(PACKAGE_PARENT / "scripts" / "test.sh"), str(test_file), "-q", "-p", "no:cacheprovider"],
                          env=env, capture_output=True, text=True, timeout=300)


def test_test_script_exits_with_pytests_status_after_its_closing_line(tmp_path):
    passing = run_test_script(tmp_path, "assert True")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    failing = run_test_script(tmp_path, "assert False")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "1 failed" in failing.stdout
    assert failing.stdout.splitlines()[-1].startswith("databases: ")


def test_test_script_ends_naming_the_databases_that_ran_and_how_to_enable_the_others(tmp_path):
    sqlite_only = run_test_script(tmp_path, "pass").stdout.splitlines()[-1]
    assert sqlite_only.startswith("databases: SQLite ran; skipped: ")
    assert "PostgreSQL (set TEST_POSTGRES_URL=" in sqlite_only and "MariaDB (set TEST_MARIADB_URL=" in sqlite_only
    # The line reads the variables only; the test file here uses neither database.
    with_postgres = run_test_script(tmp_path, "pass", TEST_POSTGRES_URL="postgresql+psycopg://x@127.0.0.1/x").stdout
    assert with_postgres.splitlines()[-1].startswith("databases: SQLite, PostgreSQL ran; skipped: MariaDB (set TEST_MARIADB_URL=")
    both = run_test_script(tmp_path, "pass", TEST_POSTGRES_URL="postgresql://x", TEST_MARIADB_URL="mysql://x").stdout
    assert both.splitlines()[-1] == "databases: SQLite, PostgreSQL, MariaDB ran"
