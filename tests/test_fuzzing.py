"""Schemathesis against the OpenAPI schema, in-process, derandomized, all default checks.

Each generated request is also checked for its own password in the response: whatever the
input, a password never comes back.
"""
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis 4 needs anyio>=4.5; the legacy stack pins anyio 3 (scripts/fuzz.sh fuzzes it live)"
)
from hypothesis import HealthCheck, settings  # noqa: E402

from legacy_app.db import migrate  # noqa: E402
from legacy_app.config import Settings  # noqa: E402
from legacy_app.main import create_app  # noqa: E402

from .conftest import FAST_HASHING  # noqa: E402

_database = Path(tempfile.mkdtemp(prefix="legacy_app_fuzz_")) / "fuzz.db"
app = create_app(Settings(database_url=f"sqlite:///{_database}", **FAST_HASHING))
migrate.upgrade(app.state.engine)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

FUZZ_SETTINGS = settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


def assert_password_not_echoed(case, response) -> None:
    body = case.body if isinstance(case.body, dict) else {}
    password = body.get("password")
    if isinstance(password, str) and len(password) >= 4 and password not in str(body.get("email")):
        assert password not in response.text


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_schema(case):
    response = case.call_and_validate()
    assert_password_not_echoed(case, response)


StatefulAPI = schema.as_state_machine()
TestStatefulAPI = StatefulAPI.TestCase
TestStatefulAPI.settings = settings(
    max_examples=30, derandomize=True, deadline=None, stateful_step_count=6, suppress_health_check=list(HealthCheck)
)
