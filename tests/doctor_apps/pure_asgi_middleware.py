"""A pure ASGI middleware owns the session: made before the app runs, closed in `finally` after it returned,
which is after the last body message and after the background tasks. Clean."""
import os
import time

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)


class DBSessionMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        db = SessionLocal()
        scope.setdefault("state", {})["db"] = db
        try:
            await self.app(scope, receive, send)
        finally:
            db.close()


app = FastAPI()
app.add_middleware(DBSessionMiddleware)


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
