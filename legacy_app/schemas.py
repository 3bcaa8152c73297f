"""Request and response bodies: the tutorial's ItemBase/ItemCreate/Item and UserBase/UserCreate/User.

Input models (…Create) carry every bound, and take strings only as strings (Pydantic 1 would turn
12345 into "12345"); read models (Item, User) carry none and read ORM objects (orm_mode /
from_attributes, through compat.OrmModel), so a row that an older app stored (an empty title, an
address today's validator rejects) is still served, not a 500.
"""
from typing import List, Optional

from pydantic import BaseModel, EmailStr, Field, StrictStr, ValidationError

from .accounts.emails import CANONICAL_MAX_LENGTH, canonical_email
from .compat import NULLABLE, OrmModel, field_validator, schema_only
from .models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH

PASSWORD_MAX_LENGTH = 1024  # argon2 takes any length; this bounds the work one request can ask for


NO_NUL = r"^[^\x00]*$"  # PostgreSQL cannot store NUL in text


def _storable(value: Optional[str]) -> Optional[str]:
    """Reject text no database can store: NUL (PostgreSQL refuses it) and lone surrogates (not UTF-8)."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return _encodable(value)


def _encodable(value: Optional[str]) -> Optional[str]:
    if value is None:
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no unpaired surrogates)") from None
    return value


class ItemBase(BaseModel):
    title: str
    description: Optional[str] = Field(None, **schema_only(**NULLABLE))


class ItemCreate(ItemBase):
    title: StrictStr = Field(..., min_length=1, max_length=TITLE_MAX_LENGTH, **schema_only(pattern=NO_NUL))
    description: Optional[StrictStr] = Field(
        None, max_length=DESCRIPTION_MAX_LENGTH, **schema_only(pattern=NO_NUL, **NULLABLE)
    )

    @field_validator("title", "description")
    def _text_is_storable(cls, value: Optional[str]) -> Optional[str]:
        return _storable(value)


class Item(ItemBase, OrmModel):
    id: int
    owner_id: int


# email-validator refuses the special-use names of RFC 6761 and RFC 7686 (`.test`, `.invalid`, ...),
# which JSON Schema's `format: email` allows: the schema says so, so clients and fuzzers know.
NOT_SPECIAL_USE_DOMAIN = r"^(?!.*\.(arpa|invalid|local|localhost|onion|test)\.?$).*$"


class UserBase(BaseModel):
    email: str


class UserCreate(UserBase):
    email: EmailStr = Field(..., **schema_only(pattern=NOT_SPECIAL_USE_DOMAIN))
    password: StrictStr = Field(..., min_length=1, max_length=PASSWORD_MAX_LENGTH)

    @field_validator("email")
    def _email_is_case_insensitive(cls, value: str) -> str:
        # Displayed as typed, lower-cased (as this service always stored it); its canonical form
        # (emails.py) is what uniqueness compares, and must fit its column.
        value = value.lower()
        if len(canonical_email(value)) > CANONICAL_MAX_LENGTH:
            raise ValueError(f"is longer than {CANONICAL_MAX_LENGTH} characters once normalised")
        return value

    @field_validator("password")
    def _password_is_encodable(cls, value: str) -> str:
        return _encodable(value)  # type: ignore[return-value]


def registration_email(raw: str) -> str:
    """`raw` as registration would store it (`Kate <k@example.com>` is `k@example.com`, spaces and
    a punycode domain are normalised), or stripped when registration would refuse it: a lookup of
    such an address still finds a row an older app stored."""
    try:
        return str(UserCreate(email=raw, password="-").email)
    except ValidationError:
        return raw.strip()


class User(UserBase, OrmModel):
    id: int
    is_active: bool
    items: List[Item] = []
