from typing import List

from fastapi import APIRouter
from sqlalchemy.orm import Session

from .. import crud, schemas
from ..db.calls import run_read
from .deps import DbSession
from .params import Limit, Skip

router = APIRouter(prefix="/items", tags=["items"])


@router.get("/", response_model=List[schemas.Item])
async def read_items(skip: int = Skip, limit: int = Limit, db: Session = DbSession):
    """Items of all users, ordered by id."""
    return await run_read(crud.get_items, db, skip=skip, limit=limit)
