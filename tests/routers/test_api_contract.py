"""The tutorial's API contract, hardened, for every strategy on every database.

Input rules that never reach the database run once, in test_validation.py.
"""
from sqlalchemy import event

from ..conftest import EVERY_DATABASE, EVERY_STRATEGY, count_rows, post_raw

pytestmark = [EVERY_DATABASE, EVERY_STRATEGY]

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


def test_limit_defaults_to_100(client, database_url):
    user_id = register(client).json()["id"]
    for n in range(101):
        client.post(f"/users/{user_id}/items/", json={"title": f"t{n}"})
    assert len(client.get("/items/").json()) == 100
    assert len(client.get("/items/", params={"skip": 100}).json()) == 1


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


def test_a_body_that_is_not_json_is_415_naming_the_content_type(client, database_url):
    response = post_raw(client, "/users/", b"email=a@b.c&password=x", "application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json() == {"detail": "Content-Type must be application/json"}
    assert count_rows(database_url, "users") == 0


CANARY = "CANARY-5f0c1e"


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


def test_the_largest_published_skip_is_accepted(client):
    assert client.get("/items/", params={"skip": 2**53 - 1}).json() == []
