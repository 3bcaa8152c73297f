"""Input rules that never reach the database: each runs once, on one app (SQLite, the default strategy).

Validation happens before any route runs, so the session strategy and the database cannot change
the answer; the API contract for what does reach the database runs everywhere (test_api_contract).
"""
from typing import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from legacy_app.config import Settings
from legacy_app.main import create_app

from .conftest import FAST_HASHING, count_rows, post_json, post_raw

OWNER_ID = 1  # registered by the client fixture, so item bodies are judged for an existing owner
CANARY = "CANARY-5f0c1e"


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('validation') / 'validation.db'}"


@pytest.fixture(scope="module")
def client(database: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=database, **FAST_HASHING))
    with TestClient(app) as test_client:
        owner = test_client.post("/users/", json={"email": "owner@example.com", "password": "pw"}).json()
        assert owner["id"] == OWNER_ID
        yield test_client
    app.state.engine.dispose()


@pytest.fixture
def rows(database: str) -> Callable[[str], int]:
    return lambda table: count_rows(database, table)


@pytest.mark.parametrize("path", ["/users/", "/items/"])
@pytest.mark.parametrize(
    "params", [{"skip": -1}, {"limit": 0}, {"limit": -1}, {"limit": 101}, {"skip": "x"}, {"skip": 2**53}]
)
def test_pagination_out_of_bounds_is_422(client, path, params):
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


@pytest.mark.parametrize("user_id", ["-1", "abc", str(2**31), str(2**64)])
def test_user_ids_outside_the_id_column_are_422(client, user_id):
    assert client.get(f"/users/{user_id}").status_code == 422
    assert client.post(f"/users/{user_id}/items/", json={"title": "t"}).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": "pw"},
        {"email": "a@b", "password": "pw"},
        {"email": "x" * 250 + "@example.com", "password": "pw"},
        {"email": "nul\u0000@example.com", "password": "pw"},
        {"email": "ok@example.com", "password": ""},
        {"email": "ok@example.com", "password": "x" * 1025},
        {"email": "ok@example.com", "password": "bad\ud800surrogate"},
        {"email": "ok@example.com"},
        {"password": "pw"},
        {"email": ["ok@example.com"], "password": "pw"},
        {"email": "ok@example.com", "password": 12345},
    ],
)
def test_invalid_registrations_are_422_and_store_nothing(client, rows, body):
    before = rows("users")
    response = post_json(client, "/users/", body)
    assert response.status_code == 422
    assert rows("users") == before


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x" * 201},
        {"title": "ok", "description": "x" * 2001},
        {"title": ""},
        {"title": "nul\u0000"},
        {"title": "ok", "description": "lone \udc00"},
        {"description": "no title"},
        {"title": None},
        {"title": 12345},
        {"title": "ok", "description": 7},
    ],
)
def test_invalid_items_are_422_and_store_nothing(client, rows, body):
    before = rows("items")
    response = post_json(client, f"/users/{OWNER_ID}/items/", body)
    assert response.status_code == 422
    assert rows("items") == before


def test_malformed_json_is_422(client, rows):
    before = rows("users")
    response = post_raw(client, "/users/", b'{"email": ', "application/json")
    assert response.status_code == 422
    assert rows("users") == before


@pytest.mark.parametrize(
    "body",
    [
        {"password": CANARY},
        {"email": "bad", "password": CANARY},
        {"email": "ok@example.com", "password": CANARY + "x" * 1100},
        {"email": ["ok@example.com"], "password": CANARY},
        [{"email": "ok@example.com", "password": CANARY}],
    ],
)
def test_a_422_never_echoes_the_password(client, body):
    response = client.post("/users/", json=body)
    assert response.status_code == 422
    assert CANARY not in response.text


@pytest.mark.parametrize("email", ["", "x" * 321, "nul\u0000@example.com"])
def test_an_unusable_email_filter_is_422(client, email):
    assert client.get("/users/", params={"email": email}).status_code == 422
