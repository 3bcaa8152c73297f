"""The API under /api/v1, its OpenAPI at /api/v1/openapi.json (the full-stack template's layout), and a
route whose path parameter only ids listed by another route can fill. The tutorial's yield dependency:
clean, once the doctor finds the schema and the ids."""
import os

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


router = APIRouter()
USERS = {7: "ann@example.com", 9: "bob@example.com"}


@router.get("/users/")
def read_users(db: Session = Depends(get_db)):
    db.execute(text("SELECT 1"))
    return [{"id": user_id, "email": email} for user_id, email in USERS.items()]


@router.get("/users/{user_id}")
def read_user(user_id: int, db: Session = Depends(get_db)):
    db.execute(text("SELECT 1"))
    if user_id not in USERS:
        raise HTTPException(status_code=404, detail="User not found")
    return {"id": user_id, "email": USERS[user_id]}


app = FastAPI(openapi_url="/api/v1/openapi.json")
app.include_router(router, prefix="/api/v1")
