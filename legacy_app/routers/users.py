"""Users and their items.

Handlers are `async def` and send the blocking work to the thread pool themselves, once; the
crud functions return the read shapes, which go out as JSON without a second validation pass
(and without the second thread hop FastAPI makes to validate a sync handler's result).
`response_model` still documents every shape.
"""
from typing import List, Optional

from argon2 import PasswordHasher
from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from .. import crud, schemas
from ..db_threads import run_crud
from ..deps import DbSession, Hasher
from .params import EmailFilter, Limit, Skip, UserId

router = APIRouter(prefix="/users", tags=["users"])

NOT_FOUND = {404: {"description": "User not found"}}


@router.post(
    "/",
    response_model=schemas.User,
    responses={400: {"description": "Email already registered, or a body that cannot be decoded"}},
)
async def create_user(user: schemas.UserCreate, db: Session = DbSession, hasher: PasswordHasher = Hasher):
    """Register a user. Emails are compared case-insensitively and stored lower-cased."""
    hashed_password = await run_in_threadpool(hasher.hash, user.password)
    created = await run_crud(crud.create_user, db, email=user.email, hashed_password=hashed_password)
    if created is None:
        raise HTTPException(status_code=400, detail="Email already registered")
    return JSONResponse(created)


@router.get("/", response_model=List[schemas.User])
async def read_users(skip: int = Skip, limit: int = Limit, email: Optional[str] = EmailFilter, db: Session = DbSession):
    """Users with their items, ordered by id; `email` narrows the list to that address (any case)."""
    return JSONResponse(await run_crud(crud.list_users, db, skip=skip, limit=limit, email=email))


@router.get("/{user_id}", response_model=schemas.User, responses=NOT_FOUND)
async def read_user(user_id: int = UserId, db: Session = DbSession):
    user = await run_crud(crud.get_user, db, user_id=user_id)
    if user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return JSONResponse(user)


@router.post(
    "/{user_id}/items/",
    response_model=schemas.Item,
    responses={**NOT_FOUND, 400: {"description": "A body that cannot be decoded"}},
)
async def create_item_for_user(item: schemas.ItemCreate, user_id: int = UserId, db: Session = DbSession):
    created = await run_crud(
        crud.create_user_item, db, user_id=user_id, title=item.title, description=item.description
    )
    if created is None:
        raise HTTPException(status_code=404, detail="User not found")
    return JSONResponse(created)
