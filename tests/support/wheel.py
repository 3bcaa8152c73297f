"""The package as users install it: one wheel, built from a copy of the work tree, once per test session.

Import the fixture into a test module (`from .support.wheel import legacy_app_wheel`) to use it.
"""
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict

import pytest

from .live_server import REPO_ROOT

# Built from a copy: the build writes build/ and *.egg-info into its source, and a stale build/lib left
# in the work tree would otherwise end up in the wheel.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv*", ".hypothesis", ".schemathesis", "build", "*.egg-info", "__pycache__", "*.db")

_built: Dict[str, Path] = {}  # one build per session, whichever modules import the fixture


def setuptools_builds_wheels_alone() -> bool:
    """From 70.1 setuptools has bdist_wheel built in; before, it needs the `wheel` package beside it."""
    try:
        metadata.version("wheel")
        return True
    except metadata.PackageNotFoundError:
        major, minor = (int(part) for part in metadata.version("setuptools").split(".")[:2])
        return (major, minor) >= (70, 1)


def build_wheel(work: Path) -> Path:
    """Build legacy_app's wheel under `work` (a fresh directory) and return its path."""
    source = work / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_COPIED)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
               "-w", str(work / "dist"), str(source)]
    if setuptools_builds_wheels_alone():
        command.append("--no-build-isolation")  # offline, with the virtualenv's setuptools
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = (work / "dist").glob("legacy_app-*.whl")
    return path


@pytest.fixture(scope="session")
def legacy_app_wheel(tmp_path_factory) -> Path:
    if "wheel" not in _built:
        _built["wheel"] = build_wheel(tmp_path_factory.mktemp("wheel"))
    return _built["wheel"]
