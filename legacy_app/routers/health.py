import logging

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from .. import compat, migrate
from ..errors import RETRY_AFTER_SECONDS

logger = logging.getLogger("legacy_app")
router = APIRouter(tags=["health"])

# A readiness probe wants an answer, not a wait: a database silent for this long is not ready.
READY_TIMEOUT_SECONDS = 2.0


@router.get("/health")
async def health() -> dict:
    """Liveness: the process answers. Never touches the database."""
    return {"status": "ok"}


@router.get(
    "/health/ready",
    responses={503: {"description": "Database unreachable or silent (with Retry-After), or its schema behind the code"}},
)
async def ready(request: Request):
    """Readiness: the database answers within 2 s, and its schema is the one the code needs.

    503 with Retry-After while the database does not answer in time; 503 naming the revisions,
    without Retry-After (waiting will not fix it: `db upgrade` will), while the schema is behind the code.
    """
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            # A connection of its own, not the request's session: a check given up on keeps its
            # thread until the database answers or the connection is cut (connection_deadline).
            reason = await compat.run_in_thread_abandoned_on_cancel(_not_ready_reason, request.app.state.engine)
    except TimeoutError:
        logger.warning("503 for a readiness check: the database did not answer within %g s", READY_TIMEOUT_SECONDS)
        return JSONResponse(status_code=503, content={"detail": f"Database did not answer within {READY_TIMEOUT_SECONDS:g} s"},
                            headers={"Retry-After": RETRY_AFTER_SECONDS})
    if reason is not None:
        return JSONResponse(status_code=503, content={"detail": reason})
    return {"status": "ready"}


def _not_ready_reason(engine: Engine):
    with engine.connect() as connection:
        # Reading the version table is the query that proves the database answers.
        return migrate.schema_state(connection).not_ready_reason()
