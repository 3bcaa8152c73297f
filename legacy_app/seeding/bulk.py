"""Bulk seeding straight into the database, through the package's tables.

Users and items go in batches with executemany; each distinct password is hashed once.
Re-running is idempotent: a user whose email exists (in any of its forms: its canonical form is
compared, as registration does) is skipped, and so is an item whose owner already has an item
with that title. Items beyond MAX_ITEMS_PER_USER are not stored, and counted, as the API refuses them.
"""
import time
from dataclasses import dataclass
from collections import Counter
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from argon2 import PasswordHasher
from sqlalchemy import and_, insert, select
from sqlalchemy.engine import Connection, Engine

from ..emails import canonical_email
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
    items_over_limit: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        over = f", {self.items_over_limit} over MAX_ITEMS_PER_USER (not stored)" if self.items_over_limit else ""
        return (
            f"users: {self.users_created} created, {self.users_skipped} skipped; "
            f"items: {self.items_created} created, {self.items_skipped} skipped{over}; {self.seconds:.1f} s"
        )


def seed(
    engine: Engine, users: Iterable[SeedUser], total: int, hasher: PasswordHasher, max_items: Optional[int] = None
) -> BulkResult:
    """Progress goes to stderr: a bar on a terminal, else a line every few seconds.

    `max_items`: the most items a user may hold (MAX_ITEMS_PER_USER); None, no bound.
    """
    result = BulkResult()
    started = time.perf_counter()
    hashes: Dict[str, str] = {}
    with Progress(total) as progress:
        for batch in _batches(users, BATCH_USERS):
            for user in batch:
                if user.password not in hashes:
                    hashes[user.password] = hasher.hash(user.password)
            with engine.begin() as connection:
                _seed_batch(connection, batch, hashes, result, max_items)
            progress.update(len(batch))
    result.seconds = time.perf_counter() - started
    return result


def _seed_batch(
    connection: Connection, batch: List[SeedUser], hashes: Dict[str, str], result: BulkResult, max_items: Optional[int]
) -> None:
    forms = {user.email: canonical_email(user.email) for user in batch}
    ids = _ids_by_canonical_email(connection, list(forms.values()))
    new_users: Dict[str, Dict[str, object]] = {}  # by canonical form: a file may repeat a user
    for user in batch:
        form = forms[user.email]
        if form not in ids and form not in new_users:
            new_users[form] = {
                "email": user.email, "email_canonical": form, "hashed_password": hashes[user.password], "is_active": True
            }
    if new_users:
        connection.execute(insert(User.__table__), list(new_users.values()))
        ids = _ids_by_canonical_email(connection, list(forms.values()))
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
            new_items.append({"owner_id": owner_id, "title": item.title, "description": item.description})
    if new_items:
        connection.execute(insert(Item.__table__), new_items)
    result.items_created += len(new_items)


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
