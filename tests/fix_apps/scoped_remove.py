"""A Flask habit carried over: a thread-local scoped_session, removed at the end of every request."""
import os

from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import scoped_session, sessionmaker

engine = create_engine(os.environ.get("DATABASE_URL", "sqlite:///./scoped.db"))
db_session = scoped_session(sessionmaker(autocommit=False, autoflush=False, bind=engine))

app = FastAPI()


@app.middleware("http")
async def shutdown_session(request, call_next):
    response = await call_next(request)
    db_session.remove()  # as Flask's teardown_appcontext did
    return response


@app.get("/users/")
def users():
    return {"count": db_session.execute(text("SELECT 1")).scalar()}
