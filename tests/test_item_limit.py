"""MAX_ITEMS_PER_USER: a user holds at most that many items (409 beyond, nothing stored), also when
creations race; so GET /users/{id}, which returns a user with all its items, has a largest size."""
import json
import subprocess
import sys
import threading
from typing import List

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from legacy_app import crud, models, schemas

from legacy_app.db import migrate
from legacy_app.config import ConfigError, Settings, environment_settings
from legacy_app.database import create_engine_from
from legacy_app.main import create_app
from legacy_app.models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH
from legacy_app.routers.params import INT32_MAX, MAX_PAGE
from legacy_app.seeding.bulk import seed
from legacy_app.seeding.records import generated
from legacy_app.sessions import make_session_factory

from .conftest import CHEAP_HASHER, EVERY_STRATEGY, FAST_HASHING, count_rows, env_for_hashing
from .support.live_server import REPO_ROOT


def app_with(database_url: str, **settings):
    return create_app(Settings(database_url=database_url, **FAST_HASHING, **settings))


@EVERY_STRATEGY
def test_an_item_beyond_the_bound_is_409_and_stores_nothing(settings, database_url):
    app = create_app(settings.with_overrides(max_items_per_user=3))  # under each session strategy
    with TestClient(app) as client:
        full = client.post("/users/", json={"email": "full@example.com", "password": "pw"}).json()["id"]
        other = client.post("/users/", json={"email": "other@example.com", "password": "pw"}).json()["id"]
        for n in range(3):
            assert client.post(f"/users/{full}/items/", json={"title": f"item {n}"}).status_code == 200
        refused = client.post(f"/users/{full}/items/", json={"title": "one too many"})
        assert (refused.status_code, refused.json()) == (409, {"detail": "User already has the maximum of 3 items"})
        assert client.post(f"/users/{other}/items/", json={"title": "one too many"}).status_code == 200  # same body, other owner
        assert [item["title"] for item in client.get(f"/users/{full}").json()["items"]] == ["item 0", "item 1", "item 2"]
        assert client.post("/users/999999/items/", json={"title": "x"}).status_code == 404  # unchanged
    app.state.engine.dispose()
    assert count_rows(database_url, "items") == 4


def test_the_tutorial_call_shape_takes_the_bound_from_the_environment(database_url, monkeypatch):
    engine = create_engine_from(Settings(database_url=database_url))
    migrate.upgrade(engine)
    db = make_session_factory(engine)()
    try:
        with engine.begin() as connection:
            owner = connection.execute(insert(models.User.__table__).values(email="t@example.com")).inserted_primary_key[0]
        monkeypatch.setenv("MAX_ITEMS_PER_USER", "2")
        environment_settings.cache_clear()  # the environment is read once per process
        for n in range(2):
            assert crud.create_user_item(db, schemas.ItemCreate(title=f"item {n}"), owner) is not None
        with pytest.raises(crud.ItemLimitReached):
            crud.create_user_item(db, schemas.ItemCreate(title="item 2"), owner)
        assert not db.in_transaction()  # refused: rolled back, no connection held
    finally:
        db.close()
        engine.dispose()
        monkeypatch.undo()
        environment_settings.cache_clear()
    assert count_rows(database_url, "items") == 2


@pytest.mark.parametrize("bad", ["0", "-1", "many"])
def test_max_items_per_user_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="MAX_ITEMS_PER_USER"):
        Settings.from_env({"MAX_ITEMS_PER_USER": bad})


def test_concurrent_creations_for_one_user_never_overshoot_the_bound(database_url):
    """24 sessions on their own connections each add an item to one user at once; 5 may."""
    bound, writers = 5, 24
    engine = create_engine_from(Settings(database_url=database_url, pool_size=writers))
    migrate.upgrade(engine)
    with engine.begin() as connection:
        owner = connection.execute(insert(models.User.__table__).values(email="race@example.com")).inserted_primary_key[0]
    factory = make_session_factory(engine)
    start = threading.Barrier(writers)
    outcomes: List[str] = []

    def writer(n: int) -> None:
        db = factory()
        try:
            start.wait()
            crud.create_user_item(db, schemas.ItemCreate(title=f"race {n}"), owner, max_items=bound)
            outcomes.append("stored")
        except crud.ItemLimitReached:
            outcomes.append("refused")
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert sorted(outcomes) == ["refused"] * (writers - bound) + ["stored"] * bound
    assert count_rows(database_url, "items") == bound


# --- the largest responses ------------------------------------------------------------------------
# Every character a title, description or email may hold costs at most 6 bytes of JSON: a control
# character is written \u0001 (a 4-byte UTF-8 character is one character of the length limits).
WORST_CHARACTER = "\x01"
EMAIL_COLUMN_LENGTH = models.User.__table__.c.email.type.length


def worst_user(user_id: int, item_ids: range) -> dict:
    return {
        "email": WORST_CHARACTER * EMAIL_COLUMN_LENGTH, "id": user_id, "is_active": False,
        "items": [
            {"title": WORST_CHARACTER * TITLE_MAX_LENGTH, "description": WORST_CHARACTER * DESCRIPTION_MAX_LENGTH,
             "id": item_id, "owner_id": user_id}
            for item_id in item_ids
        ],
    }


def json_bytes(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def store(engine, users: List[dict]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(models.User.__table__), [
            {"id": user["id"], "email": user["email"], "email_canonical": str(user["id"]), "is_active": user["is_active"]}
            for user in users
        ])
        connection.execute(insert(models.Item.__table__), [item for user in users for item in user["items"]])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the JSON is the same on every database
def test_the_largest_storable_user_response_is_exactly_its_computed_size(database_url):
    """A user at the default bound with every field at its longest, the widest characters and the
    largest ids: GET /users/{id} is exactly that many bytes, and no larger user can be stored."""
    bound = Settings().max_items_per_user
    user = worst_user(INT32_MAX, range(INT32_MAX - bound + 1, INT32_MAX + 1))
    app = app_with(database_url)
    with TestClient(app) as client:
        store(app.state.engine, [user])
        reply = client.get(f"/users/{INT32_MAX}")
        assert reply.status_code == 200
        assert len(reply.content) == json_bytes(user)  # the figure docs/api.md gives under "The largest responses"
        assert client.post(f"/users/{INT32_MAX}/items/", json={"title": "x"}).status_code == 409
    app.state.engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_page_of_users_is_at_most_a_full_page_of_the_largest_users(database_url):
    """Built with a bound of 2 (a page at the default bound is 1.3 GB): the size is the formula's."""
    bound = 2
    users = [worst_user(INT32_MAX - n, range(INT32_MAX - bound * (n + 1) + 1, INT32_MAX - bound * n + 1)) for n in range(MAX_PAGE)]
    users.sort(key=lambda user: user["id"])
    app = app_with(database_url, max_items_per_user=bound)
    with TestClient(app) as client:
        store(app.state.engine, users)
        reply = client.get(f"/users/?limit={MAX_PAGE}")
        assert reply.status_code == 200 and len(reply.json()) == MAX_PAGE
        assert len(reply.content) == json_bytes(users) == 2 + MAX_PAGE * json_bytes(users[0]) + (MAX_PAGE - 1)
    app.state.engine.dispose()


def test_bulk_seeding_stores_no_item_beyond_the_bound_and_says_so(database_url):
    engine = create_engine_from(Settings(database_url=database_url))
    migrate.upgrade(engine)
    try:
        first = seed(engine, generated(2, 3, "pw"), 2, CHEAP_HASHER, max_items=4)
        assert (first.items_created, first.items_over_limit) == (6, 0) and "over" not in first.summary()
        again = seed(engine, generated(2, 6, "pw"), 2, CHEAP_HASHER, max_items=4)
        assert (again.items_created, again.items_skipped, again.items_over_limit) == (2, 6, 4)
        assert "4 over MAX_ITEMS_PER_USER (not stored)" in again.summary()
    finally:
        engine.dispose()
    assert count_rows(database_url, "items") == 8


@pytest.mark.server
def test_the_seed_command_exits_1_when_items_were_over_the_bound(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'seed.db'}", "MAX_ITEMS_PER_USER": "2", "PATH": "/usr/bin:/bin",
           **env_for_hashing()}
    result = subprocess.run([sys.executable, "-m", "legacy_app", "seed", "--users", "1", "--items-per-user", "3"],
                            cwd=str(REPO_ROOT), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "items: 2 created, 0 skipped, 1 over MAX_ITEMS_PER_USER (not stored)" in result.stdout
