"""Schema migrations with Alembic, and adoption of databases that create_all() made."""
import argparse
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Set, Tuple

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from ..models import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"

# What each revision leaves in a database, oldest revision first. A database without a version
# table (made by create_all() of our models or of the tutorial's) is stamped at the newest revision
# it holds, so upgrading does not create again what is there. Each new migration adds its marker
# here: an object it creates that create_all() of the models also creates (a test fails until it does).
ADOPTION_MARKERS: Dict[str, FrozenSet[str]] = {
    "0001": frozenset({"table users", "table items"}),
    "0002": frozenset({"index items.ix_items_owner_id"}),
    "0003": frozenset({"index users.ix_users_email_canonical"}),
}


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


def schema_objects(engine: Engine) -> Set[str]:
    """The tables and indexes in the database, named as ADOPTION_MARKERS names them."""
    with engine.connect() as connection:
        inspector = inspect(connection)
        tables = inspector.get_table_names()
        indexes = {f"index {table}.{index['name']}" for table in tables for index in inspector.get_indexes(table)}
    return {f"table {table}" for table in tables} | indexes


def newest_revision_held(objects: Set[str]) -> Tuple[Optional[str], Optional[str]]:
    """The newest revision whose markers, and every older revision's, are in `objects`; and the next one.

    It stops at the first revision missing an object: stamping past it would skip that migration
    for good, while stopping lets a later migration fail loudly on what is already there.
    """
    held = None
    for revision, marker in ADOPTION_MARKERS.items():
        if not marker <= objects:
            return held, revision
        held = revision
    return held, None


def adopt(engine: Engine) -> Optional[str]:
    """Stamp a database that has no version table at the newest revision it holds.

    Returns a note saying which revision was stamped and why, or None when there was nothing to adopt.
    """
    objects = schema_objects(engine)
    if f"table {VERSION_TABLE}" in objects:
        return None
    held, missing = newest_revision_held(objects)
    if held is None:
        return None
    stamp(engine, held)
    return _adoption_note(held, missing, objects)


def _adoption_note(held: str, missing: Optional[str], objects: Set[str]) -> str:
    revisions_so_far = list(ADOPTION_MARKERS)[: list(ADOPTION_MARKERS).index(held) + 1]
    found = "; ".join(f"{', '.join(sorted(ADOPTION_MARKERS[revision]))} ({revision})" for revision in revisions_so_far)
    why = f"it holds {found}"
    if missing is not None:
        why += f" but not {', '.join(sorted(ADOPTION_MARKERS[missing] - objects))} ({missing})"
    return f"adopted an unversioned database: stamped revision {held}, as {why}"


def upgrade(engine: Engine, revision: str = "head") -> Optional[str]:
    """Bring the database to `revision`; a database without a version table is adopted first.

    Returns adopt()'s note when it adopted one, for the start-up log.
    """
    note = adopt(engine)
    _run(engine, "upgrade", revision)
    return note


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, "downgrade", revision)


def stamp(engine: Engine, revision: str) -> None:
    _run(engine, "stamp", revision)


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def revisions() -> List[str]:
    """Every revision, oldest first."""
    return [script.revision for script in reversed(list(_scripts().walk_revisions()))]


def current_revision(engine: Engine) -> Optional[str]:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_on_start(engine: Engine) -> Tuple[Optional[str], str]:
    """upgrade() to head for a server's start-up: adopt()'s note (or None), and one line for the log.

    The line is logged whether or not anything ran, so a log shows how many processes migrated.
    """
    before = current_revision(engine)
    note = upgrade(engine)
    with engine.connect() as connection:
        now = schema_state(connection).describe()
    if before is not None and current_revision(engine) == before:
        return note, f"schema at {now} on start: nothing to upgrade"
    return note, f"schema upgraded on start: now {now}, was {before or 'none'}"


@functools.lru_cache(maxsize=None)
def _revisions_in(location: Path) -> Tuple[str, ...]:
    # Reading the scripts imports every migration file: done once per folder, for readiness checks.
    config = Config()
    config.set_main_option("script_location", str(location))
    return tuple(script.revision for script in reversed(list(ScriptDirectory.from_config(config).walk_revisions())))


@dataclass(frozen=True)
class SchemaState:
    """Where the database's schema is, against the revisions this code has."""

    current: Optional[str]
    revisions: Tuple[str, ...]  # oldest first; the last is the head

    @property
    def head(self) -> str:
        return self.revisions[-1]

    @property
    def behind(self) -> bool:
        """Unversioned, or at an older revision of this code: `db upgrade` brings it to head.

        A revision this code does not know is not "behind": newer code migrated the database (a
        rolling deploy), and migrations are written so the previous release keeps working.
        """
        return self.current is None or (self.current != self.head and self.current in self.revisions)

    def describe(self) -> str:
        """For `db current`: the revision and whether it is the head."""
        if self.current is None:
            return f"none (no migration applied; head is {self.head}: run db upgrade)"
        if self.current == self.head:
            return f"{self.current} (head)"
        if self.behind:
            return f"{self.current} (behind head {self.head}: run db upgrade)"
        return f"{self.current} (unknown to this code, whose head is {self.head}: migrated by newer code?)"

    def not_ready_reason(self) -> Optional[str]:
        """For readiness: why the code cannot serve this schema, or None when it can."""
        if not self.behind:
            return None
        at = f"at {self.current}" if self.current else "has no migration applied"
        return f"Database schema {at}, the code needs {self.head}: run db upgrade"


def schema_state(connection: Connection) -> SchemaState:
    """Reads the version table only (and whether it exists): cheap enough for every readiness call."""
    current = MigrationContext.configure(connection).get_current_revision()
    return SchemaState(current, _revisions_in(MIGRATIONS))


def next_revision_id() -> str:
    """The id after the newest numbered revision: 0003 after 0002."""
    numbered = [int(revision) for revision in revisions() if revision.isdigit()]
    return f"{max(numbered, default=0) + 1:04d}"


def new_revision(message: str, engine: Optional[Engine] = None) -> Path:
    """Write the next migration into the package's versions folder and return its path.

    With `engine`, autogenerated: the models compared with that database (which must be at head).
    """
    revision_id = next_revision_id()
    if engine is None:
        config = Config(cmd_opts=argparse.Namespace(quiet=True))  # our own line says what was written
        config.set_main_option("script_location", str(MIGRATIONS))
        script = command.revision(config, message=message, rev_id=revision_id)
    else:
        config = alembic_config(engine)
        config.cmd_opts = argparse.Namespace(quiet=True)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            script = command.revision(config, message=message, autogenerate=True, rev_id=revision_id)
    if isinstance(script, list):  # alembic's type for several heads; this history has one
        script = script[0]
    return Path(script.path)


def drift(engine: Engine) -> List[object]:
    """Differences between the models and the database (empty when migrations match the models)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
