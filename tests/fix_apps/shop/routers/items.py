from fastapi import APIRouter, Depends
from sqlalchemy import text
from sqlalchemy.orm import Session

from shop import database
from ..database import get_db

router = APIRouter(prefix="/items", tags=["items"])


@router.get("/")
def list_items(db: Session = Depends(get_db)):
    return [{"id": db.execute(text("SELECT 1")).scalar()}]


@router.put("/{item_id}")
def update_item(item_id: int, db: Session = Depends(database.get_db)):
    return {"id": item_id, "updated": bool(db.execute(text("SELECT 1")).scalar())}
