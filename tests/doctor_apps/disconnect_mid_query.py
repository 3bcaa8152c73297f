"""The tutorial's yield dependency and a route whose query takes 0.3 s, so that a client hanging up
right after sending the request is gone while the query runs."""
import os
import time

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

app = FastAPI()


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


@app.get("/slow")
def slow(db: Session = Depends(get_db)):
    db.execute(text("SELECT 1")).scalar()
    time.sleep(0.3)  # a slow query, as seen from outside: the connection is held
    return {"count": db.execute(text("SELECT 1")).scalar()}
