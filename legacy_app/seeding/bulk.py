"""Bulk seeding straight into the database, through the package's tables.

Users and items go in batches with executemany; each distinct password of a user to create is
hashed once, before the batch's transaction (a rerun, whose users exist, hashes none).
Re-running is idempotent: a user whose email exists (in any of its forms: its canonical form is
compared, as registration does) is skipped, and so is an item whose owner already has an item
with that title. Items beyond MAX_ITEMS_PER_USER are not stored, and counted, as the API refuses them.
Each batch is one transaction: stopped (Ctrl-C, SIGTERM, the database gone), a run has written its
committed batches, says how much that was, and the same command again adds the rest.
"""
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from argon2 import PasswordHasher
from sqlalchemy import and_, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..accounts.emails import canonical_email
from ..models import Item, User
from .progress import Progress
from .records import SeedUser
from .stopping import interruption, report_stop, signals_interrupt

BATCH_USERS = 5000


@dataclass
class BulkResult:
    users_created: int = 0
    users_skipped: int = 0
    items_created: int = 0
    items_skipped: int = 0
    items_over_limit: int = 0
    seconds: float = 0.0

    def counts(self) -> str:
        over = f", {self.items_over_limit} over MAX_ITEMS_PER_USER (not stored)" if self.items_over_limit else ""
        return (
            f"users: {self.users_created} created, {self.users_skipped} skipped; "
            f"items: {self.items_created} created, {self.items_skipped} skipped{over}"
        )

    def summary(self) -> str:
        return f"{self.counts()}; {self.seconds:.1f} s"

    def add(self, other: "BulkResult") -> None:
        self.users_created += other.users_created
        self.users_skipped += other.users_skipped
        self.items_created += other.items_created
        self.items_skipped += other.items_skipped
        self.items_over_limit += other.items_over_limit


def seed(
    engine: Engine, users: Iterable[SeedUser], total: int, hasher: PasswordHasher, max_items: Optional[int] = None
) -> BulkResult:
    """Progress goes to stderr: a bar on a terminal, else a line every few seconds.

    `max_items`: the most items a user may hold (MAX_ITEMS_PER_USER); None, no bound.
    Stopped before the end, it prints on stderr what the committed batches wrote and that the same
    command again is safe; then a signal ends the process (SystemExit: 130 for SIGINT, 143 for
    SIGTERM) and a database error is raised on, for the command to report.
    """
    result = BulkResult()
    started = time.perf_counter()
    hashes: Dict[str, str] = {}

    def hashed(password: str) -> str:
        if password not in hashes:
            hashes[password] = hasher.hash(password)
        return hashes[password]

    done = 0
    try:
        with signals_interrupt(), Progress(total) as progress:
            for batch in _batches(users, BATCH_USERS):
                with engine.connect() as connection:  # hashing is slow: not in the transaction, and not for users there
                    there = _ids_by_canonical_email(connection, [canonical_email(user.email) for user in batch])
                for user in batch:
                    if canonical_email(user.email) not in there:
                        hashed(user.password)
                with engine.begin() as connection:
                    written, unchanged = _seed_batch(connection, batch, hashed, max_items)
                result.add(written)  # committed: counted
                done += len(batch)
                progress.update(len(batch), unchanged=unchanged)
    except (KeyboardInterrupt, SQLAlchemyError) as error:
        stop = interruption(error)
        if stop is None and not isinstance(error, SQLAlchemyError):
            raise  # a Ctrl-C from outside this run's signal handling: none to report
        reason = stop.reason if stop is not None else "a database error (below)"
        report_stop("legacy_app seed", reason, done, total, result.counts())
        if stop is not None:
            raise SystemExit(stop.exit_code) from None
        raise
    result.seconds = time.perf_counter() - started
    return result


def _seed_batch(
    connection: Connection, batch: List[SeedUser], hashed: Callable[[str], str], max_items: Optional[int]
) -> Tuple[BulkResult, int]:
    """What the batch wrote, and how many of its users it left as they were (they and their items existed)."""
    result = BulkResult()
    forms = {user.email: canonical_email(user.email) for user in batch}
    ids = _ids_by_canonical_email(connection, list(forms.values()))
    new_users: Dict[str, Dict[str, object]] = {}  # by canonical form: a file may repeat a user
    for user in batch:
        form = forms[user.email]
        if form not in ids and form not in new_users:
            new_users[form] = {
                "email": user.email, "email_canonical": form, "hashed_password": hashed(user.password), "is_active": True
            }
    if new_users:
        connection.execute(insert(User.__table__), list(new_users.values()))
        ids = _ids_by_canonical_email(connection, list(forms.values()))
    result.users_created += len(new_users)
    result.users_skipped += len(batch) - len(new_users)

    changed = {ids[form] for form in new_users}
    owner_ids = list(ids.values())
    existing = set(
        connection.execute(
            select(Item.owner_id, Item.title).where(
                and_(Item.owner_id >= min(owner_ids), Item.owner_id <= max(owner_ids))
            )
        ).all()
    )
    held = Counter(owner_id for owner_id, _ in existing)
    new_items = []
    for user in batch:
        owner_id = ids[forms[user.email]]
        for item in user.items:
            key: Tuple[int, str] = (owner_id, item.title)
            if key in existing:
                result.items_skipped += 1
                continue
            if max_items is not None and held[owner_id] >= max_items:
                result.items_over_limit += 1
                continue
            held[owner_id] += 1
            existing.add(key)
            changed.add(owner_id)
            new_items.append({"owner_id": owner_id, "title": item.title, "description": item.description})
    if new_items:
        connection.execute(insert(Item.__table__), new_items)
    result.items_created += len(new_items)
    return result, sum(1 for user in batch if ids[forms[user.email]] not in changed)


def _ids_by_canonical_email(connection: Connection, forms: Sequence[str]) -> Dict[str, int]:
    ids: Dict[str, int] = {}
    for start in range(0, len(forms), 1000):  # stay far below every driver's parameter limit
        chunk = forms[start : start + 1000]
        statement = select(User.id, User.email_canonical).where(User.email_canonical.in_(chunk))
        ids.update((form, id_) for id_, form in connection.execute(statement))
    return ids


def _batches(users: Iterable[SeedUser], size: int) -> Iterator[List[SeedUser]]:
    batch: List[SeedUser] = []
    for user in users:
        batch.append(user)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
