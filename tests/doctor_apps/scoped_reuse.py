"""A thread-local scoped_session that each route closes when it is done, and never removes.

The next request on the same worker thread gets the same session object back, closed, and uses it
again: SQLAlchemy allows that, and each use ends (the route closes it again) before its request
does. Clean: not a use after close that leaks anything."""
import os

from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import scoped_session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
Session = scoped_session(sessionmaker(autocommit=False, autoflush=False, bind=engine))

app = FastAPI()


@app.get("/users/")
def read_users():
    db = Session()
    try:
        return {"count": db.execute(text("SELECT 1")).scalar()}
    finally:
        db.close()


@app.get("/items/")
def read_items():
    db = Session()
    try:
        return {"count": db.execute(text("SELECT 2")).scalar()}
    finally:
        db.close()
