"""Data functions. Each borrows the request's session and is one complete unit of work.

Every function ends its transaction before returning (commit, or rollback on refusal), so no
pooled connection stays checked out while the response is sent. Reads select plain columns and
return the API's read shapes as dicts: building ORM objects and then validating them again
against the response model cost more than the queries themselves (benchmarks/run.py).
"""
from typing import Any, Dict, Iterable, List, Optional

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .database import begin_write
from .models import Item, User

UserOut = Dict[str, Any]  # {email, id, is_active, items: [ItemOut]}, as schemas.User
ItemOut = Dict[str, Any]  # {title, description, id, owner_id}, as schemas.Item

# Statements built once: reads run them on the session's connection (Core execution; the ORM
# layer has nothing to add to plain column reads).
_USER_COLUMNS = (User.email, User.id, User.is_active)
_ITEM_COLUMNS = (Item.title, Item.description, Item.id, Item.owner_id)
# One user and its items in one statement (a user without items gives one row of NULL items).
_USER_WITH_ITEMS = (
    select(*_USER_COLUMNS, *_ITEM_COLUMNS)
    .outerjoin(Item, Item.owner_id == User.id)
    .where(User.id == bindparam("user_id"))
    .order_by(Item.id)
)
_USERS_PAGE = select(*_USER_COLUMNS).order_by(User.id).offset(bindparam("skip")).limit(bindparam("limit"))
_USER_BY_EMAIL = _USERS_PAGE.where(User.email == bindparam("email"))
_ITEMS_OF_USER = select(*_ITEM_COLUMNS).where(Item.owner_id == bindparam("owner_id")).order_by(Item.id)
_ITEMS_OF_USERS = select(*_ITEM_COLUMNS).where(Item.owner_id.in_(bindparam("owner_ids", expanding=True))).order_by(Item.id)
_ITEMS_PAGE = select(*_ITEM_COLUMNS).order_by(Item.id).offset(bindparam("skip")).limit(bindparam("limit"))


def get_user(db: Session, *, user_id: int) -> Optional[UserOut]:
    rows = db.connection().execute(_USER_WITH_ITEMS, {"user_id": user_id}).all()
    db.commit()
    if not rows:
        return None
    email, id_, is_active = rows[0][:3]
    items = [_item(*row[3:]) for row in rows if row[5] is not None]  # row[5]: the item's id
    return {"email": email, "id": id_, "is_active": is_active, "items": items}


def list_users(db: Session, *, skip: int, limit: int, email: Optional[str] = None) -> List[UserOut]:
    connection = db.connection()
    if email is None:
        rows = connection.execute(_USERS_PAGE, {"skip": skip, "limit": limit})
    else:
        rows = connection.execute(_USER_BY_EMAIL, {"skip": skip, "limit": limit, "email": email.lower()})
    users = _with_items(connection, rows)
    db.commit()
    return users


def list_items(db: Session, *, skip: int, limit: int) -> List[ItemOut]:
    rows = db.connection().execute(_ITEMS_PAGE, {"skip": skip, "limit": limit})
    items = [_item(*row) for row in rows]
    db.commit()
    return items


def _with_items(connection: Connection, user_rows: Iterable[Any]) -> List[UserOut]:
    """Users with their items: two queries whatever the page size (users, then one IN (...))."""
    users = [{"email": email, "id": id_, "is_active": is_active, "items": []} for email, id_, is_active in user_rows]
    if users:
        by_id = {user["id"]: user for user in users}
        if len(users) == 1:  # a plain `=` is cheaper to prepare than an expanding IN (...)
            rows = connection.execute(_ITEMS_OF_USER, {"owner_id": users[0]["id"]})
        else:
            rows = connection.execute(_ITEMS_OF_USERS, {"owner_ids": list(by_id)})
        for row in rows:
            by_id[row[3]]["items"].append(_item(*row))
    return users


def _item(title: str, description: Optional[str], id_: int, owner_id: int) -> ItemOut:
    return {"title": title, "description": description, "id": id_, "owner_id": owner_id}


def create_user(db: Session, *, email: str, hashed_password: str) -> Optional[UserOut]:
    """The new user, or None when the email is already registered (also when two requests race)."""
    begin_write(db)
    if db.execute(select(User.id).where(User.email == email)).first() is not None:
        db.rollback()
        return None
    user = User(email=email, hashed_password=hashed_password, is_active=True)
    db.add(user)
    try:
        db.commit()
    except IntegrityError:  # a concurrent registration won the unique index
        db.rollback()
        return None
    return {"email": user.email, "id": user.id, "is_active": user.is_active, "items": []}


def create_user_item(db: Session, *, user_id: int, title: str, description: Optional[str]) -> Optional[ItemOut]:
    """The new item, or None when the owner does not exist (nothing is stored then)."""
    begin_write(db)
    if db.get(User, user_id) is None:
        db.rollback()
        return None
    item = Item(title=title, description=description, owner_id=user_id)
    db.add(item)
    try:
        db.commit()
    except IntegrityError:  # the owner was deleted in between: the foreign key refused the row
        db.rollback()
        return None
    return _item(item.title, item.description, item.id, item.owner_id)
