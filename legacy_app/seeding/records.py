"""Seed records: read from JSON or CSV files, or generated, and validated like API input.

JSON: a list of users (or {"users": [...]}), each {"email", "password", "items": [{"title", "description"}]}.
CSV: a header with email,password,title,description; one row per item, a user's rows sharing its
email (its first row's password counts); a row with an empty title adds a user without items.
"""
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from pydantic import ValidationError

from ..accounts.emails import canonical_email
from ..compat import public_errors
from ..schemas import ItemCreate, UserCreate


class SeedFileError(ValueError):
    """The seed file cannot be read or a record in it is invalid."""


@dataclass
class SeedItem:
    title: str
    description: Optional[str] = None


@dataclass
class SeedUser:
    email: str
    password: str
    items: List[SeedItem] = field(default_factory=list)


def generated(users: int, items_per_user: int, password: str) -> Iterator[SeedUser]:
    for n in range(1, users + 1):
        items = [SeedItem(f"Item {k}", f"Seeded item {k} of user {n}") for k in range(1, items_per_user + 1)]
        yield SeedUser(f"user{n}@seed.example.com", password, items)


def load(path: Path) -> List[SeedUser]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SeedFileError(f"cannot read {path}: {error}") from None
    if path.suffix.lower() == ".json":
        return _from_json(text, path)
    if path.suffix.lower() == ".csv":
        return _from_csv(text, path)
    raise SeedFileError(f"{path}: unknown format (use a .json or .csv file)")


def _from_json(text: str, path: Path) -> List[SeedUser]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SeedFileError(f"{path}: not valid JSON: {error}") from None
    if isinstance(data, dict):
        data = data.get("users")
    if not isinstance(data, list):
        raise SeedFileError(f"{path}: expected a list of users or {{\"users\": [...]}}")
    users = []
    for index, record in enumerate(data, start=1):
        where = f"{path}: user #{index}"
        if not isinstance(record, dict):
            raise SeedFileError(f"{where}: expected an object")
        items = record.get("items") or []
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise SeedFileError(f"{where}: items must be a list of objects")
        user = _valid_user(record.get("email"), record.get("password"), where)
        user.items = [_valid_item(item.get("title"), item.get("description"), f"{where}, item #{k}")
                      for k, item in enumerate(items, start=1)]
        users.append(user)
    return users


def _from_csv(text: str, path: Path) -> List[SeedUser]:
    reader = csv.DictReader(text.splitlines())
    missing = {"email", "password"} - set(reader.fieldnames or [])
    if missing:
        raise SeedFileError(f"{path}: the header needs columns email,password[,title,description]; missing {sorted(missing)}")
    by_email: Dict[str, SeedUser] = {}  # by canonical form: `Kate@` and `kate@` rows are one user
    for line, row in enumerate(reader, start=2):
        where = f"{path}: line {line}"
        user = _valid_user(row.get("email"), row.get("password"), where)
        user = by_email.setdefault(canonical_email(user.email), user)
        title = (row.get("title") or "").strip()
        if title:
            user.items.append(_valid_item(title, row.get("description") or None, where))
    return list(by_email.values())


def _valid_user(email: object, password: object, where: str) -> SeedUser:
    try:
        valid = UserCreate(email=email, password=password)
    except ValidationError as error:
        raise SeedFileError(f"{where}: {_describe(error)}") from None
    return SeedUser(str(valid.email), valid.password)


def _valid_item(title: object, description: object, where: str) -> SeedItem:
    try:
        valid = ItemCreate(title=title, description=description)
    except ValidationError as error:
        raise SeedFileError(f"{where}: {_describe(error)}") from None
    return SeedItem(valid.title, valid.description)


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in public_errors(error.errors()))
