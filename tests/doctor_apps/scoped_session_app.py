"""A thread-local scoped_session, removed by a decorator middleware after call_next.

The route runs in a worker thread and gets that thread's session; the middleware's remove() runs on
the event loop's thread and closes that thread's session, not the one the route used."""
import os

from fastapi import FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.orm import scoped_session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = scoped_session(sessionmaker(autocommit=False, autoflush=False, bind=engine))

app = FastAPI()


@app.middleware("http")
async def remove_session(request: Request, call_next):
    try:
        return await call_next(request)
    finally:
        SessionLocal.remove()


@app.get("/users/")
def read_users():
    return {"count": SessionLocal.execute(text("SELECT 1")).scalar()}
