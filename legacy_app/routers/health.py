from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from .. import migrate
from ..deps import DbSession

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict:
    """Liveness: the process answers. Never touches the database."""
    return {"status": "ok"}


@router.get(
    "/health/ready",
    responses={503: {"description": "Database unreachable (with Retry-After), or its schema behind the code"}},
)
def ready(db: Session = DbSession):
    """Readiness: the database answers, and its schema is the one the code needs.

    503 with Retry-After while the database does not answer; 503 naming the revisions, without
    Retry-After (waiting will not fix it: `db upgrade` will), while the schema is behind the code.
    """
    # Reading the version table is the query that proves the database answers.
    reason = migrate.schema_state(db.connection()).not_ready_reason()
    db.commit()
    if reason is not None:
        return JSONResponse(status_code=503, content={"detail": reason})
    return {"status": "ready"}
