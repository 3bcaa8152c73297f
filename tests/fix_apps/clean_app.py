"""Already on legacy_app.sessions: nothing for fix to do."""
import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from legacy_app.sessions import DBSessionMiddleware, get_db

engine = create_engine(os.environ.get("DATABASE_URL", "sqlite:///./clean.db"))
SessionLocal = sessionmaker(bind=engine)

app = FastAPI()
app.add_middleware(DBSessionMiddleware, session_factory=SessionLocal)


@app.get("/")
async def root(db: Session = Depends(get_db)):
    return {"ok": True}
