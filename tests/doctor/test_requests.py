"""What the doctor sends (legacy_app/doctor/requests.py): the requests file, the values one answer hands to the
next, the GETs found in an OpenAPI schema, and the secrets kept out of every output. No server: the runner's
tests serve apps; these pin the rules."""
import enum
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import fastapi
import pytest
from fastapi import APIRouter, FastAPI, Header
from fastapi import Path as PathParam
from pydantic import BaseModel

from legacy_app.doctor.requests import (
    COMMON_OPENAPI_URLS, NOT_REPORTED, Context, NotExercised, PathParameter, PreparedRequest, RequestsError, RequestSpec,
    SeenIds, Unfilled, discover, fill_path, find_schema, load, openapi_candidates,
    parse_header_options,
)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
LOGIN_ANSWER = json.dumps({"access_token": TOKEN, "token_type": "bearer"}).encode()


def write_requests(tmp_path: Path, requests: Any) -> Path:
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(requests), encoding="utf-8")
    return path


def refusal(tmp_path: Path, requests: Any, environ: Optional[Dict[str, str]] = None) -> str:
    with pytest.raises(RequestsError) as refused:
        load(write_requests(tmp_path, requests), environ or {})
    return str(refused.value)


def prepared(context: Context, spec: RequestSpec) -> PreparedRequest:
    request = context.render(spec)
    assert isinstance(request, PreparedRequest), request
    return request


def oauth2_requests(tmp_path: Path) -> List[RequestSpec]:
    return load(write_requests(tmp_path, [
        {"method": "POST", "path": "/token", "form": {"username": "alice", "password": "${DOCTOR_PASSWORD}"},
         "save": {"token": "access_token"}, "hangup": False},
        {"method": "GET", "path": "/users/me", "headers": {"Authorization": "Bearer {token}"}},
    ]), {"DOCTOR_PASSWORD": "p@ss word!"})


# --- the requests file ---

def test_todays_format_still_loads_as_plain_requests_sent_twice(tmp_path):
    specs = load(write_requests(tmp_path, [
        {"method": "get", "path": "/fail"},
        {"method": "POST", "path": "/users/", "json": {"email": "a@example.com"}, "headers": {"X-Trace": "1"}},
    ]), {})
    assert specs == [
        RequestSpec("GET", "/fail"),
        RequestSpec("POST", "/users/", {"X-Trace": "1"}, {"email": "a@example.com"}),
    ]
    assert all(spec.hangup and spec.origin == "file" and not spec.save for spec in specs)


def test_a_json_body_is_sent_as_json():
    request = prepared(Context({}), RequestSpec("POST", "/users/", json={"email": "a@example.com"}))
    assert json.loads(request.body) == {"email": "a@example.com"}
    assert request.headers == {"Content-Type": "application/json"}


def test_a_form_is_sent_urlencoded_with_its_content_type(tmp_path):
    login = oauth2_requests(tmp_path)[0]
    request = prepared(Context({"DOCTOR_PASSWORD": "p@ss word!"}), login)
    assert request.body == b"username=alice&password=p%40ss+word%21"
    assert request.headers == {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_content_type_the_request_gives_is_kept():
    spec = RequestSpec("POST", "/x", {"content-type": "application/merge-patch+json"}, json={"a": 1})
    assert prepared(Context({}), spec).headers == {"content-type": "application/merge-patch+json"}


def test_hangup_false_is_kept_and_must_be_a_boolean(tmp_path):
    assert [spec.hangup for spec in oauth2_requests(tmp_path)] == [False, True]
    assert refusal(tmp_path, [{"method": "POST", "path": "/register", "hangup": "no"}]).endswith(
        'request 1: "hangup" must be true or false')


@pytest.mark.parametrize("entry, why", [
    ({"method": "GET", "path": "/", "body": {}}, 'unknown key "body" (known: method, path, headers, json, form, save, hangup)'),
    ({"method": "POST", "path": "/", "json": {}, "form": {"a": "b"}}, 'give "json" or "form", not both'),
    ({"method": "POST", "path": "/", "form": {"a": ["b"]}}, '"form" must be an object of strings and numbers'),
    ({"method": "GET", "path": "users"}, 'needs a "path" starting with /'),
    ({"method": "GET", "path": "/a b"}, 'needs a "path" starting with /'),
    ({"method": "GET /", "path": "/"}, 'needs "method", an HTTP method such as GET'),
    ({"method": "GET", "path": "/", "headers": {"x-name": "Ж"}},
     "header names and values must be strings of Latin-1 characters (HTTP/1.1)"),
    ({"method": "GET", "path": "/", "headers": {"x-name": "a\r\nX-Injected: 1"}}, 'header "x-name": a name is'),
    ({"method": "POST", "path": "/", "save": {"my-token": "access_token"}}, '"save" must map names'),
])
def test_a_malformed_request_is_refused_in_one_line_naming_the_request_and_the_fault(entry, why, tmp_path):
    message = refusal(tmp_path, [{"method": "GET", "path": "/"}, entry])
    assert message.startswith(f"{tmp_path / 'requests.json'}: request 2: {why}")
    assert "\n" not in message


def test_a_file_that_is_not_a_non_empty_list_is_refused(tmp_path):
    assert refusal(tmp_path, []).endswith("expected a non-empty JSON list of requests")
    with pytest.raises(RequestsError, match="^cannot read requests from"):
        load(tmp_path / "missing.json", {})


def test_a_placeholder_no_earlier_request_saves_is_refused_when_the_file_is_read(tmp_path):
    message = refusal(tmp_path, [
        {"method": "POST", "path": "/token", "save": {"token": "access_token"}, "headers": {"X-Early": "{token}"}},
    ])
    assert message.endswith('request 1: {token} is not saved by an earlier request (add "save": {"token": ...} to one)')
    assert "is not saved" in refusal(tmp_path, [{"method": "GET", "path": "/users/{user_id}"}])
    assert "{tokn}" in refusal(tmp_path, [
        {"method": "POST", "path": "/token", "save": {"token": "access_token"}},
        {"method": "POST", "path": "/x", "json": {"nested": ["{tokn}"]}},
    ])


def test_double_braces_are_literal_braces(tmp_path):
    [spec] = load(write_requests(tmp_path, [{"method": "POST", "path": "/t", "json": {"text": "{{name}}"}}]), {})
    assert json.loads(prepared(Context({}), spec).body) == {"text": "{name}"}


# --- ${ENV} and --header ---

def test_an_environment_value_is_read_and_kept_out_of_every_output(tmp_path):
    context = Context({"DOCTOR_PASSWORD": "p@ss word!"})
    request = prepared(context, oauth2_requests(tmp_path)[0])
    assert "p@ss word!" in context.secrets
    assert context.redact(request.body.decode()) == "username=alice&password=***"
    assert context.redact('{"password": "p@ss word!"}') == '{"password": "***"}'


def test_an_unset_environment_variable_is_refused_naming_the_variable(tmp_path):
    message = refusal(tmp_path, [{"method": "GET", "path": "/", "headers": {"X-Api-Key": "${DOCTOR_API_KEY}"}}],
                      {"OTHER": "x"})
    assert message.endswith("request 1: ${DOCTOR_API_KEY} is not set in the environment")


def test_a_header_option_applies_to_every_request_and_its_value_is_a_secret():
    headers = parse_header_options(["X-Api-Key: ${DOCTOR_API_KEY}", "Accept:application/json"],
                                   {"DOCTOR_API_KEY": "k-123456789"})
    assert headers == [("X-Api-Key", "${DOCTOR_API_KEY}"), ("Accept", "application/json")]
    context = Context({"DOCTOR_API_KEY": "k-123456789"}, headers)
    for spec in (RequestSpec("GET", "/health"), RequestSpec("GET", "/users/", origin="openapi")):
        assert prepared(context, spec).headers == {"X-Api-Key": "k-123456789", "Accept": "application/json"}
    assert context.secrets == {"k-123456789", "application/json"}
    assert context.redact("key k-123456789") == "key ***"


def test_a_request_header_overrides_a_header_option_of_the_same_name(tmp_path):
    login, me = oauth2_requests(tmp_path)
    context = Context({"DOCTOR_PASSWORD": "pw"}, parse_header_options(["authorization: Bearer stale-token"], {}))
    context.remember(prepared(context, login), 200, LOGIN_ANSWER)
    assert prepared(context, me).headers == {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("option, why", [
    ("Authorization Bearer abcdefgh", '--header 1: expected "Name: value"'),
    (": value", '--header 1: expected "Name: value"'),
    ("X-Name: Ж", "--header X-Name: header names and values must be strings of Latin-1 characters (HTTP/1.1)"),
    ("X-Api-Key: ${DOCTOR_UNSET}", "--header X-Api-Key: ${DOCTOR_UNSET} is not set in the environment"),
])
def test_a_malformed_header_option_is_refused_without_echoing_its_value(option, why):
    with pytest.raises(RequestsError) as refused:
        parse_header_options([option], {})
    assert str(refused.value) == why
    assert "abcdefgh" not in str(refused.value)


# --- saved values: the OAuth2 password flow ---

def test_a_saved_token_fills_a_later_header_and_is_redacted(tmp_path):
    login, me = oauth2_requests(tmp_path)
    context = Context({"DOCTOR_PASSWORD": "p@ss word!"})
    assert context.remember(prepared(context, login), 200, LOGIN_ANSWER) == []
    request = prepared(context, me)
    assert request.headers == {"Authorization": f"Bearer {TOKEN}"}
    assert TOKEN in context.secrets
    assert context.redact(f"GET /users/me Authorization: Bearer {TOKEN}") == "GET /users/me Authorization: ***"
    document = {"requests": [{"path": f"/users/me?t={TOKEN}", "events": [{"detail": f"token={TOKEN}"}]}], "n": 2}
    assert context.redact_all(document) == {"requests": [{"path": "/users/me?t=***", "events": [{"detail": "token=***"}]}],
                                            "n": 2}


def test_a_failed_login_leaves_the_protected_request_not_exercised_with_the_reason(tmp_path):
    login, me = oauth2_requests(tmp_path)
    context = Context({"DOCTOR_PASSWORD": "wrong"})
    problems = context.remember(prepared(context, login), 401, b'{"detail": "Incorrect username or password"}')
    assert problems == ["could not save token: POST /token answered 401"]
    assert context.render(me) == NotExercised(
        "GET", "/users/me", "needs {token}, which no earlier response gave (POST /token answered 401)")


@pytest.mark.parametrize("status, body, why", [
    (200, b'{"token_type": "bearer"}', "the answer to POST /token has no access_token"),
    (200, b"<html>", "POST /token did not answer JSON"),
    (200, b'{"access_token": {"jwt": "x"}}', "access_token in the answer to POST /token is not a string or a number"),
    (None, b"", "POST /token got no answer"),
])
def test_a_value_the_answer_does_not_give_is_a_reason_not_a_crash(status, body, why, tmp_path):
    login, _ = oauth2_requests(tmp_path)
    context = Context({"DOCTOR_PASSWORD": "pw"})
    assert context.remember(prepared(context, login), status, body) == [f"could not save token: {why}"]
    assert context.unsaved == {"token": why}


def test_a_key_path_reaches_into_objects_and_lists_and_a_lone_placeholder_keeps_a_number_a_number(tmp_path):
    create, order = load(write_requests(tmp_path, [
        {"method": "POST", "path": "/users/", "json": {"email": "a@example.com"},
         "save": {"user_id": "data.users.0.id", "slug": "data.slug"}, "hangup": False},
        {"method": "POST", "path": "/users/{user_id}/items/{slug}", "json": {"owner_id": "{user_id}", "note": "by {user_id}"}},
    ]), {})
    context = Context({})
    context.remember(prepared(context, create), 201, b'{"data": {"users": [{"id": 42}], "slug": "a b/c"}}')
    request = prepared(context, order)
    assert request.path == "/users/42/items/a%20b%2Fc"  # a value fills one path segment
    assert json.loads(request.body) == {"owner_id": 42, "note": "by 42"}
    assert context.secrets == set()  # ids in paths and bodies are not credentials: they stay readable


def test_a_saved_value_is_a_secret_by_its_name_or_once_a_header_carries_it(tmp_path):
    login, use = load(write_requests(tmp_path, [
        {"method": "POST", "path": "/login", "save": {"api_key": "key", "user": "name", "sid": "session_ref"},
         "hangup": False},
        {"method": "GET", "path": "/users/{user}", "headers": {"X-Session": "{sid}"}},
    ]), {})
    context = Context({})
    context.remember(prepared(context, login), 200, b'{"key": "k-123456789", "name": "ann-1", "session_ref": "s-987654321"}')
    assert context.secrets == {"k-123456789"}  # saved as api_key: a credential by its name
    request = prepared(context, use)
    assert context.secrets == {"k-123456789", "s-987654321"}  # carried by a header
    assert request.path == "/users/ann-1" and context.redact(request.path) == "/users/ann-1"


# --- redaction ---

def test_redaction_replaces_the_longest_secret_first():
    context = Context({"A": "abcdefgh", "B": "abcdefgh-and-more"}, parse_header_options(
        ["X-A: ${A}", "X-B: ${B}"], {"A": "abcdefgh", "B": "abcdefgh-and-more"}))
    assert context.redact("abcdefgh-and-more abcdefgh") == "*** ***"


def test_a_short_secret_is_redacted_only_as_a_whole_word():
    context = Context({"PIN": "1234"}, parse_header_options(["X-Pin: ${PIN}"], {"PIN": "1234"}))
    assert context.redact("pin=1234 took 12345 ms at 01234") == "pin=*** took 12345 ms at 01234"


def test_an_authorization_header_written_in_the_file_is_a_secret_too():
    context = Context({})
    prepared(context, RequestSpec("GET", "/me", {"Authorization": "Basic YWxpY2U6c2VjcmV0"}))
    assert context.redact("sent Basic YWxpY2U6c2VjcmV0; logged YWxpY2U6c2VjcmV0") == "sent ***; logged ***"


# --- ids seen in answers ---

def test_seen_ids_finds_ids_and_foreign_keys_shallowest_first():
    seen = SeenIds()
    seen.add("/users/?limit=2", [
        {"id": 1, "email": "a@example.com", "items": [{"id": 7, "owner_id": 1}], "owner": {"id": 9}},
        {"id": 2, "items": [], "active": True, "flag_id": True},
    ])
    seen.add("/health", {"status": "ok"})  # no ids: not kept
    assert seen.answers == [("/users", {"id": [1, 2, 9, 7], "owner_id": [9, 1], "item_id": [7]})]


def test_fill_path_prefers_ids_the_collection_listed_then_ids_seen_by_name_then_the_schema_example():
    user_id = PathParameter("user_id", "integer", examples=(3,))
    seen = SeenIds()
    assert fill_path("/users/{user_id}", [user_id], seen) == "/users/3"
    seen.add("/items/", [{"id": 70, "user_id": 5}])
    assert fill_path("/users/{user_id}", [user_id], seen) == "/users/5"
    seen.add("/users/", [{"id": 8}])
    assert fill_path("/users/{user_id}", [user_id], seen) == "/users/8"


def test_fill_path_checks_the_type_of_an_integer_parameter():
    seen = SeenIds()
    seen.add("/items", [{"id": "abc"}, {"id": "12"}])
    assert fill_path("/items/{item_id}", [PathParameter("item_id", "integer")], seen) == "/items/12"
    seen = SeenIds()
    seen.add("/items", [{"id": "abc"}])
    with pytest.raises(Unfilled, match="^needs item_id: no integer value among the ids seen, and the schema gives no example$"):
        fill_path("/items/{item_id}", [PathParameter("item_id", "integer")], seen)


# --- discovery ---

class ModelName(str, enum.Enum):
    alexnet = "alexnet"
    lenet = "lenet"


class UserIn(BaseModel):
    email: str


# FastAPI 0.99 moved a parameter's example into its JSON Schema (`examples`), where 0.86 has `example`.
FASTAPI = tuple(int(part) for part in fastapi.__version__.split(".")[:2])
USER_ID_EXAMPLE = {"examples": [3]} if FASTAPI >= (0, 99) else {"example": 3}


def realistic_schema() -> Dict[str, Any]:
    app = FastAPI()
    router = APIRouter()

    @app.get("/health")
    def health() -> dict: ...

    @app.get("/users/")
    def list_users(skip: int = 0, limit: int = 100) -> list: ...

    @app.post("/users/")
    def create_user(user: UserIn) -> dict: ...

    @app.get("/users/{user_id}")
    def read_user(user_id: int = PathParam(..., **USER_ID_EXAMPLE)) -> dict: ...

    @app.get("/files/{file_key}")
    def read_file(file_key: str) -> dict: ...

    @app.get("/models/{model_name}")
    def read_model(model_name: ModelName) -> dict: ...

    @router.get("/items/")
    def list_items() -> list: ...

    @router.get("/items/{item_id}")
    def read_item(item_id: int) -> dict: ...

    @router.delete("/items/{item_id}")
    def delete_item(item_id: int) -> dict: ...

    @router.get("/search")
    def search(q: str) -> list: ...

    @router.get("/tenant")
    def tenant(x_tenant: str = Header(...)) -> dict: ...

    app.include_router(router, prefix="/api/v1")
    return app.openapi()


def test_discovery_exercises_gets_collections_first_and_lists_what_it_cannot():
    specs, skipped = discover(realistic_schema())
    assert [spec.path for spec in specs] == [
        "/health", "/users/", "/api/v1/items/",
        "/users/{user_id}", "/files/{file_key}", "/models/{model_name}", "/api/v1/items/{item_id}",
    ]
    assert {spec.method for spec in specs} == {"GET"} and {spec.origin for spec in specs} == {"openapi"}
    assert skipped == [
        NotExercised("POST", "/users/", "not a GET: give it in --requests"),
        NotExercised("DELETE", "/api/v1/items/{item_id}", "not a GET: give it in --requests"),
        NotExercised("GET", "/api/v1/search", "needs the query parameter q: give it in --requests"),
        NotExercised("GET", "/api/v1/tenant", "needs the header parameter x-tenant: give it in --requests"),
    ]
    parameters = {p.name: p for spec in specs for p in spec.parameters}
    assert parameters == {
        "user_id": PathParameter("user_id", "integer", (3,)),
        "file_key": PathParameter("file_key", "string"),
        "model_name": PathParameter("model_name", "string", ("alexnet", "lenet"), ("alexnet", "lenet")),
        "item_id": PathParameter("item_id", "integer"),
    }


def test_a_discovery_run_fills_paths_from_earlier_answers_and_lists_the_path_it_never_could():
    specs, _ = discover(realistic_schema())
    context = Context({})
    answers = {"/api/v1/items/": b'[{"id": 11, "owner_id": 1}, {"id": 12, "owner_id": 1}]'}
    sent: List[str] = []
    not_exercised = []
    for spec in specs:
        request = context.render(spec)
        if isinstance(request, NotExercised):
            not_exercised.append(request)
            continue
        sent.append(request.path)
        context.remember(request, 200, answers.get(request.path, b"{}"))
    assert sent == ["/health", "/users/", "/api/v1/items/", "/users/3", "/models/alexnet", "/api/v1/items/11"]
    assert not_exercised == [NotExercised("GET", "/files/{file_key}", "needs file_key: no earlier response gave "
                                          "file_key or listed ids at /files/, and the schema gives no example")]


def test_the_schema_is_asked_where_the_option_or_the_app_says_else_at_the_usual_places():
    assert openapi_candidates("/internal/schema.json", None) == ["/internal/schema.json"]
    assert openapi_candidates(None, "/api/v1/openapi.json") == ["/api/v1/openapi.json"]
    assert openapi_candidates(None, NOT_REPORTED) == openapi_candidates(None) == list(COMMON_OPENAPI_URLS)
    assert COMMON_OPENAPI_URLS[0] == "/openapi.json"


@pytest.mark.parametrize("override, reported, why", [
    (None, None, r"^the app disables its OpenAPI \(openapi_url=None\): give --requests"),
    (None, "", r"^the app disables its OpenAPI \(openapi_url=None\): give --requests"),
    ("http://localhost/openapi.json", NOT_REPORTED, "^--openapi-url must be a path starting with /"),
])
def test_a_disabled_schema_or_a_bad_openapi_url_is_said_in_one_line(override, reported, why):
    with pytest.raises(RequestsError, match=why):
        openapi_candidates(override, reported)


def test_find_schema_takes_the_first_url_answering_a_schema_and_says_what_each_answered():
    answers: Dict[str, Tuple[Optional[int], bytes]] = {
        "/openapi.json": (404, b'{"detail": "Not Found"}'), "/api/openapi.json": (200, b"<html>"),
        "/api/v1/openapi.json": (200, b'{"openapi": "3.1.0", "paths": {}}'),
    }
    assert find_schema(list(COMMON_OPENAPI_URLS), answers.__getitem__) == (
        "/api/v1/openapi.json", {"openapi": "3.1.0", "paths": {}})
    with pytest.raises(RequestsError) as refused:
        find_schema(["/openapi.json", "/api/openapi.json", "/v1/openapi.json"],
                    lambda url: answers.get(url, (None, b"")))
    assert str(refused.value) == (
        "no --requests given and no OpenAPI schema found (GET /openapi.json answered 404; GET /api/openapi.json "
        "answered 200 and no OpenAPI schema; GET /v1/openapi.json gave no answer): give --requests, or --openapi-url")


def test_a_value_too_short_to_be_a_credential_does_not_blank_the_reports_own_figures():
    context = Context({"PAGE": "7", "TENANT": "acme-1"}, parse_header_options(["X-Page: ${PAGE}"], {"PAGE": "7"}))
    assert context.secrets == set()
    assert context.redact("connection 7 checked out at 102.7 ms") == "connection 7 checked out at 102.7 ms"
