# -*- coding: latin-1 -*-
"""Catálogo de la tienda: the session middleware of 2019, in Latin-1 (señor Pérez's editor)."""
import os

from fastapi import Depends, FastAPI, Request, Response
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

engine = create_engine(os.environ.get("DATABASE_URL", "sqlite:///./catalogo.db"))
SessionLocal = sessionmaker(bind=engine)

app = FastAPI(title="Catálogo")


# Sesión por petición: ¡ciérrala siempre!
@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    response = Response("Error interno", status_code=500)
    try:
        request.state.db = SessionLocal()
        response = await call_next(request)
    finally:
        request.state.db.close()
    return response


def get_db(request: Request) -> Session:
    return request.state.db


@app.get("/precio")
def precio(db: Session = Depends(get_db)):
    return {"precio": "12,50 12,50 £"[:5], "uno": db.execute(text("SELECT 1")).scalar()}
