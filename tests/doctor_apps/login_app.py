"""OAuth2's password flow in front of the routes (FastAPI's security tutorial, shortened): POST /token
takes a form and answers a bearer token; every other route needs it. The protected report leaks its
session to a background task (the decorator middleware's hazard), which only a logged-in run sees;
without a login every route answers 401, and the run is inconclusive."""
import os
import time

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./doctor_app.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
PASSWORD = os.environ.get("LOGIN_APP_PASSWORD", "correct horse")
TOKEN = "tok-" + "7f3a9c2e5b1d4086"  # what a real app signs; fixed here so tests can look for it

app = FastAPI()
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    response = Response("Internal server error", status_code=500)
    try:
        request.state.db = SessionLocal()
        response = await call_next(request)
    finally:
        request.state.db.close()
    return response


def get_db(request: Request) -> Session:
    return request.state.db


def current_user(token: str = Depends(oauth2_scheme)) -> str:
    if token != TOKEN:
        raise HTTPException(status_code=401, detail="Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return "alice"


@app.post("/token")
def login(form: OAuth2PasswordRequestForm = Depends()):
    if (form.username, form.password) != ("alice", PASSWORD):
        raise HTTPException(status_code=400, detail="Incorrect username or password")
    return {"access_token": TOKEN, "token_type": "bearer"}


@app.get("/users/me")
def read_me(user: str = Depends(current_user), db: Session = Depends(get_db)):
    return {"user": user, "count": db.execute(text("SELECT 1")).scalar()}


@app.get("/reports/weekly")
def weekly_report(tasks: BackgroundTasks, user: str = Depends(current_user), db: Session = Depends(get_db)):
    def write_report() -> None:
        time.sleep(0.1)
        db.execute(text("SELECT 1")).scalar()

    tasks.add_task(write_report)
    return {"queued": True}
