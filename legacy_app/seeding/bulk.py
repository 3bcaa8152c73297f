"""Bulk seeding straight into the database, through the package's tables.

Users and items go in batches with executemany; each distinct password is hashed once.
Re-running is idempotent: a user whose email exists is skipped, and so is an item whose owner
already has an item with that title.
"""
import time
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

from argon2 import PasswordHasher
from sqlalchemy import and_, insert, select
from sqlalchemy.engine import Connection, Engine

from ..models import Item, User
from .progress import Progress
from .records import SeedUser

BATCH_USERS = 5000


@dataclass
class BulkResult:
    users_created: int = 0
    users_skipped: int = 0
    items_created: int = 0
    items_skipped: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"users: {self.users_created} created, {self.users_skipped} skipped; "
            f"items: {self.items_created} created, {self.items_skipped} skipped; {self.seconds:.1f} s"
        )


def seed(engine: Engine, users: Iterable[SeedUser], total: int, hasher: PasswordHasher) -> BulkResult:
    """Progress goes to stderr: a bar on a terminal, else a line every few seconds."""
    result = BulkResult()
    started = time.perf_counter()
    hashes: Dict[str, str] = {}
    with Progress(total) as progress:
        for batch in _batches(users, BATCH_USERS):
            for user in batch:
                if user.password not in hashes:
                    hashes[user.password] = hasher.hash(user.password)
            with engine.begin() as connection:
                _seed_batch(connection, batch, hashes, result)
            progress.update(len(batch))
    result.seconds = time.perf_counter() - started
    return result


def _seed_batch(connection: Connection, batch: List[SeedUser], hashes: Dict[str, str], result: BulkResult) -> None:
    emails = [user.email for user in batch]
    ids = _ids_by_email(connection, emails)
    new_users: Dict[str, Dict[str, object]] = {}  # by email: a file may repeat a user
    for user in batch:
        if user.email not in ids and user.email not in new_users:
            new_users[user.email] = {"email": user.email, "hashed_password": hashes[user.password], "is_active": True}
    if new_users:
        connection.execute(insert(User.__table__), list(new_users.values()))
        ids = _ids_by_email(connection, emails)
    result.users_created += len(new_users)
    result.users_skipped += len(batch) - len(new_users)

    owner_ids = list(ids.values())
    existing = set(
        connection.execute(
            select(Item.owner_id, Item.title).where(
                and_(Item.owner_id >= min(owner_ids), Item.owner_id <= max(owner_ids))
            )
        ).all()
    )
    new_items = []
    for user in batch:
        owner_id = ids[user.email]
        for item in user.items:
            key: Tuple[int, str] = (owner_id, item.title)
            if key in existing:
                result.items_skipped += 1
                continue
            existing.add(key)
            new_items.append({"owner_id": owner_id, "title": item.title, "description": item.description})
    if new_items:
        connection.execute(insert(Item.__table__), new_items)
    result.items_created += len(new_items)


def _ids_by_email(connection: Connection, emails: Sequence[str]) -> Dict[str, int]:
    ids: Dict[str, int] = {}
    for start in range(0, len(emails), 1000):  # stay far below every driver's parameter limit
        chunk = emails[start : start + 1000]
        ids.update((email, id_) for id_, email in connection.execute(select(User.id, User.email).where(User.email.in_(chunk))))
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
