"""The SQL tutorial's `get_db` yield dependency, with a streaming body that queries through the session.

Where the exit code runs depends on FastAPI: after the response up to 0.105, before it from 0.106 to
0.117 (the stream then queries a closed session), after it again from 0.118."""
import os

from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
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


@app.get("/users/")
def read_users(db: Session = Depends(get_db)):
    return {"count": db.execute(text("SELECT 1")).scalar()}


@app.get("/export")
def export(db: Session = Depends(get_db)):
    def rows():
        for n in range(3):
            yield f"{n},{db.execute(text('SELECT 1')).scalar()}\n"

    return StreamingResponse(rows(), media_type="text/csv")
