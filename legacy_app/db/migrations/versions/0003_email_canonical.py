"""users.email_canonical: one canonical form per address, unique; users.email keeps what was typed.

Fills the column for every existing row (legacy_app.accounts.emails.canonical_email). Accounts whose
emails share a canonical form (`straße@` and `STRASSE@`, made when uniqueness was only the
lower-cased email) are not merged: the upgrade refuses before it changes anything, naming their
ids, and runs once each group is down to one account. The unique index on users.email becomes a
plain one: two spellings of one address are one account by the new column, and MariaDB's
collation would call two different addresses (`é@`, `e@`) equal.

Revision ID: 0003
Revises: 0002
"""
from collections import defaultdict
from typing import Dict, List

import sqlalchemy as sa
from alembic import op
from alembic.util import CommandError
from sqlalchemy.dialects import mysql

from legacy_app.accounts.emails import canonical_email

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CANONICAL_LENGTH = 255
# Compared as bytes on MariaDB: the table's utf8mb4_unicode_ci would call `é` and `e` equal.
CANONICAL_TYPE = sa.String(CANONICAL_LENGTH).with_variant(
    mysql.VARCHAR(CANONICAL_LENGTH, charset="utf8mb4", collation="utf8mb4_bin"), "mysql"
)
users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String), sa.column("email_canonical", sa.String))


class CollidingAccounts(CommandError):
    """Existing accounts share a canonical email: someone must decide which one stays."""


def _canonical_forms() -> Dict[int, str]:
    rows = op.get_bind().execute(sa.select(users.c.id, users.c.email).where(users.c.email.isnot(None)))
    return {id_: canonical_email(email) for id_, email in rows}


def _refuse_collisions(forms: Dict[int, str]) -> None:
    ids_by_form: Dict[str, List[int]] = defaultdict(list)
    for id_, form in sorted(forms.items()):
        ids_by_form[form].append(id_)
    groups = [ids for ids in ids_by_form.values() if len(ids) > 1]
    too_long = sorted(id_ for id_, form in forms.items() if len(form) > CANONICAL_LENGTH)
    problems = []
    if groups:
        listed = "; ".join(", ".join(str(id_) for id_ in ids) for ids in groups)
        problems.append(
            f"{len(groups)} group(s) of accounts whose emails are one address once normalised, by user id: {listed} "
            "(merge each group into one account, or change the other accounts' emails)"
        )
    if too_long:
        problems.append(
            f"emails longer than {CANONICAL_LENGTH} characters once normalised, user ids: "
            f"{', '.join(map(str, too_long))} (shorten them)"
        )
    if problems:
        raise CollidingAccounts(f"revision 0003 refused, nothing changed: {'; '.join(problems)}; then run db upgrade again")


def upgrade() -> None:
    forms = _canonical_forms()
    _refuse_collisions(forms)  # before any change: MariaDB commits each ALTER TABLE at once
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_canonical", CANONICAL_TYPE, nullable=True))
    if forms:  # one executemany
        fill = users.update().where(users.c.id == sa.bindparam("row_id")).values(email_canonical=sa.bindparam("form"))
        op.get_bind().execute(fill, [{"row_id": id_, "form": form} for id_, form in forms.items()])
    op.drop_index("ix_users_email", table_name="users")
    op.create_index("ix_users_email", "users", ["email"], unique=False)
    op.create_index("ix_users_email_canonical", "users", ["email_canonical"], unique=True)


def downgrade() -> None:
    # Unique again on the email: distinct canonical forms are distinct emails (on MariaDB, whose
    # collation ignores accents, `é@` beside `e@` makes this fail: change one of them first).
    op.drop_index("ix_users_email_canonical", table_name="users")
    op.drop_index("ix_users_email", table_name="users")
    op.create_index("ix_users_email", "users", ["email"], unique=True)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_canonical")
