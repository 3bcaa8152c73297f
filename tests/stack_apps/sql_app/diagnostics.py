"""GET /_pool: what the test reads. Not part of the user's app; both forms of it include this router.

Connections are counted by the pool's checkout/checkin events as well as by pool.checkedout(): on
SQLAlchemy < 2.0 a file SQLite database gets a NullPool, which counts nothing itself. The garbage
collector is paused: it would return some connections of abandoned sessions at moments of its own
choosing, so a count taken with it running says more about its timing than about the app.
"""
import gc

from sqlalchemy import event, text
from fastapi import APIRouter

from .database import engine

gc.disable()
router = APIRouter()
checked_out = 0


@event.listens_for(engine, "checkout")
def _checkout(dbapi_connection, connection_record, connection_proxy):
    global checked_out
    checked_out += 1


@event.listens_for(engine, "checkin")
def _checkin(dbapi_connection, connection_record):
    global checked_out
    checked_out -= 1


@router.get("/_pool")
def pool_status():
    with engine.connect() as connection:  # its own connection, returned before counting
        audit_entries = connection.execute(text("SELECT COUNT(*) FROM stack_app_audit")).scalar()
    pool_checkedout = getattr(engine.pool, "checkedout", None)
    return {
        "checked_out": checked_out,
        "pool_checkedout": pool_checkedout() if pool_checkedout else None,
        "audit_entries": audit_entries,
    }
