"""The tutorial's own tests pass against legacy_app, under every session strategy.

tests/tutorial/ holds them (its README says where each comes from); each strategy runs them in a
fresh process in a scratch directory, because they change process-wide state as the tutorial does.
"""
import os
import re
import subprocess
import sys

import pytest

from legacy_app.config import FLOOR_HASHING_ENV, STRATEGIES

from .support.live_server import REPO_ROOT

TUTORIAL_TESTS = REPO_ROOT / "tests" / "tutorial"
# file: how many tests it holds, so that a file that silently collected nothing fails
FILES = {"sql_databases_middleware.py": 6, "testing_a_database.py": 1, "crud_calls.py": 1}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.server
@pytest.mark.slow
def test_the_tutorials_tests_pass_with_only_their_imports_pointed_at_legacy_app(strategy, tmp_path):
    env = {
        **os.environ,
        **FLOOR_HASHING_ENV,
        "SESSION_STRATEGY": strategy,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DATABASE_URL", None)  # the tutorial's default: ./sql_app.db, here in tmp_path
    for name, expected in FILES.items():
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider",
             "--rootdir", str(REPO_ROOT), str(TUTORIAL_TESTS / name)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"{name} under {strategy}:\n{result.stdout}\n{result.stderr}"
        assert re.search(rf"\b{expected} passed\b", result.stdout), result.stdout
