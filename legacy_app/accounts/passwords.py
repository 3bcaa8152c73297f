"""Password hashing: argon2id through argon2-cffi, parameters from Settings."""
import functools

from argon2 import PasswordHasher, Type

from ..config import Settings, environment_settings


def make_password_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )


@functools.lru_cache(maxsize=None)
def default_password_hasher() -> PasswordHasher:
    """The hasher of the environment's settings, for crud calls that bring none (as the tutorial's)."""
    return make_password_hasher(environment_settings())
