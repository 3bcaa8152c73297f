from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.orm import Session

from ..deps import DbSession

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict:
    """Liveness: the process answers. Never touches the database."""
    return {"status": "ok"}


@router.get("/health/ready")
def ready(db: Session = DbSession) -> dict:
    """Readiness: the database answers a query (503 with Retry-After while it does not)."""
    db.execute(text("SELECT 1"))
    db.commit()
    return {"status": "ready"}
