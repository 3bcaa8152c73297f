"""Inventory service, as a user wrote it: the session middleware is a BaseHTTPMiddleware subclass
that keeps the session on request.state.session (not .db)."""
import os
import time

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.base import BaseHTTPMiddleware  # the only middleware base we use

DATABASE_URL = os.environ.get('DATABASE_URL', 'sqlite:///./inventory.db')
engine = create_engine(DATABASE_URL, connect_args={'check_same_thread': False} if DATABASE_URL.startswith('sqlite') else {})
SessionFactory = sessionmaker(bind=engine, autoflush=False)


class SessionPerRequest(BaseHTTPMiddleware):
    """Open a session for each request, close it after."""

    async def dispatch(self, request: Request, call_next):
        request.state.session = SessionFactory()
        try:
            response = await call_next(request)
        finally:
            request.state.session.close()   # always give the connection back
        return response


app = FastAPI(title='inventory')
app.add_middleware(SessionPerRequest)


def get_session(request: Request) -> Session:
    return request.state.session


@app.get('/stock/')
def stock(session: Session = Depends(get_session)):
    return {'count': session.execute(text('SELECT 1')).scalar()}


@app.get('/audit')
def audit(tasks: BackgroundTasks, session: Session = Depends(get_session)):
    def record() -> None:
        time.sleep(0.05)
        session.execute(text('SELECT 1')).scalar()

    tasks.add_task(record)
    return {'queued': True}
