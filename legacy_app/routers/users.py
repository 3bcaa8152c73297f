"""Users and their items: the tutorial's routes.

Handlers are `async def` and place the crud call themselves (db/calls.py): at most one thread hop,
none for a SQLite read, where a plain `def` handler with a response_model costs two, as FastAPI
validates its result in the thread pool too (db/calls.py; figures in docs/performance.md).
"""
import logging
from typing import List, Optional

from argon2 import PasswordHasher
from fastapi import APIRouter, HTTPException
from sqlalchemy.orm import Session

from .. import crud, schemas
from ..accounts.hashing_lane import HashingLane, LaneBusy
from ..db.calls import run_read, run_write
from ..http.errors import RETRY_AFTER_SECONDS
from .deps import DbSession, Hasher, HashingLaneDep, MaxItemsPerUser
from .params import EmailFilter, Limit, Skip, UserId

logger = logging.getLogger("legacy_app")
router = APIRouter(prefix="/users", tags=["users"])

NOT_FOUND = {404: {"description": "User not found"}}
NOT_JSON = {415: {"description": "A body not declared as application/json"}}


@router.post(
    "/",
    response_model=schemas.User,
    responses={400: {"description": "Email already registered, or a body that cannot be decoded"}, **NOT_JSON,
               503: {"description": "Database busy or unreachable, or every password-hashing lane busy; retry after "
                                    "the Retry-After seconds"}},
)
async def create_user(
    user: schemas.UserCreate, db: Session = DbSession, hasher: PasswordHasher = Hasher, lane: HashingLane = HashingLaneDep
):
    """Register a user. Emails are compared in a canonical form (case, width and IDNA spellings are one
    address) and stored as typed, lower-cased."""
    # The hashing lane, not the shared thread pool nor the SQLite threads: most of this call is
    # hashing the password, whose memory the lane bounds.
    try:
        db_user = await lane.run(crud.create_user, db, user, hasher=hasher)
    except LaneBusy as busy:
        logger.warning("503 for a registration: %s", busy)
        raise HTTPException(status_code=503, detail="Too many registrations at once, try again shortly",
                            headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    if db_user is None:
        raise HTTPException(status_code=400, detail="Email already registered")
    return db_user


@router.get("/", response_model=List[schemas.User])
async def read_users(skip: int = Skip, limit: int = Limit, email: Optional[str] = EmailFilter, db: Session = DbSession):
    """Users with their items, ordered by id; `email` narrows the list to that address (in any of its forms)."""
    if email is None:
        return await run_read(crud.get_users, db, skip=skip, limit=limit)
    return await run_read(crud.get_users_with_email, db, email, skip=skip, limit=limit)


@router.get("/{user_id}", response_model=schemas.User, responses=NOT_FOUND)
async def read_user(user_id: int = UserId, db: Session = DbSession):
    db_user = await run_read(crud.get_user, db, user_id=user_id)
    if db_user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return db_user


@router.post(
    "/{user_id}/items/",
    response_model=schemas.Item,
    responses={
        **NOT_FOUND,
        400: {"description": "A body that cannot be decoded"},
        409: {"description": "The user already holds MAX_ITEMS_PER_USER items (nothing stored)"},
        **NOT_JSON,
    },
)
async def create_item_for_user(
    item: schemas.ItemCreate, user_id: int = UserId, db: Session = DbSession, max_items: int = MaxItemsPerUser
):
    """Add an item to a user; a user holds at most MAX_ITEMS_PER_USER items (409 beyond)."""
    try:
        db_item = await run_write(crud.create_user_item, db, item=item, user_id=user_id, max_items=max_items)
    except crud.ItemLimitReached as full:
        # 409: the body is valid (the same item is accepted for another user); the owner's state is not.
        raise HTTPException(status_code=409, detail=str(full)) from None
    if db_item is None:
        raise HTTPException(status_code=404, detail="User not found")
    return db_item
