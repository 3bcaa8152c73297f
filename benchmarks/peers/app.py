"""The FastAPI SQL tutorial's app, its session handled the way PEER names (uvicorn benchmarks.peers.app:app).

PEER=decorator            the tutorial's `@app.middleware("http")` (sql_app/alt_main.py)
PEER=ours                 legacy_app.sessions.DBSessionMiddleware and its get_db
PEER=fastapi-sqlalchemy   fastapi-sqlalchemy's DBSessionMiddleware and `db.session`
PEER=yield                the tutorial's `yield` dependency (sql_app/main.py)
PEER=advanced-alchemy     advanced-alchemy's FastAPI extension, its sync config, `provide_session()`

Each is written as its documentation shows it. The tutorial's models, schemas and crud
(benchmarks/tutorial_app) are the same for all: a route gets its session through one dependency,
`get_db`, and only where that comes from differs. DATABASE_URL names the (seeded) SQLite file.
"""
import os
from typing import Callable, Dict, Iterator

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.peers import PEERS
from benchmarks.tutorial_app import crud, schemas

# The tutorial's database.py.
SQLALCHEMY_DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./sql_app.db")
engine = create_engine(SQLALCHEMY_DATABASE_URL, connect_args={"check_same_thread": False})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

Mount = Callable[[FastAPI], Callable[..., Session]]


def mount_decorator(app: FastAPI) -> Callable[..., Session]:
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

    return get_db


def mount_ours(app: FastAPI) -> Callable[..., Session]:
    from legacy_app.sessions import DBSessionMiddleware, get_db

    app.add_middleware(DBSessionMiddleware, session_factory=SessionLocal)
    return get_db


def mount_fastapi_sqlalchemy(app: FastAPI) -> Callable[..., Session]:
    from fastapi_sqlalchemy import DBSessionMiddleware, db

    # It makes its own sessionmaker over the engine given; the tutorial's options (autocommit=False
    # is SQLAlchemy 2's default and only value).
    app.add_middleware(DBSessionMiddleware, custom_engine=engine, session_args={"autoflush": False})

    async def get_db() -> Session:  # `db.session` as a route would read it inline: no thread
        return db.session

    return get_db


def mount_yield(app: FastAPI) -> Callable[..., Iterator[Session]]:
    def get_db() -> Iterator[Session]:
        db = SessionLocal()
        try:
            yield db
        finally:
            db.close()

    return get_db


def mount_advanced_alchemy(app: FastAPI) -> Callable[..., Session]:
    from advanced_alchemy.extensions.fastapi import AdvancedAlchemy, SQLAlchemySyncConfig, SyncSessionConfig

    # The tutorial's engine and session options; commit_mode stays "manual", its default.
    config = SQLAlchemySyncConfig(engine_instance=engine, session_config=SyncSessionConfig(autoflush=False))
    alchemy = AdvancedAlchemy(config=config, app=app)
    return alchemy.provide_session()


MOUNTS: Dict[str, Mount] = {
    "decorator": mount_decorator,
    "ours": mount_ours,
    "fastapi-sqlalchemy": mount_fastapi_sqlalchemy,
    "yield": mount_yield,
    "advanced-alchemy": mount_advanced_alchemy,
}

PEER = os.environ.get("PEER", "ours")
if PEER not in MOUNTS:
    raise RuntimeError(f"PEER must be one of {', '.join(PEERS)}; got {PEER!r}")

app = FastAPI()
get_db = MOUNTS[PEER](app)


@app.get("/users/{user_id}", response_model=schemas.User)
def read_user(user_id: int, db: Session = Depends(get_db)):
    db_user = crud.get_user(db, user_id=user_id)
    if db_user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return db_user


@app.get("/ping")
async def ping():
    return {"ping": "pong"}
