"""The built wheel: the slim install requires FastAPI and SQLAlchemy alone, the `service` extra what
requirements.txt lists (its one source); it holds the package only, nothing that exists only to be
measured or broken."""
import configparser
import email
import importlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
from packaging.requirements import Requirement

from legacy_app import cli
from legacy_app.db import migrate

from .support.live_server import REPO_ROOT
from .support.pinned_env import PinnedEnv
from .support.wheel import legacy_app_wheel  # noqa: F401 - a fixture
from .test_stacks import STACKS

pytestmark = pytest.mark.server  # the wheel is built by pip in a subprocess (once per run)

# Kept beside the package (tools/, benchmarks/, tests/); none of it may reach an install.
NOT_SHIPPED = ("drills", "benchmarks", "tutorial_app", "/probe/control")


def requirement_lines(text: str) -> List[str]:
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def wheel(legacy_app_wheel: Path) -> Iterator[zipfile.ZipFile]:  # noqa: F811
    with zipfile.ZipFile(legacy_app_wheel) as archive:
        yield archive


def requirements_of(wheel: zipfile.ZipFile, extra: Optional[str] = None) -> List[str]:
    """The wheel's Requires-Dist lines: the base install's, or one extra's (marker removed)."""
    (path,) = (name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
    declared = [Requirement(line) for line in email.message_from_bytes(wheel.read(path)).get_all("Requires-Dist")]
    chosen = []
    for requirement in declared:
        marker = str(requirement.marker or "")
        if (extra is None) == ("extra ==" not in marker) and (extra is None or f'extra == "{extra}"' in marker):
            requirement.marker = None
            chosen.append(str(requirement))
    return sorted(chosen)


def listed_in(name: str) -> List[str]:
    """A requirements file's lines, normalised as the wheel writes them (markers compared elsewhere: none)."""
    return sorted(str(Requirement(line.split(";")[0])) for line in requirement_lines((REPO_ROOT / name).read_text()))


def test_the_slim_install_requires_only_fastapi_and_sqlalchemy_from_the_oldest_supported_releases(wheel):
    """Each floor is the release the oldest stack of test_stacks.py pins (the oldest the tests install the
    package beside), and the newest stack's release is allowed too."""
    required = {Requirement(line).name.lower(): Requirement(line).specifier for line in requirements_of(wheel)}
    assert set(required) == {"fastapi", "sqlalchemy"}
    oldest, newest = (PinnedEnv(name).pins for name in (list(STACKS)[0], list(STACKS)[-1]))
    for name, specifier in required.items():
        assert [spec.version for spec in specifier if spec.operator == ">="] == [oldest[name]], (name, str(specifier))
        assert specifier.contains(newest[name]), (name, str(specifier), newest[name])


def test_the_service_extra_requires_exactly_what_requirements_txt_lists(wheel):
    service = requirements_of(wheel, "service")
    assert "requests" in {Requirement(line).name for line in service}  # seeding over HTTP and compare are commands
    assert service == listed_in("requirements.txt")


def test_the_otel_extra_requires_exactly_what_requirements_otel_txt_lists(wheel):
    assert requirements_of(wheel, "otel") == listed_in("requirements-otel.txt")


def test_the_fix_extra_requires_exactly_what_requirements_fix_txt_lists(wheel):
    assert requirements_of(wheel, "fix") == listed_in("requirements-fix.txt")


def test_the_wheel_says_its_public_api_is_typed(wheel):
    assert "legacy_app/py.typed" in wheel.namelist()


def test_the_wheel_holds_the_service_its_migrations_and_the_console_script(wheel):
    names = set(wheel.namelist())
    migrations = {path.relative_to(REPO_ROOT).as_posix() for path in migrate.MIGRATIONS.rglob("*")
                  if path.suffix in (".py", ".mako") and "__pycache__" not in path.parts}
    assert any("/migrations/versions/" in name for name in migrations)  # the revisions themselves
    assert {"legacy_app/main.py"} | migrations <= names, sorted(migrations - names)  # every migration: alembic runs them
    (entry_points,) = (name for name in names if name.endswith(".dist-info/entry_points.txt"))
    config = configparser.ConfigParser()
    config.read_string(wheel.read(entry_points).decode())
    module, _, function = config["console_scripts"]["legacy-app"].partition(":")
    assert getattr(importlib.import_module(module), function) is cli.main  # `legacy-app` is the command line


def test_the_wheel_holds_no_drills_benchmarks_or_test_code(wheel):
    names = wheel.namelist()
    top_level = {name.split("/")[0] for name in names}  # no tools/, tests/ or benchmarks/ beside the package
    assert [top for top in top_level if top != "legacy_app" and not top.endswith(".dist-info")] == []
    assert [name for name in names if any(word in name for word in NOT_SHIPPED)] == []


def test_no_module_in_the_wheel_serves_a_route_that_misbehaves_on_purpose(wheel):
    modules = [name for name in wheel.namelist() if name.endswith(".py")]
    assert modules
    assert [name for name in modules if "/probe/control" in wheel.read(name).decode()] == []


@pytest.mark.timeout(900)  # uv installs into a fresh .venv: sync (300 s) and two runs (120 s each)
@pytest.mark.slow
def test_uv_sync_makes_the_slim_install_and_uv_run_serves_the_command_line(tmp_path):
    """`uv sync && uv run legacy-app --help` in a fresh copy: uv's .venv gets the slim install, and
    the scripts' virtualenvs (.venvs/) are not touched."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        pytest.skip("uv is not installed in this virtualenv (requirements-test.txt brings it)")
    source = tmp_path / "clone"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".hypothesis", ".schemathesis", "build", "*.egg-info", "__pycache__", "*.db", "uv.lock"))
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    synced = subprocess.run([uv, "sync", "--quiet"], cwd=source, env=env, capture_output=True, text=True, timeout=300)
    assert synced.returncode == 0, synced.stderr
    helped = subprocess.run([uv, "run", "--quiet", "legacy-app", "--help"], cwd=source, env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: legacy_app")
    slim = subprocess.run([uv, "run", "--quiet", "python", "-c", "import legacy_app.sessions, alembic"], cwd=source,
                          env=env, capture_output=True, text=True, timeout=120)
    assert "No module named 'alembic'" in slim.stderr  # the public API imported; the service's libraries absent
    assert (source / ".venv").is_dir()  # uv's, beside the scripts' .venvs/ (which the copy leaves out)
