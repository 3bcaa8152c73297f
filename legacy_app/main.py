"""create_app(settings) builds the service; `app` is what uvicorn serves, and `get_db` what routes ask for.

`app` uses the tutorial's database.engine and database.SessionLocal, so a test may bind
Base.metadata.create_all() to that engine, or override get_db through app.dependency_overrides.
"""
import gc
import logging
import sys
from typing import Any, Callable, Optional, Tuple

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine
from starlette.middleware import Middleware

from . import compat, database
from .accounts.hashing_lane import make_hashing_lane
from .accounts.passwords import make_password_hasher
from .config import YIELD_DEPENDENCY, ConfigError, Settings, environment_settings
from .database import create_engine_from, for_maintenance
from .db import migrate
from .http.edges import RequestEdges
from .http.errors import COMMON_RESPONSES, install_error_handlers
from .http.json_only import RequireJsonContentType
from .http.observer import RequestObserver
from .http.protection import BodyLimitAndSecurityHeaders
from .observability.logs import REQUEST_ID_HEADER, is_acceptable_request_id
from .observability.metrics import Metrics, mark_this_worker_dead, measure_pool, measure_sessions
from .routers import health, items, users
from .server.connections import log_accept_errors_once_per_interval
from .sessions import SessionFactory, get_db, make_session_factory, strategy_middleware, use_yield_dependency

__all__ = ["app", "create_app", "get_db"]

logger = logging.getLogger("legacy_app")


def create_app(
    settings: Optional[Settings] = None,
    *,
    engine: Optional[Engine] = None,
    session_factory: Optional[SessionFactory] = None,
    tracer_provider: Optional[Any] = None,
) -> FastAPI:
    """The API with the configured session strategy.

    engine replaces the one built from settings.database_url; session_factory replaces the
    strategy's sessionmaker, for the middleware as much as for the yield dependency (tests pass
    one that records or fails), where app.dependency_overrides[get_db] only changes what routes get.
    Traces are on when settings.otlp_endpoint is set, or a tracer_provider (OpenTelemetry's) is given.
    """
    settings = settings or environment_settings()
    engine = engine or create_engine_from(settings)
    if session_factory is None:
        session_factory = make_session_factory(engine, settings.session_strategy)
    metrics = Metrics() if settings.metrics else None
    if metrics is not None:
        measure_pool(engine, metrics)
        session_factory = measure_sessions(session_factory, metrics)

    def startup() -> None:
        log_accept_errors_once_per_interval()  # not a traceback per failed accept() (docs/deployment.md: Connections)
        if settings.migrate_on_start:  # `serve` migrates before its workers start, and turns this off
            note, done = _upgrade_on_start(engine, settings)
            if note:
                logger.warning("%s", note)
            logger.info("%s", done)
        # What imports and start-up made lives as long as the server: frozen, the collector stops
        # rescanning it at every full collection, which a request loading a thousand ORM objects
        # triggers: a page of 100 users with their items (docs/performance.md, in-process figures).
        gc.freeze()

    stop_tracing: Callable[[], None] = lambda: None

    def shutdown() -> None:
        gc.unfreeze()  # collectable again: a test process starts and stops many apps
        stop_tracing()
        engine.dispose()
        if metrics is not None:
            mark_this_worker_dead()  # under several workers: its gauges stop counting in the sum

    # The whole middleware stack, outermost first: a request passes down this list, its response back up.
    # (With traces on, OpenTelemetry's middleware wraps it all: observability/tracing.py.)
    middleware = [
        # Outermost, so the log line of every response below carries the request's id, honoured or made.
        Middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=is_acceptable_request_id),
        # Times the request and notes its status once, for the request log and http_requests_total:
        # outside every layer that can answer, so their 413s, 415s and 400s are logged and counted too.
        # It answers GET /metrics itself, before any session exists.
        Middleware(RequestObserver, metrics=metrics),
        # The body size limit (413) and the protective headers, on every response from here inward.
        Middleware(BodyLimitAndSecurityHeaders, max_body_bytes=settings.max_body_bytes),
        # Ambiguous framing refused (400), HEAD answered as GET, `/users` served as `/users/`.
        Middleware(RequestEdges),
        # A body not declared as JSON is a 415 before a session is opened or anything stored.
        Middleware(RequireJsonContentType),
        # Innermost: the request's database session (none here under yield-dependency; see sessions.py).
        *strategy_middleware(settings.session_strategy, session_factory),
    ]
    # /docs and /redoc with Swagger UI and ReDoc served from the package, not a CDN: they work offline.
    app = FastAPIOffline(
        title="legacy_app",
        version="1.0.0",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        middleware=middleware,
        **compat.lifespan_kwargs(startup, shutdown),
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.session_factory = session_factory
    app.state.password_hasher = make_password_hasher(settings)
    app.state.hashing_lane = make_hashing_lane(settings)
    if settings.session_strategy == YIELD_DEPENDENCY:
        use_yield_dependency(app)
    install_error_handlers(app)
    app.router.redirect_slashes = False  # RequestEdges serves `/users` as `/users/`: a redirect would trust Host
    app.include_router(users.router, responses=COMMON_RESPONSES)
    app.include_router(items.router, responses=COMMON_RESPONSES)
    app.include_router(health.router, responses=COMMON_RESPONSES)
    if settings.otlp_endpoint or tracer_provider is not None:
        from .observability.tracing import install_tracing  # only now: OpenTelemetry is an optional extra

        stop_tracing = install_tracing(app, engine, tracer_provider)
    return app


def _upgrade_on_start(engine: Engine, settings: Settings) -> Tuple[Optional[str], str]:
    """Migrate the app's database through an engine without the statement timeout (for_maintenance)."""
    if engine.dialect.name == "sqlite":  # no statement timeout; an in-memory database is this engine's alone
        return migrate.upgrade_on_start(engine)
    url = engine.url.render_as_string(hide_password=False)
    maintenance = create_engine_from(for_maintenance(settings.with_overrides(database_url=url)))
    try:
        return migrate.upgrade_on_start(maintenance)
    finally:
        maintenance.dispose()


try:
    app = create_app(engine=database.engine, session_factory=database.SessionLocal)
except ConfigError as error:
    sys.exit(f"legacy_app: configuration error: {error}")
