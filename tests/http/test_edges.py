"""HTTP's edges, against a real uvicorn: ambiguous framing, slash redirects and Host, HEAD, a client
leaving mid-body, control characters in logged paths.

HEAD and a client leaving mid-body run under every session strategy (the http-middleware one wraps
the response and the body read); framing and slashes are decided outside the strategy (RequestEdges,
uvicorn's parser) and run under the default one."""
import asyncio
import http.client
import json
import logging
import re
import socket
from typing import Dict, Iterator, Tuple

import pytest
import requests

from legacy_app.config import STRATEGIES, Settings
from legacy_app.http.errors import pool_timeout
from legacy_app.observability.json_log import JsonFormatter
from legacy_app.main import create_app
from legacy_app.http.observer import path_as_sent

from ..conftest import DEFAULT_STRATEGY, FAST_HASHING
from ..support.live_server import LiveServer, wait_until

PARSERS = ("httptools", "h11")


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[Dict[Tuple[str, str], LiveServer]]:
    """One live server per (strategy, HTTP parser), started on first use, each on its own SQLite file."""
    started: Dict[Tuple[str, str], LiveServer] = {}
    yield started
    for server in started.values():
        server.stop()


def live(servers, tmp_path_factory, strategy: str, parser: str = "httptools") -> LiveServer:
    """`serve` (which logs each request) for httptools, its default parser; plain uvicorn for h11."""
    key = (strategy, parser)
    if key not in servers:
        directory = tmp_path_factory.mktemp(f"{strategy}-{parser}")
        env = {"DATABASE_URL": f"sqlite:///{directory / 'edges.db'}", "SESSION_STRATEGY": strategy}
        if parser == "h11":
            server = LiveServer(env, directory / "server.log", extra_args=["--http", "h11"])
        else:
            server = LiveServer(env, directory / "server.log", app="cli")
        servers[key] = server.start()
    return servers[key]


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> Tuple[bytes, bool]:
    """Everything the server sends, and whether it closed the connection (False: still open at `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.live
def test_content_length_with_transfer_encoding_is_400_and_the_smuggled_request_gets_no_answer(
    servers, tmp_path_factory, parser
):
    server = live(servers, tmp_path_factory, DEFAULT_STRATEGY, parser)
    smuggled = b"GET /users/?email=smuggled@example.com HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    request = (
        b"POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)
    ) + body
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request)
        answer, closed = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # nothing answered the request hidden in the body
    assert closed
    assert "Traceback" not in server.log()


@pytest.mark.live
def test_paths_without_the_slash_are_served_not_redirected_so_host_is_never_used(servers, tmp_path_factory):
    server = live(servers, tmp_path_factory, DEFAULT_STRATEGY)
    with requests.Session() as client:
        created = client.post(f"{server.url}/users", json={"email": "slash@example.com", "password": "pw"},
                              headers={"Host": "evil.example"}, allow_redirects=False)
        assert created.status_code == 200, created.text
        assert "location" not in created.headers
        user_id = created.json()["id"]
        item = client.post(f"{server.url}/users/{user_id}/items", json={"title": "t"}, allow_redirects=False)
        assert item.status_code == 200, item.text
        for path in ("/users", "/items"):
            plain, slashed = client.get(server.url + path, allow_redirects=False), client.get(f"{server.url}{path}/")
            assert plain.status_code == 200 and plain.json() == slashed.json()
        # A slash the route does not have is a 404, not a redirect either.
        extra_slash = client.get(f"{server.url}/health/", headers={"Host": "evil.example"}, allow_redirects=False)
        assert extra_slash.status_code == 404 and "location" not in extra_slash.headers
        assert sorted(client.get(f"{server.url}/openapi.json").json()["paths"]) == [
            "/health", "/health/ready", "/items/", "/users/", "/users/{user_id}", "/users/{user_id}/items/",
        ]


VARYING = {"date", "x-request-id", "content-length"}  # content-length: /metrics counts the GET itself


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.live
def test_head_answers_wherever_get_does_with_the_same_status_and_headers_and_no_body(servers, tmp_path_factory, strategy):
    server = live(servers, tmp_path_factory, strategy)
    user_id = requests.post(f"{server.url}/users/", json={"email": f"head-{strategy}@example.com", "password": "pw"}).json()["id"]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for path in ("/health", "/health/ready", f"/users/{user_id}", "/users/999", "/users/", "/users", "/items/",
                     "/docs", "/openapi.json", "/metrics", f"/users/{user_id}/items/"):
            answers = {}
            for method in ("GET", "HEAD"):
                connection.request(method, path)
                response = connection.getresponse()
                answers[method] = (response.status, {k.lower(): v for k, v in response.getheaders()
                                                     if k.lower() not in VARYING}, response.read())
            assert answers["HEAD"][:2] == answers["GET"][:2], path
            assert answers["HEAD"][2] == b""
            # On the same connection: had the HEAD's answer carried a body, this would not parse.
            connection.request("GET", "/health")
            assert connection.getresponse().read() == b'{"status":"ok"}'
    finally:
        connection.close()
    assert re.search(rf"method=HEAD path=/users/{user_id} status=200 ", server.log())
    assert requests.head(f"{server.url}/users/{user_id}/items/").headers["allow"] == "POST"


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.live
def test_a_client_that_leaves_mid_body_is_logged_and_counted_as_disconnected_not_as_a_400(servers, tmp_path_factory, strategy):
    server = live(servers, tmp_path_factory, strategy)
    before = posts_counted(server.url)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-Request-ID: left-mid-body-" + strategy.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"email\":")
    line = wait_until(
        lambda: next((l for l in server.log().splitlines() if f"request_id=left-mid-body-{strategy}" in l), None),
        message="the request line", log=server.log,
    )
    assert "status=- " in line and line.endswith("client_disconnected=true"), line
    assert "Traceback" not in server.log()
    after = posts_counted(server.url)
    assert after.get("none", 0) == before.get("none", 0) + 1, (before, after)  # as docs/observability.md says
    assert after.get("400", 0) == before.get("400", 0), (before, after)


def posts_counted(url: str) -> dict:
    """http_requests_total for POST /users/, by status."""
    counts = {}
    for sample in requests.get(f"{url}/metrics").text.splitlines():
        found = re.match(r'http_requests_total\{method="POST",route="/users/",status="(\w+)"\} ([\d.]+)', sample)
        if found:
            counts[found.group(1)] = float(found.group(2))
    return counts


UNSAFE_PATH = "/users/\u2028\u2029\r\n\x1b[31m\x85"
UNSAFE_RAW = b"/users/\xe2\x80\xa8\r\n\x1b[31m"  # as a server more lenient than uvicorn's parsers might pass it


def test_logged_paths_escape_control_and_line_separator_characters():
    logged = path_as_sent({"path": UNSAFE_PATH, "raw_path": UNSAFE_RAW})
    assert logged == "/users/\\xe2\\x80\\xa8\\r\\n\\x1b[31m"
    assert path_as_sent({"path": UNSAFE_PATH}) == "/users/%E2%80%A8%E2%80%A9%0D%0A%1B%5B31m%C2%85"
    record = logging.LogRecord("legacy_app", logging.INFO, __file__, 0, "path=%s", (UNSAFE_PATH,), None)
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1 and not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", line)
    assert json.loads(line)["message"] == f"path={UNSAFE_PATH}"  # escaped, not lost


def test_the_503_warning_logs_the_path_as_sent_not_decoded(tmp_path, caplog):
    from starlette.requests import Request
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", **FAST_HASHING))
    scope = {"type": "http", "method": "GET", "path": UNSAFE_PATH, "raw_path": b"/users/%E2%80%A8%0D%0A%1B", "headers": [],
             "query_string": b"", "app": app}
    caplog.set_level(logging.WARNING, logger="legacy_app")
    response = asyncio.run(pool_timeout(Request(scope), PoolTimeout()))
    assert response.status_code == 503
    (message,) = [r.getMessage() for r in caplog.records if r.name == "legacy_app"]
    assert message.startswith("503 for GET /users/%E2%80%A8%0D%0A%1B: ")
    app.state.engine.dispose()
