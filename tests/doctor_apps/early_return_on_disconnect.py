"""A long-poll route that opens its own session and stops early when the client has gone, returning
before its close(): only a client that hangs up leaks the session and its connection."""
import asyncio
import os

from fastapi import FastAPI, Request, Response
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

app = FastAPI()


@app.get("/updates")
async def updates(request: Request):
    db = SessionLocal()
    latest = db.execute(text("SELECT 1")).scalar()
    for _ in range(10):  # wait up to 0.3 s for news
        await asyncio.sleep(0.03)
        if await request.is_disconnected():
            return Response(status_code=499)
    db.close()
    return {"latest": latest}
