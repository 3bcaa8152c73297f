"""Unit of work per request: the middleware commits when the route succeeded, rolls back otherwise."""
import os

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

engine = create_engine(os.environ.get("DATABASE_URL", "sqlite:///./uow.db"))
SessionLocal = sessionmaker(bind=engine)
app = FastAPI()


@app.middleware("http")
async def unit_of_work(request: Request, call_next):
    request.state.db = SessionLocal()
    try:
        response = await call_next(request)
        if response.status_code < 400:
            request.state.db.commit()
        return response
    except Exception:
        request.state.db.rollback()
        raise
    finally:
        request.state.db.close()


def get_db(request: Request) -> Session:
    return request.state.db


@app.post("/counter")
def bump(db: Session = Depends(get_db)):
    return {"one": db.execute(text("SELECT 1")).scalar()}
