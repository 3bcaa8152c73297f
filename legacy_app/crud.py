"""Data functions. Each borrows the request's session and is one complete unit of work.

Every function ends its transaction before returning (commit, or rollback on refusal), so no
pooled connection stays checked out while the response is validated and sent; objects stay
loaded because the session does not expire them on commit.
"""
from typing import List, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from .database import begin_write
from .models import Item, User


def get_user(db: Session, *, user_id: int) -> Optional[User]:
    query = select(User).options(selectinload(User.items)).where(User.id == user_id)
    user = db.execute(query).scalar_one_or_none()
    db.commit()
    return user


def list_users(db: Session, *, skip: int, limit: int, email: Optional[str] = None) -> List[User]:
    # Two queries whatever the page size: users, then all their items in one IN (...) query.
    query = select(User).options(selectinload(User.items)).order_by(User.id).offset(skip).limit(limit)
    if email is not None:
        query = query.where(User.email == email.lower())
    users = list(db.execute(query).scalars())
    db.commit()
    return users


def list_items(db: Session, *, skip: int, limit: int) -> List[Item]:
    items = list(db.execute(select(Item).order_by(Item.id).offset(skip).limit(limit)).scalars())
    db.commit()
    return items


def create_user(db: Session, *, email: str, hashed_password: str) -> Optional[User]:
    """The new user, or None when the email is already registered (also when two requests race)."""
    begin_write(db)
    if db.execute(select(User.id).where(User.email == email)).first() is not None:
        db.rollback()
        return None
    user = User(email=email, hashed_password=hashed_password, is_active=True, items=[])
    db.add(user)
    try:
        db.commit()
    except IntegrityError:  # a concurrent registration won the unique index
        db.rollback()
        return None
    return user


def create_user_item(db: Session, *, user_id: int, title: str, description: Optional[str]) -> Optional[Item]:
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
    return item
