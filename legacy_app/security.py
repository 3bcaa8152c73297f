"""Password hashing: argon2id through argon2-cffi, parameters from Settings."""
from argon2 import PasswordHasher, Type

from .config import Settings


def make_password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )
