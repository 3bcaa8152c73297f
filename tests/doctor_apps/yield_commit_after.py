"""The tutorial's `get_db` yield dependency that commits after the `yield`: a write, a write with
`scope="function"`, and a streamed body that reads through the session (`doctor --versions`' known answer).

Where the code after the `yield` runs depends on FastAPI: after the response up to 0.105 and again from
0.118 (the client has its 200 before the commit: response_before_commit), before the response from 0.106
to 0.117 (the commit is in time, but the streamed body then reads through a closed session, which
begins a transaction nobody ends). `Depends(get_db, scope="function")` (0.121+) runs it as soon as the
route returns; where FastAPI has no `scope`, /items/function-scope is a plain Depends and shows it.
Its requests (POSTs with no body, and the stream): yield_commit_after.requests.json.
"""
import inspect
import os

from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import Column, Integer, String, create_engine, func
from sqlalchemy.orm import Session, sessionmaker

try:
    from sqlalchemy.orm import declarative_base
except ImportError:  # SQLAlchemy 1.3
    from sqlalchemy.ext.declarative import declarative_base

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
Base = declarative_base()


class Item(Base):
    __tablename__ = "yield_commit_after_items"
    id = Column(Integer, primary_key=True)
    title = Column(String(50), nullable=False)


Base.metadata.create_all(engine)
app = FastAPI()


def get_db():
    db = SessionLocal()
    try:
        yield db
        db.commit()
    finally:
        db.close()


# Decided at import, so the app imports on every FastAPI the table covers.
HAS_SCOPE = "scope" in inspect.signature(Depends).parameters
FunctionScopedDb = Depends(get_db, scope="function") if HAS_SCOPE else Depends(get_db)


@app.post("/items")
def create_item(db: Session = Depends(get_db)):
    item = Item(title="written")
    db.add(item)
    db.flush()
    return {"id": item.id}


@app.post("/items/function-scope")
def create_item_committed_first(db: Session = FunctionScopedDb):
    item = Item(title="written")
    db.add(item)
    db.flush()
    return {"id": item.id, "scope": "function" if HAS_SCOPE else "request (no scope= on this FastAPI)"}


@app.get("/items/export")
def export_items(db: Session = Depends(get_db)):
    def rows():
        for n in range(3):
            yield f"{n},{db.query(func.count(Item.id)).scalar()}\n"

    return StreamingResponse(rows(), media_type="text/csv")
