"""Index items.owner_id: loading users with their items looks items up by owner.

Without it every page of users scans the whole items table (the tutorial has no such index).
MariaDB keeps an index on every foreign-key column by itself (named after the column); this
revision's index takes over that role there, and the downgrade hands it back.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _is_mysql() -> bool:
    return op.get_bind().dialect.name == "mysql"


def upgrade() -> None:
    op.create_index("ix_items_owner_id", "items", ["owner_id"], unique=False)
    if _is_mysql():  # an index left by an earlier downgrade; an implicit one is already gone
        op.execute("DROP INDEX IF EXISTS owner_id ON items")


def downgrade() -> None:
    if _is_mysql():
        op.create_index("owner_id", "items", ["owner_id"], unique=False)
    op.drop_index("ix_items_owner_id", table_name="items")
