"""Traces when OTEL_EXPORTER_OTLP_ENDPOINT is set: a span per request and per SQL statement.

Through OpenTelemetry's FastAPI and SQLAlchemy instrumentation, exported over OTLP/HTTP to that
endpoint (the standard OTEL_* variables apply: OTEL_SERVICE_NAME, OTEL_PYTHON_FASTAPI_EXCLUDED_URLS,
...). OpenTelemetry is the optional `otel` extra, and nothing of it is imported unless tracing is on.
"""
import os
from typing import Any, Callable, Dict, Optional

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from .. import compat
from ..config import ConfigError

# Span attributes that carry the query string, which can hold an email (GET /users/?email=):
# rewritten without it, as the request log never writes it. SQL spans carry statements with
# placeholders, never the bound values.
_QUERY_BEARING = ("http.target", "http.url", "url.full", "url.query")


def install_tracing(app: FastAPI, engine: Engine, tracer_provider: Optional[Any] = None) -> Callable[[], None]:
    """Instrument the app and its engine; returns what stops it (call at shutdown).

    tracer_provider replaces the OTLP exporter's (a test passes one with an in-memory exporter).
    """
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    except ImportError:
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but OpenTelemetry is not installed: pip install 'legacy_app[otel]'"
        ) from None
    own_provider = tracer_provider is None
    provider = _otlp_tracer_provider() if own_provider else tracer_provider
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, server_request_hook=_without_query_string)
    compat.rebuild_middleware_stack(app)
    sqlalchemy_instrumentor = SQLAlchemyInstrumentor()  # one per process: it traces this app's engine
    if sqlalchemy_instrumentor.is_instrumented_by_opentelemetry:
        sqlalchemy_instrumentor.uninstrument()
    # skip_dep_check: its newest release declares SQLAlchemy < 2.1, and refuses 2.1 without this;
    # tests/observability/test_tracing.py checks the spans it makes on the pinned 2.1.
    sqlalchemy_instrumentor.instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)

    def stop() -> None:
        FastAPIInstrumentor.uninstrument_app(app)
        sqlalchemy_instrumentor.uninstrument()
        if own_provider:
            provider.shutdown()  # sends the spans still buffered

    return stop


def _otlp_tracer_provider() -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "legacy_app"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from the environment
    return provider


def _without_query_string(span: Any, scope: Dict[str, Any]) -> None:
    if not span.is_recording() or not scope.get("query_string"):
        return
    attributes = getattr(span, "attributes", None) or {}
    for key in _QUERY_BEARING:
        if key == "url.query" and key in attributes:
            span.set_attribute(key, "")
        elif key in attributes:
            span.set_attribute(key, str(attributes[key]).split("?", 1)[0])
