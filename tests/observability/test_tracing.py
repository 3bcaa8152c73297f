"""Traces (the `otel` extra): a span per request with its SQL statements as children; nothing of
OpenTelemetry loaded unless OTEL_EXPORTER_OTLP_ENDPOINT is set."""
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from legacy_app.config import Settings
from legacy_app.main import create_app

from ..conftest import FAST_HASHING, post_json
from ..support.live_server import REPO_ROOT

trace = pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

CANARY_EMAIL = "trace-canary-4b2e@example.com"


@pytest.fixture
def traced(database_url: str, strategy: str):
    exporter = InMemorySpanExporter()
    provider = trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(Settings(database_url=database_url, session_strategy=strategy, **FAST_HASHING),
                     tracer_provider=provider)
    with TestClient(app) as client:
        yield client, exporter
    provider.shutdown()


def server_span(exporter: InMemorySpanExporter, name: str):
    [span] = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER and s.name == name]
    return span


def descendants(exporter: InMemorySpanExporter, root) -> list:
    spans = exporter.get_finished_spans()
    found, frontier = [], {root.context.span_id}
    while frontier:
        children = [s for s in spans if s.parent is not None and s.parent.span_id in frontier]
        found += children
        frontier = {s.context.span_id for s in children}
    return found


def test_a_request_span_has_its_sql_statements_as_children(traced):
    client, exporter = traced
    user_id = post_json(client, "/users/", {"email": CANARY_EMAIL, "password": "pw"}).json()["id"]
    exporter.clear()
    assert client.get(f"/users/{user_id}").status_code == 200
    request = server_span(exporter, "GET /users/{user_id}")
    sql = [s for s in descendants(exporter, request) if s.kind == SpanKind.CLIENT]
    statements = [str(s.attributes.get("db.statement") or s.attributes.get("db.query.text") or "") for s in sql]
    assert any(statement.startswith("SELECT") and "users" in statement for statement in statements), statements
    assert all(s.context.trace_id == request.context.trace_id for s in sql)


def test_spans_carry_no_query_string_and_no_bound_value(traced):
    client, exporter = traced
    post_json(client, "/users/", {"email": CANARY_EMAIL, "password": "pw"})
    assert client.get("/users/", params={"email": CANARY_EMAIL}).status_code == 200
    spans = exporter.get_finished_spans()
    assert any(s.kind == SpanKind.SERVER and s.name == "GET /users/" for s in spans)
    assert any(s.kind == SpanKind.CLIENT for s in spans)  # the SQL statements were traced
    for span in spans:
        for key, value in span.attributes.items():
            assert "trace-canary" not in str(value), (span.name, key, value)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite://", "MIGRATE_ON_START": "false", **env},
    )


# What the service adds to the OpenTelemetry modules FastAPI itself loads (FastAPI 0.1xx imports
# opentelemetry-api for its native telemetry, which stays a no-op without providers).
LOADED_BY_THE_SERVICE = (
    "import sys, fastapi\n"
    "before = {m for m in sys.modules if m.startswith('opentelemetry')}\n"
    "import legacy_app.main\n"
    "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('opentelemetry.')} - "
    "{m.split('.')[1] for m in before if '.' in m}))"
)


@pytest.mark.server
def test_nothing_of_opentelemetry_is_imported_without_the_endpoint():
    result = run_python(LOADED_BY_THE_SERVICE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.server
def test_the_endpoint_turns_tracing_on():
    # Nothing is sent: no request is made, so no span is exported to the closed port.
    result = run_python(LOADED_BY_THE_SERVICE, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 0, result.stderr
    assert {"instrumentation", "sdk", "exporter"} <= set(eval(result.stdout))


@pytest.mark.server
def test_the_endpoint_without_the_otel_extra_is_a_one_line_error():
    code = "import sys; sys.modules['opentelemetry.instrumentation.fastapi'] = None; import legacy_app.main"
    result = run_python(code, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "legacy_app: configuration error: OTEL_EXPORTER_OTLP_ENDPOINT is set, "
        "but OpenTelemetry is not installed: pip install 'legacy_app[otel]'"
    )


class OtlpCollector:
    """An OTLP/HTTP endpoint on 127.0.0.1 that keeps the bodies POSTed to /v1/traces."""

    def __init__(self) -> None:
        import http.server
        import threading

        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.live
def test_serve_exports_request_and_sql_spans_to_the_otlp_endpoint(tmp_path):
    import requests

    from ..support.live_server import LiveServer

    collector = OtlpCollector()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'traced.db'}", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    try:
        with LiveServer(env, tmp_path / "serve.log", app="cli") as server:
            assert requests.get(f"{server.url}/users/1", timeout=30).status_code == 404
        # SIGTERM: the app's shutdown flushed the batch of spans.
        exported = b"".join(collector.bodies)
    finally:
        collector.stop()
    assert b"GET /users/{user_id}" in exported
    assert b"SELECT" in exported and b"legacy_app" in exported  # a SQL span; the service's name
