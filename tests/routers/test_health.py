"""A schema behind the code is not an outage: /health/ready names it, a data route on a missing table
is a 500 whose log line names the fix, and an unreachable database is still a 503 to retry."""
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from legacy_app.db import migrate
from legacy_app.config import Settings
from legacy_app.main import create_app

from ..conftest import EVERY_STRATEGY, FAST_HASHING, count_rows


@pytest.fixture
def unmigrated_client(empty_engine, settings):
    """The service started with MIGRATE_ON_START=false on a database it did not migrate (each database;
    the default strategy, or each where the test asks for `strategy`)."""
    app = create_app(settings.with_overrides(migrate_on_start=False))
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def test_ready_is_503_naming_the_revisions_while_the_schema_is_behind_and_200_once_upgraded(empty_engine, unmigrated_client):
    migrate.upgrade(empty_engine, "0001")
    response = unmigrated_client.get("/health/ready")
    assert response.status_code == 503
    assert response.json() == {"detail": "Database schema at 0001, the code needs 0003: run db upgrade"}
    assert "retry-after" not in response.headers  # waiting will not fix it
    migrate.upgrade(empty_engine)
    response = unmigrated_client.get("/health/ready")  # checked on every call, not once at start-up
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_ready_is_503_on_a_database_no_migration_ran_on(unmigrated_client):
    response = unmigrated_client.get("/health/ready")
    assert response.status_code == 503
    assert response.json() == {"detail": "Database schema has no migration applied, the code needs 0003: run db upgrade"}


def test_ready_accepts_a_schema_newer_code_migrated(empty_engine, unmigrated_client):
    """A rolling deploy: the new release migrated to a revision this one does not know, and it keeps serving."""
    migrate.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    assert unmigrated_client.get("/health/ready").status_code == 200


@EVERY_STRATEGY  # where the strategy's session meets the missing table
def test_a_data_route_on_a_missing_table_is_500_with_a_log_line_naming_the_fix(unmigrated_client, database_url, caplog):
    caplog.set_level(logging.ERROR, logger="legacy_app")
    for method, path, body in [("GET", "/users/", None), ("GET", "/items/", None),
                               ("POST", "/users/", {"email": "a@example.com", "password": "pw"})]:
        caplog.clear()
        response = unmigrated_client.request(method, path, json=body)
        assert response.status_code == 500, (method, path, response.text)
        assert response.json() == {"detail": "Internal Server Error"}
        assert "retry-after" not in response.headers
        [record] = [r for r in caplog.records if r.name == "legacy_app"]
        message = record.getMessage()
        assert message.startswith(f"500 for {method} {path}: the database lacks a table or column the code uses (")
        assert "users" in message or "items" in message  # the driver's own words name the table
        assert "run `python -m legacy_app db upgrade`" in message


def test_an_unreachable_database_is_still_503_to_retry():
    app = create_app(Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere", migrate_on_start=False, **FAST_HASHING))
    with TestClient(app) as client:
        for path in ("/users/", "/health/ready"):
            response = client.get(path)
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
    app.state.engine.dispose()


def test_ready_is_200_on_a_migrated_database(client, database_url):
    assert client.get("/health/ready").json() == {"status": "ready"}
    assert count_rows(database_url, "users") == 0
