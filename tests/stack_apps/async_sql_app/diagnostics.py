"""GET /_pool: what the test reads, as sql_app.diagnostics counts it (garbage collector paused too)."""
import gc

from sqlalchemy import event, text
from fastapi import APIRouter

from .database import engine

gc.disable()
router = APIRouter()
checked_out = 0


@event.listens_for(engine.sync_engine, "checkout")
def _checkout(dbapi_connection, connection_record, connection_proxy):
    global checked_out
    checked_out += 1


@event.listens_for(engine.sync_engine, "checkin")
def _checkin(dbapi_connection, connection_record):
    global checked_out
    checked_out -= 1


@router.get("/_pool")
async def pool_status():
    async with engine.connect() as connection:  # its own connection, returned before counting
        audit_entries = (await connection.execute(text("SELECT COUNT(*) FROM stack_app_audit"))).scalar()
    pool_checkedout = getattr(engine.sync_engine.pool, "checkedout", None)
    return {
        "checked_out": checked_out,
        "pool_checkedout": pool_checkedout() if pool_checkedout else None,
        "audit_entries": audit_entries,
    }
