"""The tutorial's tables, so databases created by the tutorial app fit unchanged.

Column(...) style runs on SQLAlchemy 1.4 and 2.x alike. Differences from the tutorial:
string lengths (MariaDB needs them; they also bound the input), and no index on
`description` (a 2,000-character key exceeds MariaDB's index limit and no query uses it).
"""
from sqlalchemy import Boolean, Column, ForeignKey, Integer, String
from sqlalchemy.orm import relationship

from .database import Base

EMAIL_MAX_LENGTH = 254  # RFC 5321 path limit, as email-validator enforces
TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000

# MariaDB: 4-byte UTF-8 (emoji) needs utf8mb4; other dialects ignore these.
_MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


class User(Base):
    __tablename__ = "users"
    __table_args__ = _MYSQL_TABLE_ARGS

    id = Column(Integer, primary_key=True, index=True)
    # Stored lower-cased (see schemas.UserCreate), so this unique index is the
    # case-insensitive uniqueness check, race-free on every database.
    email = Column(String(255), unique=True, index=True)
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
