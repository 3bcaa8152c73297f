"""`python -m legacy_app compare`: its observers see what they report, and its findings hold."""
import json
import re
import socket
import subprocess
import sys
import threading

import pytest
import requests
import starlette

from legacy_app.comparison import scenarios
from legacy_app.comparison.runner import run_comparison
from legacy_app.config import HTTP_MIDDLEWARE, STRATEGIES, Settings
from legacy_app.database import create_engine_from
from legacy_app.doctor.runner import SETTLE_SECONDS, Doctor, DoctorServer
from legacy_app.server.process import PACKAGE_PARENT

# The package's probe plus routes that misbehave on purpose (tests/comparison/probe_with_controls.py).
PROBE_WITH_CONTROLS = "tests.comparison.probe_with_controls:app"


@pytest.fixture
def asgi_probe(tmp_path):
    url = f"sqlite:///{tmp_path / 'probe.db'}"
    env = {"DATABASE_URL": url, "SESSION_STRATEGY": "asgi-middleware"}
    server = DoctorServer(PROBE_WITH_CONTROLS, PACKAGE_PARENT, False, tmp_path, env=env)
    engine = create_engine_from(Settings(database_url=url))
    try:
        server.wait_until_serving()
        yield scenarios.ProbeRun(Doctor(server, SETTLE_SECONDS), engine)
    finally:
        server.stop()
        engine.dispose()


@pytest.mark.live
def test_a_deliberate_leak_is_reported_as_a_leak(asgi_probe):
    leak = asgi_probe.request("GET", "/probe/control/leak")
    assert "connection_leaked" in leak["hazards"] and "session_not_closed" in leak["hazards"]
    # A later scenario is judged on its own requests: the earlier leak is not charged to it.
    assert scenarios.background_task(asgi_probe)["leaked_connections"] == 0


@pytest.mark.live
def test_a_commit_before_the_error_is_reported_as_persisting(asgi_probe):
    assert scenarios.error_persistence(asgi_probe, "/probe/control/commit-then-error") == {
        "status": 500,
        "rows_persisted": 1,
        "hazards": [],
    }
    assert scenarios.error_persistence(asgi_probe, "/probe/error-after-flush")["rows_persisted"] == 0


@pytest.mark.live
def test_a_close_before_the_response_is_reported_as_before(asgi_probe):
    assert scenarios.close_timing(asgi_probe, "/probe/control/close-early")["closed_after_response"] is False
    assert scenarios.close_timing(asgi_probe, "/users/")["closed_after_response"] is True


@pytest.mark.live
def test_session_creation_and_checkouts_are_counted(asgi_probe):
    assert scenarios.no_db_route(asgi_probe, "/probe/select1", requests=3) == {
        "sessions_created": 1,
        "connections_checked_out": 1,
    }
    assert scenarios.no_db_route(asgi_probe, "/health", requests=3) == {
        "sessions_created": 1,
        "connections_checked_out": 0,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def comparison(request, tmp_path):
    from ..conftest import database_url_for, reset_database

    url = None if request.param == "sqlite" else database_url_for(request.param, tmp_path)
    if url:
        reset_database(url)
    return run_comparison(database_url=url, overhead_requests=20, pool_requests=10, log_dir=tmp_path)


@pytest.mark.live
@pytest.mark.slow
def test_measured_facts_on_the_installed_versions(comparison):
    results = comparison["results"]
    assert set(results) == set(STRATEGIES)
    assert set(comparison["versions"]) == {"python", "fastapi", "starlette", "pydantic", "sqlalchemy", "anyio", "uvicorn"}
    asgi, decorator, dependency = (results[name] for name in STRATEGIES)

    # The decorator form closes before the body is sent; the pure-ASGI form after body and background tasks.
    assert decorator["normal_request"]["closed_after_response"] is False
    assert asgi["normal_request"]["closed_after_response"] is True
    assert asgi["background_task"] == {
        "status": 200, "session_usable": True, "leaked_connections": 0, "closed_after_late_use": True, "hazards": [],
    }
    assert asgi["streaming_response"]["body_complete"] is True
    # The hardened decorator form refuses late use instead of leaking a connection.
    assert decorator["background_task"]["session_usable"] is False
    assert decorator["streaming_response"]["session_usable"] is False
    # The hardened decorator form's refusals are errors raised after the response began: the client
    # got a 200 for a body cut short and for a background task that failed. Nothing else is a hazard.
    # On Starlette 0.20 BaseHTTPMiddleware cancels its task group once the response is sent: the task's
    # failure, in a worker thread nobody awaits any more, reaches no one (the doctor included).
    task_failure_seen = not starlette.__version__.startswith("0.20")
    late_errors = ["background_task", "streaming_response"] if task_failure_seen else ["streaming_response"]
    assert decorator["streaming_response"]["hazards"] == ["error_after_response_start"]
    for strategy, by_scenario in results.items():
        assert [name for name, figures in by_scenario.items() if figures.get("hazards")] == (
            late_errors if strategy == HTTP_MIDDLEWARE else [])
        assert by_scenario["error_after_flush"] == {"status": 500, "rows_persisted": 0, "hazards": []}
        assert by_scenario["http_exception_after_flush"] == {"status": 409, "rows_persisted": 0, "hazards": []}
        assert by_scenario["background_task"]["leaked_connections"] == 0
        assert by_scenario["streaming_response"]["leaked_connections"] == 0
        assert by_scenario["no_db_route"]["connections_checked_out"] == 0
        assert by_scenario["factory_failure"]["error_type"] == "FactoryFailure"
        assert by_scenario["factory_failure"]["db_route_status"] == 500
        assert sum(by_scenario["pool_exhaustion"]["status_counts"].values()) == 10
        assert by_scenario["overhead"]["db_route_median_us"] > 0
    assert dependency["no_db_route"]["sessions_created"] == 0
    assert dependency["factory_failure"]["no_db_route_status"] == 200
    assert asgi["factory_failure"]["no_db_route_status"] == 500


@pytest.mark.live
@pytest.mark.slow
def test_the_command_prints_one_json_document_and_its_progress_on_stderr():
    result = subprocess.run(
        [sys.executable, "-m", "legacy_app", "compare", "--json", "--strategies", "asgi-middleware",
         "--requests", "5", "--pool-requests", "4"],
        cwd=str(PACKAGE_PARENT), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["database"] == "sqlite"
    assert set(document["results"]) == {"asgi-middleware"}
    assert document["results"]["asgi-middleware"]["normal_request"]["closed_after_response"] is True
    # One line per scenario, as each finished: the 7 on the main server, overhead, and 2 on their own servers.
    steps = re.findall(r"^compare \[(\d+)/10\] (.+) (\w+): \d+\.\d s$", result.stderr, re.MULTILINE)
    assert [int(number) for number, _, _ in steps] == list(range(1, 11)), result.stderr
    assert [scenario for _, _, scenario in steps] == [
        *scenarios.MAIN_SCENARIOS, "overhead", "factory_failure", "pool_exhaustion",
    ]


class CutShortServer:
    """Answers one request with `answer` and closes the connection."""

    def __init__(self, answer: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        threading.Thread(target=self._serve, args=(answer,), daemon=True).start()

    def _serve(self, answer: bytes) -> None:
        connection, _ = self.sock.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(answer)
        self.sock.close()


@pytest.mark.parametrize("answer, complete", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunk \r\n6\r\nchunk \r\n0\r\n\r\n", True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunk \r\n6\r\nchunk \r\n", False),  # no last chunk
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunk \r\n6\r\nchu", False),  # cut in a chunk
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nchunk chunk ", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nchunk chunk ", False),  # shorter than declared
], ids=["chunked-whole", "chunked-no-last-chunk", "chunked-cut", "length-whole", "length-short"])
def test_a_body_cut_short_is_reported_incomplete_whether_chunked_or_with_a_length(answer, complete):
    with requests.Session() as session:
        reply = scenarios.fetch(session, "GET", CutShortServer(answer).url, timeout=5)
    assert (reply.status, reply.complete) == (200, complete)
    if complete:
        assert reply.body == b"chunk chunk "
