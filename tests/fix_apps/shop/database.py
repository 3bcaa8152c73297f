import os

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

engine = create_engine(os.environ.get("DATABASE_URL", "sqlite:///./shop.db"))
SessionLocal = sessionmaker(bind=engine, autoflush=False)


def get_db():
    # A transaction per request: committed when the block ends, rolled back if the route raised.
    with SessionLocal.begin() as db:
        yield db
