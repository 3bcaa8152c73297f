"""The tutorial's API contract, hardened, for every strategy on every database."""
import pytest
from sqlalchemy import event

from .conftest import count_rows, post_json, post_raw

PASSWORD = "chimichangas4life"


def register(client, email="deadpool@example.com", password=PASSWORD):
    return client.post("/users/", json={"email": email, "password": password})


def test_register_returns_the_tutorial_shape(client):
    response = register(client)
    assert response.status_code == 200
    body = response.json()
    assert body == {"email": "deadpool@example.com", "id": body["id"], "is_active": True, "items": []}
    assert isinstance(body["id"], int)


def test_registering_an_email_twice_is_400_whatever_its_case(client, database_url):
    assert register(client, "Deadpool@Example.com").status_code == 200
    again = register(client, "DEADPOOL@example.COM")
    assert again.status_code == 400
    assert again.json() == {"detail": "Email already registered"}
    assert count_rows(database_url, "users") == 1


def test_emails_are_stored_lower_cased(client):
    assert register(client, "Mixed.Case@Example.com").json()["email"] == "mixed.case@example.com"


def test_password_is_stored_as_an_argon2id_hash_at_or_above_the_owasp_floor(client, app):
    user_id = register(client).json()["id"]
    with app.state.session_factory() as db:
        from legacy_app.models import User

        hashed = db.get(User, user_id).hashed_password
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in hashed
    assert app.state.password_hasher.verify(hashed, PASSWORD)


def test_read_user_and_404(client):
    user_id = register(client).json()["id"]
    assert client.get(f"/users/{user_id}").json()["email"] == "deadpool@example.com"
    missing = client.get(f"/users/{user_id + 1000}")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "User not found"}


def test_create_item_for_user(client):
    user_id = register(client).json()["id"]
    response = client.post(f"/users/{user_id}/items/", json={"title": "Portal Gun", "description": "Rick's"})
    assert response.status_code == 200
    body = response.json()
    assert body == {"title": "Portal Gun", "description": "Rick's", "id": body["id"], "owner_id": user_id}
    assert client.get(f"/users/{user_id}").json()["items"] == [body]


def test_item_description_is_optional(client):
    user_id = register(client).json()["id"]
    response = client.post(f"/users/{user_id}/items/", json={"title": "Plumbus"})
    assert response.status_code == 200
    assert response.json()["description"] is None


def test_item_for_unknown_user_is_404_and_stores_nothing(client, database_url):
    response = client.post("/users/4242/items/", json={"title": "Orphan"})
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}
    assert count_rows(database_url, "items") == 0


def test_lists_are_ordered_by_id_and_paginated(client):
    ids = [register(client, f"user{n}@example.com").json()["id"] for n in range(5)]
    for user_id in ids:
        client.post(f"/users/{user_id}/items/", json={"title": f"item of {user_id}"})
    assert [u["id"] for u in client.get("/users/").json()] == sorted(ids)
    assert [u["id"] for u in client.get("/users/", params={"skip": 1, "limit": 2}).json()] == sorted(ids)[1:3]
    items = client.get("/items/").json()
    assert [i["id"] for i in items] == sorted(i["id"] for i in items)
    assert [i["owner_id"] for i in items] == sorted(ids)
    assert len(client.get("/items/", params={"skip": 3}).json()) == 2


@pytest.mark.parametrize("path", ["/users/", "/items/"])
@pytest.mark.parametrize(
    "params", [{"skip": -1}, {"limit": 0}, {"limit": -1}, {"limit": 101}, {"skip": "x"}, {"skip": 2**53}]
)
def test_pagination_out_of_bounds_is_422(client, path, params):
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


def test_limit_defaults_to_100(client, database_url):
    user_id = register(client).json()["id"]
    for n in range(101):
        client.post(f"/users/{user_id}/items/", json={"title": f"t{n}"})
    assert len(client.get("/items/").json()) == 100
    assert len(client.get("/items/", params={"skip": 100}).json()) == 1


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
def test_invalid_registrations_are_422_and_store_nothing(client, database_url, body):
    response = post_json(client, "/users/", body)
    assert response.status_code == 422
    assert count_rows(database_url, "users") == 0


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
def test_invalid_items_are_422_and_store_nothing(client, database_url, body):
    user_id = register(client).json()["id"]
    response = post_json(client, f"/users/{user_id}/items/", body)
    assert response.status_code == 422
    assert count_rows(database_url, "items") == 0


def test_bounds_are_inclusive(client):
    user_id = register(client).json()["id"]
    response = client.post(f"/users/{user_id}/items/", json={"title": "t" * 200, "description": "d" * 2000})
    assert response.status_code == 200
    assert client.get("/items/").json()[0]["description"] == "d" * 2000


def test_non_ascii_text_round_trips(client):
    user_id = register(client, "émile@exämple.com").json()["id"]
    response = client.post(f"/users/{user_id}/items/", json={"title": "🦄 Ünïcode", "description": "日本語"})
    assert response.status_code == 200
    assert client.get("/items/").json()[0]["title"] == "🦄 Ünïcode"


def test_malformed_json_is_422(client, database_url):
    response = post_raw(client, "/users/", b'{"email": ', "application/json")
    assert response.status_code == 422
    assert count_rows(database_url, "users") == 0


def test_a_body_that_is_not_json_is_422(client, database_url):
    response = post_raw(client, "/users/", b"email=a@b.c&password=x", "application/x-www-form-urlencoded")
    assert response.status_code == 422
    assert count_rows(database_url, "users") == 0


CANARY = "CANARY-5f0c1e"


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


def test_a_registration_returns_neither_the_password_nor_its_hash(client):
    response = register(client, password=CANARY)
    assert response.status_code == 200
    for secret in (CANARY, "argon2", "hashed_password", "password"):
        assert secret not in response.text


def test_health_does_not_touch_the_database(client, app):
    statements = []
    event.listen(app.state.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert statements == []
    assert app.state.engine.pool.checkedout() == 0


def test_listing_users_costs_a_constant_number_of_queries(client, app):
    def queries_for_list() -> int:
        statements = []

        def record(*args):
            statements.append(args[2])

        event.listen(app.state.engine, "before_cursor_execute", record)
        try:
            assert client.get("/users/").status_code == 200
        finally:
            event.remove(app.state.engine, "before_cursor_execute", record)
        return len(statements)

    first = register(client, "first@example.com").json()["id"]
    client.post(f"/users/{first}/items/", json={"title": "one"})
    with_one_user = queries_for_list()
    for n in range(20):
        user_id = register(client, f"many{n}@example.com").json()["id"]
        client.post(f"/users/{user_id}/items/", json={"title": "t"})
    assert queries_for_list() == with_one_user
    assert with_one_user <= 3  # users, their items (one IN query), and SQLite's explicit BEGIN


def test_users_can_be_filtered_by_email_in_any_case(client):
    register(client, "first@example.com")
    second = register(client, "second@example.com").json()
    assert client.get("/users/", params={"email": "SECOND@example.com"}).json() == [second]
    assert client.get("/users/", params={"email": "nobody@example.com"}).json() == []
    assert len(client.get("/users/").json()) == 2  # without the filter: everyone, as before


@pytest.mark.parametrize("email", ["", "x" * 321, "nul\u0000@example.com"])
def test_an_unusable_email_filter_is_422(client, email):
    assert client.get("/users/", params={"email": email}).status_code == 422


def test_the_largest_published_skip_is_accepted(client):
    assert client.get("/items/", params={"skip": 2**53 - 1}).json() == []
