import json
import time

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from . import crud, diagnostics, models, schemas
from .database import SessionLocal, engine

models.Base.metadata.create_all(bind=engine)

app = FastAPI()


from legacy_app.sessions import DBSessionMiddleware, get_db
app.add_middleware(DBSessionMiddleware, session_factory=SessionLocal)

app.include_router(diagnostics.router)


@app.post("/users/")
def create_user(user: schemas.UserCreate, db: Session = Depends(get_db)):
    db_user = crud.create_user(db, user=user)
    return {"id": db_user.id, "email": db_user.email}


@app.get("/users/{user_id}")
def read_user(user_id: int, db: Session = Depends(get_db)):
    db_user = crud.get_user(db, user_id=user_id)
    if db_user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return {"id": db_user.id, "email": db_user.email}


def notify_and_record(db: Session, user_id: int):
    time.sleep(0.05)  # the notification (an email, a webhook) goes out first, after the response was sent
    crud.create_audit_entry(db, user_id=user_id, action="notified")


@app.post("/users/{user_id}/notifications/")
def notify_user(user_id: int, background_tasks: BackgroundTasks, db: Session = Depends(get_db)):
    background_tasks.add_task(notify_and_record, db, user_id=user_id)
    return {"queued": True}


@app.get("/export/users/")
def export_users(db: Session = Depends(get_db)):
    def users_as_json():
        yield "["
        for index, user in enumerate(crud.get_users(db)):
            yield ("," if index else "") + json.dumps({"id": user.id, "email": user.email})
        yield "]"

    return StreamingResponse(users_as_json(), media_type="application/json")
