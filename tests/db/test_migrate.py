"""Alembic: migrations match the models, run on every database, and adopt databases create_all() made."""
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from benchmarks.tutorial_app import models as tutorial_models
from legacy_app.db import migrate
from legacy_app.config import Settings
from legacy_app.main import create_app
from legacy_app.models import Base

from ..conftest import FAST_HASHING
from ..support.live_server import REPO_ROOT


def test_migrations_build_exactly_the_models_and_downgrade_cleanly(empty_engine):
    assert migrate.revisions()[-1] == "0003"
    assert migrate.upgrade(empty_engine) is None
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]
    assert migrate.drift(empty_engine) == []
    migrate.downgrade(empty_engine, "0002")
    assert "email_canonical" not in {column["name"] for column in inspect(empty_engine).get_columns("users")}
    migrate.downgrade(empty_engine, "0001")
    assert "ix_items_owner_id" not in {index["name"] for index in inspect(empty_engine).get_indexes("items")}
    migrate.downgrade(empty_engine, "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(empty_engine)
    assert migrate.drift(empty_engine) == []


def test_the_server_migrates_an_empty_database_on_start(empty_engine, database_url):
    app = create_app(Settings(database_url=database_url, **FAST_HASHING))
    with TestClient(app) as client:
        assert client.post("/users/", json={"email": "a@example.com", "password": "pw"}).status_code == 200
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]
    app.state.engine.dispose()


def test_migrate_on_start_can_be_turned_off(empty_engine, database_url):
    app = create_app(Settings(database_url=database_url, migrate_on_start=False, **FAST_HASHING))
    with TestClient(app):
        pass
    assert "users" not in inspect(empty_engine).get_table_names()
    app.state.engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_database_created_by_the_tutorial_app_is_adopted_with_its_data(empty_engine, database_url):
    if empty_engine.dialect.name == "mysql":
        pytest.skip("the tutorial's schema (VARCHAR without length) cannot be created on MariaDB")
    tutorial_models.Base.metadata.create_all(empty_engine)  # exactly what the tutorial's main.py does
    with empty_engine.begin() as connection:
        connection.execute(text("INSERT INTO users (email, hashed_password, is_active) VALUES ('old@example.com', 'notreallyhashed', true)"))
        connection.execute(text("INSERT INTO items (title, description, owner_id) SELECT 'old item', 'kept', id FROM users"))

    app = create_app(Settings(database_url=database_url, **FAST_HASHING))
    with TestClient(app) as client:
        users = client.get("/users/").json()
        assert [(u["email"], [i["title"] for i in u["items"]]) for u in users] == [("old@example.com", ["old item"])]
        assert client.post("/users/", json={"email": "new@example.com", "password": "pw"}).status_code == 200
        assert client.post("/users/", json={"email": "OLD@example.com", "password": "pw"}).status_code == 400
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]
    app.state.engine.dispose()


def owner_index_present(engine) -> bool:
    return "ix_items_owner_id" in {index["name"] for index in inspect(engine).get_indexes("items")}


def test_every_migration_names_the_schema_objects_that_mark_it_for_adoption():
    assert list(migrate.ADOPTION_MARKERS) == migrate.revisions()


def test_adoption_stops_before_the_first_revision_whose_objects_are_missing():
    tables = {"table users", "table items"}
    assert migrate.newest_revision_held(set()) == (None, "0001")
    assert migrate.newest_revision_held(tables) == ("0001", "0002")
    assert migrate.newest_revision_held(tables | {"index items.ix_items_owner_id"}) == ("0002", "0003")
    everything = tables | {"index items.ix_items_owner_id", "index users.ix_users_email_canonical"}
    assert migrate.newest_revision_held(everything) == ("0003", None)
    assert migrate.newest_revision_held({"table items", "index items.ix_items_owner_id"}) == (None, "0001")


def test_create_all_of_the_current_models_is_stamped_at_head_and_needs_no_migration(empty_engine):
    Base.metadata.create_all(empty_engine)
    note = migrate.upgrade(empty_engine)
    assert "stamped revision 0003" in note and "index users.ix_users_email_canonical (0003)" in note
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]
    assert migrate.drift(empty_engine) == []
    assert migrate.upgrade(empty_engine) is None  # versioned now: nothing to adopt, nothing to run
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]


def test_the_server_starts_and_serves_on_a_database_made_by_create_all_of_the_current_models(empty_engine, database_url):
    Base.metadata.create_all(empty_engine)
    app = create_app(Settings(database_url=database_url, **FAST_HASHING))
    with TestClient(app) as client:
        user = client.post("/users/", json={"email": "a@example.com", "password": "pw"})
        assert user.status_code == 200
        item = client.post(f"/users/{user.json()['id']}/items/", json={"title": "first", "description": "kept"})
        assert item.status_code == 200
        assert [i["title"] for i in client.get("/items/").json()] == ["first"]
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]
    app.state.engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_create_all_of_the_tutorial_models_is_stamped_0001_and_upgraded_to_head(empty_engine):
    tutorial_models.Base.metadata.create_all(empty_engine)
    note = migrate.upgrade(empty_engine)
    assert "stamped revision 0001" in note and "but not index items.ix_items_owner_id (0002)" in note
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]
    assert owner_index_present(empty_engine)


def test_a_database_at_revision_0001_is_upgraded_to_head(empty_engine):
    migrate.upgrade(empty_engine, "0001")
    assert migrate.upgrade(empty_engine) is None  # it has a version table: migrated, not adopted
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]
    assert owner_index_present(empty_engine)
    assert migrate.drift(empty_engine) == []


def test_a_database_with_only_the_tables_of_0001_and_no_version_table_is_stamped_0001(empty_engine):
    migrate.upgrade(empty_engine, "0001")
    with empty_engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    assert "stamped revision 0001" in migrate.upgrade(empty_engine, "0001")
    assert migrate.current_revision(empty_engine) == "0001"
    migrate.upgrade(empty_engine)  # stamped, not run: revision 0002 still has its index to create
    assert owner_index_present(empty_engine)
    assert migrate.drift(empty_engine) == []


@pytest.mark.server
@pytest.mark.slow
def test_the_db_command(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "PATH": "/usr/bin:/bin"}

    def db(*args):
        return subprocess.run([sys.executable, "-m", "legacy_app", "db", *args], cwd=str(REPO_ROOT), env=env,
                              capture_output=True, text=True, timeout=120)

    missing = db("current")  # never creates the database it reports on
    assert missing.returncode == 1 and "no database at" in missing.stderr
    assert db("upgrade").returncode == 0
    assert "0003" in db("current").stdout
    check = db("check")
    assert check.returncode == 0 and "models and migrations match" in check.stdout
    assert db("downgrade", "base").returncode == 0
    assert "none" in db("current").stdout
    assert db("stamp", "0001").returncode == 0
    assert "0001" in db("current").stdout
    bad = db("upgrade", "nonexistent")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and bad.stderr.strip().count("\n") == 0
