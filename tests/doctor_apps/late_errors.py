"""Errors after the response began: a streamed export that fails half-way and a background task that
fails, each beside a twin that succeeds. The sessions are the tutorial's `yield` dependency's, closed
properly: the only hazard is the status the client got, 200, for work that failed."""
import json
import os

from fastapi import BackgroundTasks, Depends, FastAPI
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


def rows(fail_after: int):
    yield "["
    for n in range(3):
        if n == fail_after:
            raise RuntimeError("the export lost its source half-way")
        yield ("," if n else "") + json.dumps({"n": n})
    yield "]"


@app.get("/export/whole")
def export_whole():
    return StreamingResponse(rows(fail_after=-1), media_type="application/json")


@app.get("/export/cut")
def export_cut():
    return StreamingResponse(rows(fail_after=1), media_type="application/json")


def send_report(fail: bool) -> None:
    if fail:
        raise ConnectionError("the mail server refused the report")


@app.get("/tasks/ok")
def task_ok(tasks: BackgroundTasks, db: Session = Depends(get_db)):
    tasks.add_task(send_report, False)
    return {"count": db.execute(text("SELECT 1")).scalar()}


@app.get("/tasks/fail")
def task_fail(tasks: BackgroundTasks, db: Session = Depends(get_db)):
    tasks.add_task(send_report, True)
    return {"count": db.execute(text("SELECT 1")).scalar()}
