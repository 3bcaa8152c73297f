"""Orders API. DB session handling follows the pattern from our old Dispatch-based service:
one session per request, rolled back on error, closed at the end."""
import os
from typing import Iterator

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./orders.db")
engine = create_engine(
    DATABASE_URL,
    connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {},
)
# close_resets_only=False (SQLAlchemy 2.0.22+): a closed session refuses use instead of opening again
SessionLocal = sessionmaker(autoflush=False, bind=engine, close_resets_only=False)

app = FastAPI()

# --- database session -------------------------------------------------------
# TODO(ops): move to a proper middleware module once we have more than one app


@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    db = SessionLocal()
    request.state.db = db
    try:
        response = await call_next(request)
    except Exception:
        db.rollback()
        raise
    finally:
        db.close()
    return response


def get_db(request: Request) -> Session:
    return request.state.db


@app.get("/orders/{order_id}")
def read_order(order_id: int, db: Session = Depends(get_db)):
    if order_id != 1:
        raise HTTPException(status_code=404, detail="Order not found")
    return {"id": order_id, "total": db.execute(text("SELECT 42")).scalar()}


@app.get("/orders.csv")
def export_orders(db: Session = Depends(get_db)):
    def rows() -> Iterator[str]:
        yield "id,total\n"
        for n in range(1, 4):
            yield f"{n},{db.execute(text('SELECT 42')).scalar()}\n"

    return StreamingResponse(rows(), media_type="text/csv")
