"""Schema migrations with Alembic, and adoption of databases the tutorial app created."""
from pathlib import Path
from typing import List, Optional

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from .models import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
TUTORIAL_REVISION = "0001"  # the schema the tutorial's create_all() produced


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # alembic.ini-style interpolation treats % specially; a URL may contain it (encoded passwords).
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def _run(engine: Engine, action: str, *args: object, **kwargs: object) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, *args, **kwargs)


def is_unversioned_tutorial_database(engine: Engine) -> bool:
    tables = set(inspect(engine).get_table_names())
    return "alembic_version" not in tables and {"users", "items"} <= tables


def upgrade(engine: Engine, revision: str = "head") -> Optional[str]:
    """Bring the database to `revision`; a tutorial-made database is stamped first.

    Returns a note when it adopted such a database, for the start-up log.
    """
    note = None
    if is_unversioned_tutorial_database(engine):
        _run(engine, "stamp", TUTORIAL_REVISION)
        note = f"adopted an existing tutorial database: stamped revision {TUTORIAL_REVISION}"
    _run(engine, "upgrade", revision)
    return note


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, "downgrade", revision)


def stamp(engine: Engine, revision: str) -> None:
    _run(engine, "stamp", revision)


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> Optional[str]:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def drift(engine: Engine) -> List[object]:
    """Differences between the models and the database (empty when migrations match the models)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
