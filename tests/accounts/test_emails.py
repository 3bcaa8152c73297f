"""One canonical form per email address: what registration's uniqueness and GET /users/?email= compare,
stored in users.email_canonical by revision 0003, which refuses to merge accounts that collide."""
import json
import subprocess
import sys
from urllib.parse import quote

import pytest
import requests
from alembic.util import CommandError
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from legacy_app.db import migrate
from legacy_app.config import Settings
from legacy_app.database import create_engine_from
from legacy_app.accounts.emails import canonical_email
from legacy_app.main import create_app
from legacy_app.seeding.bulk import seed as bulk_seed
from legacy_app.seeding.records import SeedUser

from ..conftest import CHEAP_HASHER, FAST_HASHING, env_for_hashing
from ..support.live_server import REPO_ROOT
from ..seeding.test_seeding import seed_over_http

# Each pair is one address to a person: the second registration must be refused.
ONE_ADDRESS = [
    ("straße@example.com", "STRASSE@example.com"),
    ("İNFO@example.com", "info@example.com"),  # dotted capital I
    ("ınfo@example.com", "INFO@example.com"),  # dotless small i
    ("ΟΔΟΣ@example.com", "οδος@example.com"),  # final sigma
    ("οδοσ@example.com", "οδος@example.com"),
    ("ｋａｔｅ@example.com", "kate@example.com"),  # fullwidth
    ("oﬀice@example.com", "office@example.com"),  # ligature
    ("x²@example.com", "x2@example.com"),  # superscript
    ("k@xn--fa-hia.de", "k@FAß.de"),  # punycode and Unicode of one domain
]
# Each pair is two addresses: mail servers deliver them apart.
TWO_ADDRESSES = [
    ("a@fass.de", "a@faß.de"),  # two registered domains
    ("a+x@example.com", "a@example.com"),  # plus-tag
    ("é@example.com", "e@example.com"),  # accent
]


@pytest.mark.parametrize("first, second", ONE_ADDRESS)
def test_spellings_a_person_calls_the_same_address_have_one_canonical_form(first, second):
    assert canonical_email(first) == canonical_email(second)


@pytest.mark.parametrize("first, second", TWO_ADDRESSES)
def test_distinct_addresses_keep_distinct_canonical_forms(first, second):
    assert canonical_email(first) != canonical_email(second)


def test_dotted_and_dotless_i_need_their_own_step_and_have_it():
    # Plain case folding leaves these apart: the documented extra step joins them.
    assert "İNFO".casefold() != "info" and "ınfo".casefold() != "info"
    assert canonical_email("İNFO@example.com") == canonical_email("ınfo@example.com") == "info@example.com"
    assert canonical_email("İNFO@example.com".lower()) == "info@example.com"  # after registration's lower()


def test_the_canonical_form_is_stable():
    for pair in ONE_ADDRESS + TWO_ADDRESSES:
        for address in pair:
            form = canonical_email(address)
            assert canonical_email(form) == form


@pytest.fixture
def api(database_url):
    app = create_app(Settings(database_url=database_url, **FAST_HASHING))
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def register(api, email: str):
    return api.post("/users/", json={"email": email, "password": "pw"})


def test_look_alike_registrations_make_one_account_and_distinct_ones_two(api):
    registered = set()
    for first, second in ONE_ADDRESS:  # a few pairs share an address (`İNFO`, `ınfo`): one account for all
        created = register(api, first)
        assert created.status_code == (400 if canonical_email(first) in registered else 200), (first, created.text)
        registered.add(canonical_email(first))
        refused = register(api, second)
        assert (refused.status_code, refused.json()) == (400, {"detail": "Email already registered"}), second
    for first, second in TWO_ADDRESSES:
        assert register(api, first).status_code == 200, first
        assert register(api, second).status_code == 200, second
    assert len(api.get("/users/").json()) == len({canonical_email(a) for a, _ in ONE_ADDRESS}) + 2 * len(TWO_ADDRESSES)


def test_the_display_email_is_kept_as_typed_lower_cased(api):
    assert register(api, "Straße@Example.com").json()["email"] == "straße@example.com"
    assert register(api, "ｋａｔｅ@example.com").json()["email"] == "ｋａｔｅ@example.com"


def lookup(api, email: str):
    reply = api.get(f"/users/?email={quote(email)}")
    assert reply.status_code == 200, reply.text
    return [user["email"] for user in reply.json()]


def test_the_email_filter_finds_the_account_by_any_of_its_forms(api):
    register(api, "Élodie@faß.de")
    stored = ["élodie@faß.de"]
    assert lookup(api, "Élodie@faß.de") == stored
    assert lookup(api, "E\u0301lodie@faß.de") == stored  # decomposed É
    assert lookup(api, "  élodie@FAß.de  ") == stored  # surrounding spaces
    assert lookup(api, "élodie@xn--fa-hia.de") == stored  # punycode domain
    assert lookup(api, "Élodie <ÉLODIE@faß.de>") == stored  # a name and the address, as registration accepts it
    assert lookup(api, "elodie@faß.de") == []  # another address
    assert lookup(api, "élodie@fass.de") == []


def test_registration_and_lookup_treat_a_named_address_alike(api):
    created = register(api, "Kate <Kate@example.com>")
    assert created.status_code == 200 and created.json()["email"] == "kate@example.com"
    assert register(api, "kate@example.com").status_code == 400
    assert lookup(api, "Kate <k@example.com>") == []
    assert lookup(api, "Someone Else <KATE@example.com>") == ["kate@example.com"]


def test_an_address_registration_refuses_is_still_looked_up_not_refused(api):
    assert lookup(api, "not an address") == []
    assert lookup(api, "old@example.test") == []  # special-use domain: never registered today, maybe stored by an older app


def test_bulk_seeding_compares_canonical_forms(database_url):
    engine = create_engine_from(Settings(database_url=database_url))
    migrate.upgrade(engine)
    try:
        users = [SeedUser("straße@example.com", "pw"), SeedUser("strasse@example.com", "pw"), SeedUser("a+x@example.com", "pw")]
        first = bulk_seed(engine, users, len(users), CHEAP_HASHER)
        assert (first.users_created, first.users_skipped) == (2, 1)
        again = bulk_seed(engine, [SeedUser("STRASSE@example.com".lower(), "pw")], 1, CHEAP_HASHER)
        assert (again.users_created, again.users_skipped) == (0, 1)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT email, email_canonical FROM users ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [("straße@example.com", "strasse@example.com"), ("a+x@example.com", "a+x@example.com")]
    finally:
        engine.dispose()


# --- revision 0003 on databases that hold accounts already ------------------------------------------


def insert_users(engine, *emails: str) -> None:
    with engine.begin() as connection:
        for email in emails:
            connection.execute(
                text("INSERT INTO users (email, hashed_password, is_active) VALUES (:email, 'x', true)"), {"email": email}
            )


def ids_of(engine, *emails: str):
    with engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT email, id FROM users")).all())
    return [rows[email] for email in emails]


def test_revision_0003_fills_the_canonical_form_of_every_existing_account(empty_engine):
    migrate.upgrade(empty_engine, "0002")
    insert_users(empty_engine, "straße@example.com", "ｋａｔｅ@example.com", "a+x@example.com")
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        forms = dict(connection.execute(text("SELECT email, email_canonical FROM users")).all())
    assert forms == {
        "straße@example.com": "strasse@example.com", "ｋａｔｅ@example.com": "kate@example.com",
        "a+x@example.com": "a+x@example.com",
    }
    assert migrate.drift(empty_engine) == []


def stored_groups(engine):
    """Ids of the stored accounts that share a canonical form, by group."""
    groups = {}
    with engine.connect() as connection:
        for id_, email in connection.execute(text("SELECT id, email FROM users ORDER BY id")):
            groups.setdefault(canonical_email(email), []).append(id_)
    return [ids for ids in groups.values() if len(ids) > 1]


def test_revision_0003_refuses_colliding_accounts_naming_them_and_changes_nothing(empty_engine):
    migrate.upgrade(empty_engine, "0002")
    # MariaDB's collation already refused some of these as one email (`straße`, `strasse`), never `ınfo`.
    for email in ("straße@example.com", "alone@example.com", "strasse@example.com", "ınfo@example.com",
                  "info@example.com", "ｋａｔｅ@example.com", "kate@example.com"):
        try:
            insert_users(empty_engine, email)
        except IntegrityError:
            assert empty_engine.dialect.name == "mysql"
    groups = stored_groups(empty_engine)
    assert groups and len(groups) <= 3
    with pytest.raises(CommandError) as refused:
        migrate.upgrade(empty_engine)
    message = str(refused.value)
    assert "nothing changed" in message and f"{len(groups)} group(s)" in message and "\n" not in message
    for ids in groups:
        assert ", ".join(map(str, ids)) in message
    assert "@" not in message  # ids, not addresses: the message may reach a log
    assert migrate.current_revision(empty_engine) == "0002"
    assert "email_canonical" not in {column["name"] for column in inspect(empty_engine).get_columns("users")}

    with empty_engine.begin() as connection:  # what an operator does: one account per address
        for ids in groups:
            for id_ in ids[1:]:
                connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": id_})
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == migrate.revisions()[-1]
    assert stored_groups(empty_engine) == []


@pytest.mark.server
def test_db_upgrade_reports_colliding_accounts_in_one_line_and_exits_1(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine_from(Settings(database_url=url))
    migrate.upgrade(engine, "0002")
    insert_users(engine, "oﬀice@example.com", "office@example.com")
    engine.dispose()
    result = subprocess.run([sys.executable, "-m", "legacy_app", "db", "upgrade"], cwd=str(REPO_ROOT),
                            env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("legacy_app db: revision 0003 refused, nothing changed: 1 group(s)")
    assert "user id: 1, 2" in result.stderr and "then run db upgrade again" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0


def test_the_http_seeder_finds_an_account_registered_in_another_spelling(live_server_factory, tmp_path):
    server = live_server_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'seeded.db'}", **env_for_hashing())
    assert requests.post(f"{server.url}/users/", json={"email": "Straße@faß.de", "password": "pw"}, timeout=30).status_code == 200
    records = tmp_path / "users.json"
    records.write_text(json.dumps([{"email": "STRASSE@xn--fa-hia.de", "password": "pw", "items": [{"title": "kept"}]}]))
    result = seed_over_http("--url", server.url, "--file", str(records))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "users: 0 created, 1 skipped, 0 failed; items: 1 created, 0 skipped, 0 failed" in result.stdout


def test_an_address_too_long_once_normalised_is_a_422_and_stores_nothing(api):
    expands = "\ufdfa" * 20 + "@example.com"  # one character that NFKC writes as 18
    assert len(expands) < 254 and len(canonical_email(expands)) > 255
    refused = register(api, expands)
    assert refused.status_code == 422 and "once normalised" in refused.text and "pw" not in refused.text
    assert api.get("/users/").json() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_revision_0003_refuses_a_stored_email_too_long_once_normalised(empty_engine):
    migrate.upgrade(empty_engine, "0002")
    insert_users(empty_engine, "\ufdfa" * 20 + "@example.com")
    with pytest.raises(CommandError, match=r"longer than 255 characters once normalised, user ids: 1 \(shorten them\)"):
        migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) == "0002"
