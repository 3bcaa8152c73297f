"""A decorator middleware that closes the session after call_next, without `finally`: a route that
raises skips the close."""
import os

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

app = FastAPI()


@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    request.state.db = SessionLocal()
    response = await call_next(request)
    request.state.db.close()
    return response


def get_db(request: Request) -> Session:
    return request.state.db


@app.get("/users/")
def read_users(db: Session = Depends(get_db)):
    return {"count": db.execute(text("SELECT 1")).scalar()}


@app.get("/fail")
def fail(db: Session = Depends(get_db)):
    raise RuntimeError("the route failed before touching the database")
