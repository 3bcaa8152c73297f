"""Reports: the tutorial's yield dependency, grown a commit after the yield; one route streams a CSV that
reads through the session while it is sent."""
import os

from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

engine = create_engine(os.environ.get("DATABASE_URL", "sqlite:///./reports.db"))
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

app = FastAPI()


def get_db():
    db = SessionLocal()
    try:
        yield db
        db.commit()  # commit whatever the route left pending
    except Exception:
        db.rollback()
        raise
    finally:
        db.close()


@app.post("/reports")
def create_report(db: Session = Depends(get_db)):
    return {"id": db.execute(text("SELECT 7")).scalar()}


@app.get("/reports/export")
def export(db: Session = Depends(get_db)):
    def lines():
        for n in range(3):
            yield f"{n},{db.execute(text('SELECT 1')).scalar()}\n"

    return StreamingResponse(lines(), media_type="text/csv")
