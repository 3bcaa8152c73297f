"""Notes, on SQLAlchemy's asyncio: an async_sessionmaker and a session middleware that opens the
AsyncSession in `async with`."""
import asyncio
import os

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from legacy_app.sessions import AsyncDBSessionMiddleware

_url = make_url(os.environ.get("DATABASE_URL", "sqlite:///./notes.db"))
_driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}[_url.get_backend_name()]
engine = create_async_engine(_url.set(drivername=_driver))
async_session = async_sessionmaker(engine, expire_on_commit=False)

app = FastAPI()
app.add_middleware(AsyncDBSessionMiddleware, session_factory=async_session)


async def get_db(request: Request) -> AsyncSession:
    return request.state.db


@app.get("/notes/")
async def list_notes(db: AsyncSession = Depends(get_db)):
    return {"count": (await db.execute(text("SELECT 3"))).scalar()}


@app.post("/notes/reindex")
async def reindex(tasks: BackgroundTasks, db: AsyncSession = Depends(get_db)):
    async def run() -> None:
        await asyncio.sleep(0.05)
        await db.execute(text("SELECT 1"))

    tasks.add_task(run)
    return {"reindexing": True}
