"""The tutorial's six data functions, hardened; each borrows the request's session.

What differs from the tutorial, and why:
- Every function ends its transaction before it returns (commit, or rollback when it refuses), so
  no pooled connection stays checked out while the response is serialised and sent.
- What a function returns is loaded in full before that: a user comes with its items (one more
  query for a whole page of users, never one per user), and with expire_on_commit=False
  (sessions.make_session_factory) the commit leaves the objects loaded, so serialising them runs
  no query.
- Writes start with begin_write() (BEGIN IMMEDIATE on SQLite); a duplicate email, also one that a
  concurrent registration committed first, and an item for a missing user return None and store
  nothing. An email is stored as typed (lower-cased) beside its canonical form (emails.py), which
  uniqueness and lookups compare.
- A user holds at most MAX_ITEMS_PER_USER items, counted while its row is locked, so concurrent
  creations cannot overshoot: the tutorial's `items` list on a user stays whole and bounded.
"""
from typing import Any, Dict, List, Optional

from argon2 import PasswordHasher
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.sql import Executable

from . import models, schemas
from .accounts.emails import canonical_email
from .accounts.passwords import default_password_hasher
from .config import environment_settings
from .database import begin_write

# One user: its items in the same statement (an outer join), cheaper than a second SELECT ... IN.
# A page of users: one more statement for all their items, cheaper than joining a LIMITed page.
# (Both measured: docs/performance.md, in-process figures.)
_USER_WITH_ITEMS = select(models.User).options(joinedload(models.User.items))
_USERS_WITH_ITEMS = select(models.User).options(selectinload(models.User.items)).order_by(models.User.id)

# The reads' statements are built once, with bound parameters, not per call: SQLAlchemy finds a
# statement's compiled form by its cache key, which a statement built per call (`.where(User.id ==
# user_id)`) computes again each time and one built once computes once (docs/performance.md).
_USER_BY_ID = _USER_WITH_ITEMS.where(models.User.id == bindparam("user_id"))
_USER_BY_EMAIL = _USER_WITH_ITEMS.where(models.User.email_canonical == bindparam("email_canonical"))
_USERS_PAGE = _USERS_WITH_ITEMS.offset(bindparam("skip")).limit(bindparam("limit"))
_USERS_WITH_EMAIL_PAGE = _USERS_PAGE.where(models.User.email_canonical == bindparam("email_canonical"))
_ITEMS_PAGE = select(models.Item).order_by(models.Item.id).offset(bindparam("skip")).limit(bindparam("limit"))
_REFRESH = {"populate_existing": True}
_AS_LOADED: Dict[str, bool] = {}


class ItemLimitReached(Exception):
    """The user already holds the most items it may (MAX_ITEMS_PER_USER); nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"User already has the maximum of {limit} items")
        self.limit = limit


def _canonical(email: str) -> str:
    """What the account of `email`, written in any of its forms, holds in users.email_canonical."""
    return canonical_email(schemas.registration_email(email))


def _read(db: Session, statement: Executable, parameters: Dict[str, Any]) -> Result:
    """Run a read; objects the session holds from an earlier transaction come back refreshed.

    A caller may make several calls on one session: without populate_existing, a user loaded by
    the first would be returned as it was then, its items included. A new session (a request's)
    holds nothing, and skips the refresh work (a quarter of loading 100 items).
    """
    return db.execute(statement, parameters, execution_options=_REFRESH if db.identity_map else _AS_LOADED)


def get_user(db: Session, user_id: int) -> Optional[models.User]:
    user = _read(db, _USER_BY_ID, {"user_id": user_id}).unique().scalar_one_or_none()
    db.commit()
    return user


def get_user_by_email(db: Session, email: str) -> Optional[models.User]:
    user = _read(db, _USER_BY_EMAIL, {"email_canonical": _canonical(email)}).unique().scalar_one_or_none()
    db.commit()
    return user


def get_users(db: Session, skip: int = 0, limit: int = 100) -> List[models.User]:
    users = list(_read(db, _USERS_PAGE, {"skip": skip, "limit": limit}).scalars())
    db.commit()
    return users


def get_users_with_email(db: Session, email: str, skip: int = 0, limit: int = 100) -> List[models.User]:
    """get_users() narrowed to one address (in any of its forms): what GET /users/?email= lists."""
    parameters = {"email_canonical": _canonical(email), "skip": skip, "limit": limit}
    users = list(_read(db, _USERS_WITH_EMAIL_PAGE, parameters).scalars())
    db.commit()
    return users


def create_user(
    db: Session, user: schemas.UserCreate, *, hasher: Optional[PasswordHasher] = None
) -> Optional[models.User]:
    """The new user, or None when the email is already registered (also when two requests race).

    The password is stored as an argon2id hash: `hasher`'s parameters, or those of the settings.
    It is hashed before the transaction begins, so no lock or connection is held meanwhile.
    """
    hashed_password = (hasher or default_password_hasher()).hash(user.password)
    email_canonical = canonical_email(user.email)
    begin_write(db)
    if db.execute(select(models.User.id).where(models.User.email_canonical == email_canonical)).first() is not None:
        db.rollback()
        return None
    db_user = models.User(
        email=user.email, email_canonical=email_canonical, hashed_password=hashed_password, is_active=True, items=[]
    )
    db.add(db_user)
    try:
        db.commit()
    except IntegrityError:  # a concurrent registration won the unique index
        db.rollback()
        return None
    return db_user


def get_items(db: Session, skip: int = 0, limit: int = 100) -> List[models.Item]:
    items = list(_read(db, _ITEMS_PAGE, {"skip": skip, "limit": limit}).scalars())
    db.commit()
    return items


def create_user_item(
    db: Session, item: schemas.ItemCreate, user_id: int, *, max_items: Optional[int] = None
) -> Optional[models.Item]:
    """The new item, or None when the owner does not exist (nothing is stored then).

    Raises ItemLimitReached when the owner already holds `max_items` items (default: the
    settings' MAX_ITEMS_PER_USER), and stores nothing.
    """
    limit = environment_settings().max_items_per_user if max_items is None else max_items
    begin_write(db)
    # The owner's row stays locked until the commit (FOR UPDATE on PostgreSQL and MariaDB; SQLite's
    # BEGIN IMMEDIATE already admits one writer), so two creations for one user count in turn.
    owner = select(models.User.id).where(models.User.id == user_id).with_for_update()
    if db.execute(owner).first() is None:
        db.rollback()
        return None
    held = db.execute(select(func.count()).select_from(models.Item).where(models.Item.owner_id == user_id)).scalar_one()
    if held >= limit:
        db.rollback()
        raise ItemLimitReached(limit)
    db_item = models.Item(title=item.title, description=item.description, owner_id=user_id)
    db.add(db_item)
    try:
        db.commit()
    except IntegrityError:  # the owner was deleted in between: the foreign key refused the row
        db.rollback()
        return None
    return db_item
