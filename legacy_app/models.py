"""The tutorial's tables, so databases created by the tutorial app fit unchanged.

Column(...) style runs on SQLAlchemy 1.4 and 2.x alike. Differences from the tutorial:
string lengths (MariaDB needs them; they also bound the input), and no index on
`description` (a 2,000-character key exceeds MariaDB's index limit and no query uses it).
"""
from typing import Optional

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String
from sqlalchemy.dialects import mysql
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import relationship

from .accounts.emails import CANONICAL_MAX_LENGTH, canonical_email
from .database import Base

EMAIL_MAX_LENGTH = 254  # RFC 5321 path limit, as email-validator enforces
TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000

# MariaDB: 4-byte UTF-8 (emoji) needs utf8mb4; other dialects ignore these.
_MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
# The canonical email compares as the bytes it is: the table's collation would call `é` and `e`
# (and `ß` and `ss`) equal, which the canonical form keeps apart.
CANONICAL_EMAIL_TYPE = String(CANONICAL_MAX_LENGTH).with_variant(
    mysql.VARCHAR(CANONICAL_MAX_LENGTH, charset="utf8mb4", collation="utf8mb4_bin"), "mysql"
)


def _canonical_of_email(context: DefaultExecutionContext) -> Optional[str]:
    """Every insert of a user, through the ORM or the table, stores the canonical form of its email."""
    email = context.get_current_parameters().get("email")
    return None if email is None else canonical_email(email)


class User(Base):
    __tablename__ = "users"
    __table_args__ = _MYSQL_TABLE_ARGS

    id = Column(Integer, primary_key=True, index=True)
    # As the user typed it (lower-cased: schemas.UserCreate). Not unique since revision 0003: two
    # spellings of one address are one account by email_canonical; and MariaDB's collation would
    # call two different addresses (`é@`, `e@`) equal.
    email = Column(String(255), index=True)
    # emails.canonical_email(email): its unique index is the uniqueness check, race-free everywhere.
    email_canonical = Column(CANONICAL_EMAIL_TYPE, unique=True, index=True, default=_canonical_of_email)
    hashed_password = Column(String(255))
    is_active = Column(Boolean, default=True)

    items = relationship("Item", back_populates="owner", order_by="Item.id")


class Item(Base):
    __tablename__ = "items"
    __table_args__ = _MYSQL_TABLE_ARGS

    id = Column(Integer, primary_key=True, index=True)
    title = Column(String(TITLE_MAX_LENGTH), index=True)
    description = Column(String(DESCRIPTION_MAX_LENGTH))
    owner_id = Column(Integer, ForeignKey("users.id"), index=True)  # revision 0002: loading a user's items

    owner = relationship("User", back_populates="items")
