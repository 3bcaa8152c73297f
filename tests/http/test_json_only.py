"""A request body must say it is JSON: 415 naming the expected type otherwise, on both stacks, and
nothing stored.

The check runs outside the session strategy, before anything reaches the database: these run on the
default app (SQLite, the default strategy); test_api_contract has a 415 under every strategy and database."""
import http.client
import json

from ..conftest import count_rows, post_raw

USER = json.dumps({"email": "typed@example.com", "password": "pw"}).encode()
ITEM = json.dumps({"title": "typed"}).encode()
NOT_JSON = {"detail": "Content-Type must be application/json"}


def post_without_content_type(client, path: str, content: bytes):
    """A body with a Content-Length and no Content-Type (FastAPI 0.86 parsed these as JSON)."""
    try:
        import requests

        if isinstance(client, requests.Session):  # Starlette 0.20's TestClient
            request = requests.Request("POST", client.base_url + path, data=content).prepare()
            request.headers.pop("Content-Type", None)
            response = client.send(request)
            assert "content-type" not in {name.lower() for name in request.headers}
            return response
    except ImportError:
        pass
    request = client.build_request("POST", path, content=content)
    assert "content-type" not in request.headers
    return client.send(request)


def test_a_json_body_not_declared_as_json_is_415_and_stores_nothing(client, settings):
    user_id = client.post("/users/", json={"email": "owner@example.com", "password": "pw"}).json()["id"]
    for path, body in (("/users/", USER), (f"/users/{user_id}/items/", ITEM)):
        for content_type in ("text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
                             "application/jsonx", "json"):
            response = post_raw(client, path, body, content_type)
            assert (response.status_code, response.json()) == (415, NOT_JSON), (path, content_type)
        response = post_without_content_type(client, path, body)
        assert (response.status_code, response.json()) == (415, NOT_JSON), (path, "no content type")
    assert count_rows(settings.database_url, "users") == 1
    assert count_rows(settings.database_url, "items") == 0


def test_json_declared_with_parameters_or_a_json_suffix_is_accepted(client, settings):
    assert post_raw(client, "/users/", USER, "application/json; charset=utf-8").status_code == 200
    user = json.dumps({"email": "suffix@example.com", "password": "pw"}).encode()
    assert post_raw(client, "/users/", user, "application/vnd.api+json").status_code == 200
    assert count_rows(settings.database_url, "users") == 2


def test_what_is_not_a_json_operation_answers_as_before(client):
    assert post_raw(client, "/health", b"x", "text/plain").status_code == 405  # no such method on the path
    assert post_raw(client, "/nowhere", b"x", "text/plain").status_code == 404
    assert client.get("/users/", headers={"content-type": "text/plain"}).status_code == 200  # no body
    missing = post_raw(client, "/users/", b"", "text/plain")  # no body at all: the body is what is missing
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body"]


def test_a_chunked_body_not_declared_as_json_is_415_on_a_live_server(live_server_factory, tmp_path):
    url = f"sqlite:///{tmp_path / 'chunked.db'}"
    server = live_server_factory(DATABASE_URL=url)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/users/", body=iter([USER]), headers={"content-type": "text/plain"}, encode_chunked=True)
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (415, NOT_JSON)
    connection.close()
    assert count_rows(url, "users") == 0
