"""AsyncSession apps: `leaking`, the decorator middleware's shape on AsyncSession (closed before the
background task uses it), and `clean`, the same routes with the session from an `async with` yield
dependency. DATABASE_URL is the synchronous URL the tests give; the async driver is derived from it."""
import asyncio
import os

from fastapi import BackgroundTasks, Depends, FastAPI, Request, Response
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import sessionmaker

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
url = make_url(os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db"))
engine = create_async_engine(url.set(drivername=ASYNC_DRIVERS[url.get_backend_name()]))
AsyncSessionLocal = sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def routes(app: FastAPI, get_db) -> None:
    @app.get("/users/")
    async def read_users(db: AsyncSession = Depends(get_db)):
        return {"count": (await db.execute(text("SELECT 1"))).scalar()}

    @app.get("/report")
    async def report(tasks: BackgroundTasks, db: AsyncSession = Depends(get_db)):
        async def write_report() -> None:
            await asyncio.sleep(0.1)
            await db.execute(text("SELECT 1"))

        tasks.add_task(write_report)
        return {"queued": True}


leaking = FastAPI()


@leaking.middleware("http")
async def db_session_middleware(request: Request, call_next):
    response = Response("Internal server error", status_code=500)
    try:
        request.state.db = AsyncSessionLocal()
        response = await call_next(request)
    finally:
        await request.state.db.close()
    return response


def state_db(request: Request) -> AsyncSession:
    return request.state.db


routes(leaking, state_db)

clean = FastAPI()


async def yielded_db():
    async with AsyncSessionLocal() as db:
        yield db


routes(clean, yielded_db)
