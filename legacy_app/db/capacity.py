"""Connection sizing for several workers: what they may open against what the database allows.

Each worker process has its own pool, so at peak the service holds
    workers × (DB_POOL_SIZE + DB_MAX_OVERFLOW)
connections, and that must fit in what the server has left for it:
    max_connections − reserved for superusers − connections of other clients (hosts, tools).
Past that, requests fail with "too many connections" instead of waiting for a pooled connection.
"""
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..config import Settings


@dataclass(frozen=True)
class ConnectionBudget:
    database: str
    max_connections: int
    reserved: int  # superuser_reserved_connections (PostgreSQL); 0 elsewhere
    in_use_by_others: int

    @property
    def available(self) -> int:
        return self.max_connections - self.reserved - self.in_use_by_others


def peak_connections(settings: Settings, workers: int) -> int:
    return workers * (settings.pool_size + settings.max_overflow)


def read_budget(connection: Connection) -> Optional[ConnectionBudget]:
    """The server's limits as seen from `connection` (not counted as another client); None for SQLite."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        max_connections = int(connection.execute(text("SHOW max_connections")).scalar_one())
        reserved = int(connection.execute(text("SHOW superuser_reserved_connections")).scalar_one())
        others = connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        ).scalar_one()
        return ConnectionBudget("PostgreSQL", max_connections, reserved, int(others))
    if dialect == "mysql":
        max_connections = int(connection.execute(text("SELECT @@max_connections")).scalar_one())
        connected = connection.execute(text("SHOW STATUS LIKE 'Threads_connected'")).one()[1]
        return ConnectionBudget("MariaDB/MySQL", max_connections, 0, int(connected) - 1)
    return None


def over_budget_warning(settings: Settings, workers: int, budget: ConnectionBudget) -> Optional[str]:
    """A warning naming the numbers and the fixes when the pools could exceed the server's limit."""
    peak = peak_connections(settings, workers)
    if peak <= budget.available:
        return None
    return (
        f"{workers} worker(s) × (DB_POOL_SIZE {settings.pool_size} + DB_MAX_OVERFLOW {settings.max_overflow}) "
        f"= {peak} connections at peak, but {budget.database} has {budget.available} left "
        f"(max_connections {budget.max_connections} − {budget.reserved} reserved − "
        f"{budget.in_use_by_others} open by other clients); under load, requests would fail with "
        f"'too many connections'. Lower --workers, DB_POOL_SIZE or DB_MAX_OVERFLOW, raise max_connections, "
        f"or put PgBouncer in front (docs/deployment.md)."
    )
