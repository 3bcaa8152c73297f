"""One session made at import time and shared by every request: its first query begins a transaction
that nothing ever ends (what PostgreSQL shows as "idle in transaction")."""
import os

from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
db = SessionLocal()

app = FastAPI()


@app.get("/users/")
def read_users():
    return {"count": db.execute(text("SELECT 1")).scalar()}
