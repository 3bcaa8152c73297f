import asyncio
import logging
from typing import Any, Optional

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from ..db import migrate
from ..http.errors import RETRY_AFTER_SECONDS

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
        # shield: a probe that gives up leaves the check running for the next probe to wait on.
        reason = await asyncio.wait_for(asyncio.shield(_check_in_flight(request.app.state)), READY_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        logger.warning("503 for a readiness check: the database did not answer within %g s", READY_TIMEOUT_SECONDS)
        return JSONResponse(status_code=503, content={"detail": f"Database did not answer within {READY_TIMEOUT_SECONDS:g} s"},
                            headers={"Retry-After": RETRY_AFTER_SECONDS})
    if reason is not None:
        return JSONResponse(status_code=503, content={"detail": reason})
    return {"status": "ready"}


def _check_in_flight(state: Any) -> "asyncio.Future[Optional[str]]":
    """The check still running, or a new one: a database that never answers ties up one thread and
    one connection, not one per probe, until the connection is cut (connection_deadline, or the
    TCP timeouts where DB_STATEMENT_TIMEOUT=0)."""
    loop = asyncio.get_running_loop()
    check = getattr(state, "ready_check", None)
    if check is None or check.done() or check.get_loop() is not loop:
        # A connection of its own, not a request's session, in the loop's executor: the shared
        # thread pool keeps its tokens for requests.
        check = state.ready_check = loop.run_in_executor(None, _not_ready_reason, state.engine)
        check.add_done_callback(_retrieve)
    return check


def _retrieve(check: "asyncio.Future[Optional[str]]") -> None:
    # A check no probe waited for to the end: its error was answered as a timeout already.
    if not check.cancelled():
        check.exception()


def _not_ready_reason(engine: Engine) -> Optional[str]:
    with engine.connect() as connection:
        # Reading the version table is the query that proves the database answers.
        return migrate.schema_state(connection).not_ready_reason()
