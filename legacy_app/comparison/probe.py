"""The probe app: the package's real strategy code (create_app) plus probe routes, and nothing that records.

`compare` serves it through the doctor (legacy_app/doctor/serve.py), whose instrument sees the
sessions, transactions, checkouts and response milestones; this module only provides the routes
those scenarios request. Settings come from the environment as for the service, plus
PROBE_FACTORY_FAILS=1 to make SessionLocal() raise.
"""
import contextvars
import os
import time
from typing import Any, Iterator, List

from fastapi import BackgroundTasks, FastAPI, HTTPException
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from starlette.responses import StreamingResponse

from .. import schemas
from ..config import Settings
from ..database import create_engine_from
from ..main import create_app
from ..models import User
from ..routers.deps import DbSession
from ..sessions import make_session_factory

PROBE_EMAIL = "probe-flushed@example.invalid"
SLOW_SECONDS = 0.2
BACKGROUND_DELAY = 0.2
STREAM_CHUNKS = 5

session_mark: contextvars.ContextVar = contextvars.ContextVar("session_mark")


class FactoryFailure(RuntimeError):
    pass


class ProbeSessionFactory:
    """The strategy's factory, marking a context variable where the session is made (or raising, if asked)."""

    def __init__(self, factory: Any, fails: bool) -> None:
        self.factory = factory
        self.fails = fails

    def __call__(self) -> Session:
        if self.fails:
            raise FactoryFailure("probe: SessionLocal() raised")
        db = self.factory()
        session_mark.set(id(db))  # for the contextvars scenario
        return db


def add_probe_routes(app: FastAPI) -> None:
    @app.get("/probe/select1")
    def select1(db: Session = DbSession):
        return {"one": db.execute(text("SELECT 1")).scalar()}

    @app.post("/probe/error-after-flush")
    def error_after_flush(db: Session = DbSession):
        db.add(User(email=PROBE_EMAIL, hashed_password="x"))
        db.flush()
        raise RuntimeError("probe: unhandled error after flush")

    @app.post("/probe/http-exception-after-flush")
    def http_exception_after_flush(db: Session = DbSession):
        db.add(User(email=PROBE_EMAIL, hashed_password="x"))
        db.flush()
        raise HTTPException(status_code=409, detail="probe conflict")

    @app.get("/probe/background")
    def background(tasks: BackgroundTasks, db: Session = DbSession):
        def use_request_session() -> None:
            time.sleep(BACKGROUND_DELAY)
            db.execute(select(func.count(User.id))).scalar()

        tasks.add_task(use_request_session)
        return {"ok": True}

    @app.get("/probe/stream")
    def stream(db: Session = DbSession):
        def chunks() -> Iterator[bytes]:
            for n in range(STREAM_CHUNKS):
                db.execute(select(func.count(User.id))).scalar()
                yield f"chunk {n}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/probe/contextvar")
    def contextvar(db: Session = DbSession):
        return {"visible": session_mark.get(None) is not None}

    @app.get("/probe/slow", response_model=List[schemas.User])
    def slow(db: Session = DbSession):
        users = list(db.execute(select(User).limit(1)).scalars())  # the connection stays checked out
        time.sleep(SLOW_SECONDS)
        return users


def build() -> FastAPI:
    settings = Settings.from_env()
    engine = create_engine_from(settings)
    factory = make_session_factory(engine, settings.session_strategy)
    probed = ProbeSessionFactory(factory, fails=os.environ.get("PROBE_FACTORY_FAILS") == "1")
    app = create_app(settings, engine=engine, session_factory=probed)
    add_probe_routes(app)
    return app


app = build()
