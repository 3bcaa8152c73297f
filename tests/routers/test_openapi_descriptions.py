"""The OpenAPI schema describes what we wrote for readers, the same on both stacks.

Pydantic 1 reads a model's description with inspect.getdoc(), which inherits docstrings: an internal
docstring on a shared base class became the description of every response model on the legacy stack.
"""
import json
import os
import subprocess
from typing import Dict

import pytest

from legacy_app import compat
from legacy_app.config import Settings
from legacy_app.main import create_app

from ..support.live_server import REPO_ROOT

DUMP_DESCRIPTIONS = f"""
import json, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from legacy_app.config import Settings
from legacy_app.main import create_app
from tests.routers.test_openapi_descriptions import descriptions
print(json.dumps(descriptions(create_app(Settings(database_url="sqlite://")).openapi())))
"""


def descriptions(schema: dict) -> Dict[str, str]:
    """Every description in the schema, by its JSON pointer (RFC 6901)."""
    found: Dict[str, str] = {}

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "description" and isinstance(value, str):
                    found[path] = value
                else:
                    walk(value, f"{path}/{key.replace('~', '~0').replace('/', '~1')}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}/{index}")

    walk(schema, "")
    return found


def this_stacks_descriptions() -> Dict[str, str]:
    return descriptions(create_app(Settings(database_url="sqlite://")).openapi())


def test_no_model_carries_a_description_nobody_wrote_for_it():
    schema = create_app(Settings(database_url="sqlite://")).openapi()
    described = {name for name, model in schema["components"]["schemas"].items() if "description" in model}
    assert described == set()


def test_operations_are_described_by_their_docstrings():
    found = this_stacks_descriptions()
    assert found["/paths/~1health/get"].startswith("Liveness")
    assert found["/paths/~1users~1/post"].startswith("Register a user")


@pytest.mark.server
def test_both_stacks_publish_the_same_descriptions():
    other = ".venvs/current" if not compat.PYDANTIC_V2 else ".venvs/legacy"
    python = REPO_ROOT / other / "bin" / "python"
    if not python.exists():
        pytest.skip(f"the other stack's virtualenv {other} is not installed (scripts/test.sh with its STACK makes it)")
    result = subprocess.run(
        [str(python), "-c", DUMP_DESCRIPTIONS], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == this_stacks_descriptions()
