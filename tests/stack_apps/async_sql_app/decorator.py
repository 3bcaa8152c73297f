import asyncio
import json

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from . import crud, diagnostics, models, schemas
from .database import SessionLocal, engine

app = FastAPI()


@app.on_event("startup")
async def create_tables():
    async with engine.begin() as connection:
        await connection.run_sync(models.Base.metadata.create_all)


@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    response = Response("Internal server error", status_code=500)
    try:
        request.state.db = SessionLocal()
        response = await call_next(request)
    finally:
        await request.state.db.close()
    return response


# Dependency
def get_db(request: Request):
    return request.state.db


app.include_router(diagnostics.router)


@app.post("/users/")
async def create_user(user: schemas.UserCreate, db: AsyncSession = Depends(get_db)):
    db_user = await crud.create_user(db, user=user)
    return {"id": db_user.id, "email": db_user.email}


@app.get("/users/{user_id}")
async def read_user(user_id: int, db: AsyncSession = Depends(get_db)):
    db_user = await crud.get_user(db, user_id=user_id)
    if db_user is None:
        raise HTTPException(status_code=404, detail="User not found")
    return {"id": db_user.id, "email": db_user.email}


async def notify_and_record(db: AsyncSession, user_id: int):
    await asyncio.sleep(0.05)  # the notification (an email, a webhook) goes out first, after the response was sent
    await crud.create_audit_entry(db, user_id=user_id, action="notified")


@app.post("/users/{user_id}/notifications/")
async def notify_user(user_id: int, background_tasks: BackgroundTasks, db: AsyncSession = Depends(get_db)):
    background_tasks.add_task(notify_and_record, db, user_id=user_id)
    return {"queued": True}


@app.get("/export/users/")
async def export_users(db: AsyncSession = Depends(get_db)):
    async def users_as_json():
        yield "["
        for index, user in enumerate(await crud.get_users(db)):
            yield ("," if index else "") + json.dumps({"id": user.id, "email": user.email})
        yield "]"

    return StreamingResponse(users_as_json(), media_type="application/json")
