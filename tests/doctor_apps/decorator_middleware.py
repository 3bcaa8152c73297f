"""The old SQL tutorial's alt_main.py: the session made and closed by an @app.middleware("http") function.

BaseHTTPMiddleware's call_next returns when the route emits the response start, so the `finally`
closes the session before the body and the background task; the task's query then runs on a closed
session, which starts a new transaction on a connection that nobody returns.
"""
import os
import time

from fastapi import BackgroundTasks, Depends, FastAPI, Request, Response
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

app = FastAPI()


@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    response = Response("Internal server error", status_code=500)
    try:
        request.state.db = SessionLocal()
        response = await call_next(request)
    finally:
        request.state.db.close()
    return response


def get_db(request: Request) -> Session:
    return request.state.db


@app.get("/users/")
def read_users(db: Session = Depends(get_db)):
    return {"count": db.execute(text("SELECT 1")).scalar()}


@app.get("/report")
def report(tasks: BackgroundTasks, db: Session = Depends(get_db)):
    def write_report() -> None:
        time.sleep(0.1)
        db.execute(text("SELECT 1")).scalar()

    tasks.add_task(write_report)
    return {"queued": True}
