"""The probe server: the package's real strategy code, probe routes, and observers.

Observers: a wrapper around the session factory (create/close, with the thread that did it),
SQLAlchemy pool events (checkout/checkin), and an outermost ASGI recorder that notes when the
response start and the last body message were handed to the server. Routes under /_probe/ are
answered by the recorder itself and never reach the application or its strategy.

Settings come from the environment as for the service, plus PROBE_FACTORY_FAILS=1 to make
SessionLocal() raise. Automatic garbage collection is off, so that a leaked connection stays
visible instead of being reclaimed at a moment nobody chose.
"""
import contextvars
import gc
import json
import os
import threading
import time
from typing import Any, Dict, Iterator, List

from fastapi import BackgroundTasks, FastAPI, HTTPException
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, StreamingResponse

from .. import schemas
from ..config import Settings
from ..database import create_engine_from
from ..sessions import make_session_factory
from ..deps import DbSession
from ..main import create_app
from ..models import User

PROBE_EMAIL = "probe-flushed@example.invalid"
SLOW_SECONDS = 0.2
BACKGROUND_DELAY = 0.2
STREAM_CHUNKS = 5

_events: List[Dict[str, Any]] = []
_events_lock = threading.Lock()
session_mark: contextvars.ContextVar = contextvars.ContextVar("session_mark")


def record(name: str, **detail: Any) -> None:
    on_loop = threading.current_thread() is threading.main_thread()
    entry = {"t": time.perf_counter(), "event": name, "thread": "event-loop" if on_loop else "worker", **detail}
    with _events_lock:
        _events.append(entry)


class FactoryFailure(RuntimeError):
    pass


class ObservedSessionFactory:
    def __init__(self, factory: Any, fails: bool) -> None:
        self.factory = factory
        self.fails = fails

    def __call__(self) -> Session:
        if self.fails:
            raise FactoryFailure("probe: SessionLocal() raised")
        db = self.factory()
        record("session.create", session=id(db))
        session_mark.set(id(db))  # for the contextvars scenario
        close = db.close

        def observed_close() -> None:
            record("session.close", session=id(db))
            close()

        db.close = observed_close  # type: ignore[method-assign]
        return db


class ResponseRecorder:
    """Outermost ASGI layer: notes what reaches the server, answers /_probe/ itself."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.engine = app.state.engine

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/_probe/"):
            await self.answer_control(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def recording_send(message: Dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                record("response.start", status=message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record("response.body_complete")

        try:
            await self.app(scope, receive, recording_send)
        except Exception as error:
            record("server.exception", type=type(error).__name__)
            raise

    async def answer_control(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/_probe/reset":
            with _events_lock:
                _events.clear()
            body: Any = {"ok": True}
        elif path == "/_probe/events":
            with _events_lock:
                body = {"events": list(_events), "checked_out": self.engine.pool.checkedout()}
        elif path == "/_probe/rows":
            with self.engine.connect() as connection:
                count = connection.execute(select(func.count(User.id)).where(User.email == PROBE_EMAIL)).scalar()
            body = {"rows": count}
        elif path == "/_probe/cleanup":
            with self.engine.begin() as connection:
                connection.execute(User.__table__.delete().where(User.email == PROBE_EMAIL))
            body = {"ok": True}
        else:
            body = {"error": "unknown probe control"}
        await JSONResponse(json.loads(json.dumps(body, default=str)))(scope, receive, send)


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
            record("background.start")
            time.sleep(BACKGROUND_DELAY)
            try:
                db.execute(select(func.count(User.id))).scalar()
                record("background.query_ok")
            except Exception as error:
                record("background.query_failed", type=type(error).__name__)
            record("background.end")

        tasks.add_task(use_request_session)
        return {"ok": True}

    @app.get("/probe/stream")
    def stream(db: Session = DbSession):
        def chunks() -> Iterator[bytes]:
            try:
                for n in range(STREAM_CHUNKS):
                    try:
                        db.execute(select(func.count(User.id))).scalar()
                        record("stream.query_ok")
                    except Exception as error:
                        record("stream.query_failed", type=type(error).__name__)
                        raise
                    yield f"chunk {n}\n".encode()
            finally:
                record("stream.end")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/probe/contextvar")
    def contextvar(db: Session = DbSession):
        return {"visible": session_mark.get(None) is not None}

    @app.get("/probe/slow", response_model=List[schemas.User])
    def slow(db: Session = DbSession):
        users = list(db.execute(select(User).limit(1)).scalars())  # the connection stays checked out
        time.sleep(SLOW_SECONDS)
        return users


def build() -> ResponseRecorder:
    settings = Settings.from_env()
    engine = create_engine_from(settings)
    factory = make_session_factory(engine, settings.session_strategy)
    observed = ObservedSessionFactory(factory, fails=os.environ.get("PROBE_FACTORY_FAILS") == "1")
    event.listen(engine, "checkout", lambda *args: record("pool.checkout"))
    event.listen(engine, "checkin", lambda *args: record("pool.checkin"))
    app = create_app(settings, engine=engine, session_factory=observed)
    add_probe_routes(app)
    return ResponseRecorder(app)


gc.disable()
app = build()
