"""Request logging: one line per request (method, path, status, duration, request id), nothing secret."""
import json
import logging
import re

import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient

from legacy_app.config import Settings
from legacy_app.observability.json_log import JsonFormatter
from legacy_app.main import create_app
from asgi_correlation_id import CorrelationIdMiddleware
from starlette.middleware import Middleware

from legacy_app.http.observer import RequestObserver
from legacy_app.observability.logs import REQUEST_ID_HEADER, is_acceptable_request_id

from ..conftest import FAST_HASHING, post_json
from ..support.live_server import LiveServer

LINE = re.compile(
    r"method=(?P<method>\S+) path=(?P<path>\S+) status=(?P<status>\S+) "
    r"duration_ms=(?P<duration>\d+\.\d) request_id=(?P<request_id>\S+)$"
)
CANARY = "Canary-Passw0rd-7f3a"


@pytest.fixture
def logged_client(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="legacy_app.request")
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'log.db'}", **FAST_HASHING))
    with TestClient(app) as client:
        yield client


def request_lines(caplog) -> list:
    return [LINE.match(r.getMessage()).groupdict() for r in caplog.records if r.name == "legacy_app.request"]


def test_each_request_logs_one_line_with_method_path_status_duration_and_id(logged_client, caplog):
    caplog.clear()
    response = logged_client.get("/users/999", headers={"X-Request-ID": "req-42"})
    (line,) = request_lines(caplog)
    assert response.status_code == 404
    assert {key: value for key, value in line.items() if key != "duration"} == {
        "method": "GET", "path": "/users/999", "status": "404", "request_id": "req-42"}
    assert line["duration"]  # LINE's pattern: milliseconds with one decimal


def test_incoming_request_id_is_returned(logged_client):
    response = logged_client.get("/health", headers={"X-Request-ID": "0f1e2d3c-aaaa-4bbb-8ccc-123456789abc"})
    assert response.headers["x-request-id"] == "0f1e2d3c-aaaa-4bbb-8ccc-123456789abc"


def test_missing_request_id_is_generated_returned_and_logged(logged_client, caplog):
    caplog.clear()
    generated = logged_client.get("/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert request_lines(caplog)[0]["request_id"] == generated
    assert logged_client.get("/health").headers["x-request-id"] != generated


@pytest.mark.parametrize("unusable", ["two words", "x" * 129, "id\"quoted", "-leading-dash", "ünicode"])
def test_unusable_request_id_is_replaced_not_logged(logged_client, caplog, unusable):
    caplog.clear()
    raw = unusable.encode("utf-8")
    # Starlette 0.20's requests-based client takes latin-1 text for raw bytes; httpx takes bytes.
    header = raw.decode("latin-1") if isinstance(logged_client, requests.Session) else raw
    response = logged_client.get("/health", headers={"X-Request-ID": header})
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert unusable not in caplog.text and raw.decode("latin-1") not in caplog.text


@pytest.mark.parametrize("value, acceptable", [
    ("abc", True), ("a" * 128, True), ("trace:01.02_03-04", True), ("a" * 129, False), ("", False), ("a b", False),
])
def test_request_id_acceptance_rule(value, acceptable):
    assert is_acceptable_request_id(value) is acceptable


def test_passwords_bodies_and_query_strings_never_logged(logged_client, caplog):
    caplog.clear()
    created = post_json(logged_client, "/users/", {"email": "log-canary@example.com", "password": CANARY})
    assert created.status_code == 200
    post_json(logged_client, "/users/", {"email": "log-canary@example.com", "password": CANARY})  # 400
    post_json(logged_client, "/users/", {"email": "not an email", "password": CANARY})  # 422
    logged_client.get("/users/", params={"email": "log-canary@example.com"})
    assert [(line["method"], line["path"], line["status"]) for line in request_lines(caplog)] == [
        ("POST", "/users/", "200"), ("POST", "/users/", "400"), ("POST", "/users/", "422"), ("GET", "/users/", "200"),
    ]
    assert CANARY not in caplog.text
    assert "log-canary" not in caplog.text


def test_path_is_logged_as_sent_so_encoded_newlines_cannot_split_the_line(logged_client, caplog):
    caplog.clear()
    logged_client.get("/users/%0Aforged%20line")
    (record,) = [r for r in caplog.records if r.name == "legacy_app.request"]
    assert "\n" not in record.getMessage()
    assert request_lines(caplog)[0]["path"] == "/users/%0Aforged%20line"


def test_oversized_body_413_is_logged(logged_client, caplog):
    caplog.clear()
    response = post_json(logged_client, "/users/", {"email": "big@example.com", "password": "p" * 70_000})
    assert response.status_code == 413
    assert request_lines(caplog)[0]["status"] == "413"


def test_unhandled_error_is_logged_as_500_with_its_id(caplog):
    caplog.set_level(logging.INFO, logger="legacy_app.request")
    app = FastAPI(middleware=[
        Middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=is_acceptable_request_id),
        Middleware(RequestObserver),
    ])

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom", headers={"X-Request-ID": "boom-1"}).status_code == 500
    assert request_lines(caplog)[0]["status"] == "500"
    assert request_lines(caplog)[0]["request_id"] == "boom-1"


def test_level_above_info_logs_no_request_lines(logged_client, caplog):
    caplog.set_level(logging.WARNING, logger="legacy_app.request")
    caplog.clear()
    assert logged_client.get("/health").headers["x-request-id"]  # the id is still returned
    assert request_lines(caplog) == []


@pytest.mark.live
def test_serve_writes_request_lines_to_stderr_with_process_id(tmp_path):
    with LiveServer({"DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}"}, tmp_path / "serve.log", app="cli") as server:
        response = requests.get(f"{server.url}/users/1", headers={"X-Request-ID": "served-1"}, timeout=10)
    assert response.headers["x-request-id"] == "served-1"
    lines = [line for line in server.log().splitlines() if "request_id=served-1" in line]
    assert len(lines) == 1
    assert re.search(r" INFO \[\d+\] legacy_app\.request: method=GET path=/users/1 status=404 duration_ms=", lines[0])
    assert '"GET /users/1 HTTP/1.1" 404' not in server.log()  # uvicorn's own access line is off: one line each


@pytest.mark.parametrize("level", ["warning", "WARNING"])
@pytest.mark.live
def test_serve_log_level_from_environment(tmp_path, level):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}", "LOG_LEVEL": level}
    with LiveServer(env, tmp_path / "serve.log", app="cli") as server:
        assert requests.get(f"{server.url}/users/1", timeout=10).status_code == 404
    assert "legacy_app.request" not in server.log()


@pytest.mark.live
def test_log_format_json_gives_one_json_object_per_line_with_the_request_fields(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}", "LOG_FORMAT": "json"}
    with LiveServer(env, tmp_path / "serve.log", app="cli") as server:
        requests.get(f"{server.url}/users/1", headers={"X-Request-ID": "json-1"}, timeout=10)
        requests.post(f"{server.url}/users/", json={"email": "json-log@example.com", "password": CANARY}, timeout=10)
        requests.get(f"{server.url}/users/%0Aforged", timeout=10)
    lines = [line for line in server.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line, uvicorn's own included
    assert all(isinstance(entry, dict) for entry in entries)
    assert all({"time", "level", "pid", "logger", "message"} <= set(entry) for entry in entries)
    assert any(entry["logger"].startswith("uvicorn") for entry in entries)
    requests_logged = [entry for entry in entries if entry["logger"] == "legacy_app.request"]
    by_id = {entry["request_id"]: entry for entry in requests_logged}
    first = by_id["json-1"]
    assert {key: first[key] for key in ("method", "path", "status", "request_id")} == {
        "method": "GET", "path": "/users/1", "status": 404, "request_id": "json-1"}
    assert isinstance(first["duration_ms"], float) and first["level"] == "INFO"
    assert first["message"].startswith("method=GET path=/users/1 status=404 duration_ms=")  # the text line too
    assert [(e["method"], e["path"], e["status"]) for e in requests_logged] == [
        ("GET", "/health", 200),  # start() waiting for the server
        ("GET", "/users/1", 404), ("POST", "/users/", 200), ("GET", "/users/%0Aforged", 422)]
    assert CANARY not in server.log() and "json-log@example.com" not in server.log()


def test_json_formatter_keeps_a_multiline_message_on_one_line():
    record = logging.LogRecord("legacy_app", logging.WARNING, __file__, 1, "two\nlines %s", ("x",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["message"] == "two\nlines x"
