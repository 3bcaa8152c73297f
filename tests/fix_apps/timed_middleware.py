"""Two middlewares: one only times requests (no session: not fix's business), the other opens the
session *and* sets a response header, so it is more than a session middleware."""
import os
import time

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

engine = create_engine(os.environ.get("DATABASE_URL", "sqlite:///./timed.db"))
SessionLocal = sessionmaker(bind=engine)

app = FastAPI()


@app.middleware("http")
async def add_process_time_header(request: Request, call_next):
    start = time.perf_counter()
    response = await call_next(request)
    response.headers["X-Process-Time"] = f"{time.perf_counter() - start:.4f}"
    return response


@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    request.state.db = SessionLocal()
    try:
        response = await call_next(request)
        response.headers["X-DB-Session"] = "1"
    finally:
        request.state.db.close()
    return response


def get_db(request: Request) -> Session:
    return request.state.db


@app.get("/")
def root(db: Session = Depends(get_db)):
    return {"one": db.execute(text("SELECT 1")).scalar()}
