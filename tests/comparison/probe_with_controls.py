"""The package's probe app plus control routes that misbehave on purpose, so that the tests can
prove the scenarios report what the doctor's instrument sees. Served by the doctor as
`tests.comparison.probe_with_controls:app`."""
from typing import List

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session

from legacy_app.comparison.probe import PROBE_EMAIL
from legacy_app.comparison.probe import app as probe_app
from legacy_app.routers.deps import DbSession
from legacy_app.models import User

_leaked_on_purpose: List[Session] = []  # kept referenced, so the leaked connection is never reclaimed


def add_control_routes(app: FastAPI) -> None:
    @app.get("/probe/control/leak")
    def leak(db: Session = DbSession):
        stray = app.state.session_factory.factory()  # bypasses the strategy: nobody closes it
        stray.execute(text("SELECT 1"))
        _leaked_on_purpose.append(stray)
        return {"ok": True}

    @app.post("/probe/control/commit-then-error")
    def commit_then_error(db: Session = DbSession):
        db.add(User(email=PROBE_EMAIL, hashed_password="x"))
        db.commit()
        raise RuntimeError("probe: error after commit")

    @app.get("/probe/control/close-early")
    def close_early(db: Session = DbSession):
        db.close()
        return {"ok": True}


add_control_routes(probe_app)
app = probe_app
