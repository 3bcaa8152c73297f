"""An app built by a factory (tests call create_app()); the middleware is registered inside it."""
import os

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from legacy_app.sessions import DBSessionMiddleware


def get_db(request: Request) -> Session:
    return request.state.db


def create_app() -> FastAPI:
    url = os.environ.get("DATABASE_URL", "sqlite:///./factory.db")
    engine = create_engine(url, connect_args={"check_same_thread": False} if url.startswith("sqlite") else {})
    make_session = sessionmaker(bind=engine)
    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, session_factory=make_session)

    @app.get("/ping")
    def ping(db: Session = Depends(get_db)):
        return {"pong": db.execute(text("SELECT 1")).scalar()}

    return app
