"""The doctor's instrument: a connection only the garbage collector returns is told apart from a checkin.

The instrument patches SQLAlchemy's classes for the whole process, so each case runs in its own
interpreter, as the doctor's server does.
"""
import json
import subprocess
import sys
import textwrap

import pytest

from legacy_app.compat import driver_url
from legacy_app.server.process import PACKAGE_PARENT

from ..conftest import database_url_for

ABANDON_THEN_CLOSE = textwrap.dedent("""
    import gc, sys
    from legacy_app.doctor import instrument
    instrument.install(sys.argv[1])
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import sessionmaker

    SessionLocal = sessionmaker(bind=create_engine(sys.argv[2]))
    abandoned = SessionLocal()
    abandoned.execute(text("SELECT 1"))
    del abandoned  # never closed: only the collector can return its connection
    gc.collect()
    closed = SessionLocal()
    closed.execute(text("SELECT 1"))
    closed.close()
""")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.server
def test_a_connection_returned_by_the_garbage_collector_is_recorded_as_such(kind, tmp_path):
    url = driver_url(database_url_for(kind, tmp_path))
    events_path = tmp_path / "events.jsonl"
    subprocess.run([sys.executable, "-c", ABANDON_THEN_CLOSE, str(events_path), url],
                   check=True, cwd=str(PACKAGE_PARENT), timeout=60)
    kinds = [json.loads(line)["kind"] for line in events_path.read_text().splitlines()]
    assert kinds == [
        "session_made", "checkout", "begin", "checkin_gc",
        "session_made", "checkout", "begin", "session_close", "checkin",
    ]
