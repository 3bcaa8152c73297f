"""create_app(settings) builds the service; `app` is what uvicorn serves."""
import logging
import sys
from typing import Optional

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine

from . import compat, migrate
from .config import HTTP_MIDDLEWARE, ConfigError, Settings
from .database import SessionFactory, create_engine_from, make_session_factory
from .errors import COMMON_RESPONSES, install_error_handlers
from .http_guards import HttpGuards
from .request_log import install_request_logging
from .routers import health, items, users
from .security import make_password_hasher
from .sessions import install_session_strategy

logger = logging.getLogger("legacy_app")


def create_app(
    settings: Optional[Settings] = None,
    *,
    engine: Optional[Engine] = None,
    session_factory: Optional[SessionFactory] = None,
) -> FastAPI:
    """The API with the configured session strategy.

    engine replaces the one built from settings.database_url; session_factory replaces the
    default sessionmaker for every strategy (tests pass one that records or fails), which
    `app.dependency_overrides` cannot do, as it does not reach middleware.
    """
    settings = settings or Settings.from_env()
    engine = engine or create_engine_from(settings)
    if session_factory is None:
        session_factory = make_session_factory(engine, final_close=settings.session_strategy == HTTP_MIDDLEWARE)

    def startup() -> None:
        if settings.migrate_on_start:
            note = migrate.upgrade(engine)
            if note:
                logger.warning("%s", note)

    # /docs and /redoc with Swagger UI and ReDoc served from the package, not a CDN: they work offline.
    app = FastAPIOffline(
        title="legacy_app",
        version="1.0.0",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        **compat.lifespan_kwargs(startup, engine.dispose),
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.password_hasher = make_password_hasher(settings)
    install_session_strategy(app, settings.session_strategy, session_factory)
    install_error_handlers(app)
    app.add_middleware(HttpGuards, max_body_bytes=settings.max_body_bytes)  # sees every response
    install_request_logging(app)  # outermost: logs every response, HttpGuards' 413s included
    app.include_router(users.router, responses=COMMON_RESPONSES)
    app.include_router(items.router, responses=COMMON_RESPONSES)
    app.include_router(health.router, responses=COMMON_RESPONSES)
    return app


try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"legacy_app: configuration error: {error}")
