"""Route dependencies, each named once and reused by every route.

`db: Session = DbSession` rather than Annotated[...]: FastAPI 0.86 predates Annotated support.
"""
from argon2 import PasswordHasher
from fastapi import Depends, Request

from ..accounts.hashing_lane import HashingLane
from ..sessions import get_db


async def get_password_hasher(request: Request) -> PasswordHasher:
    return request.app.state.password_hasher


async def get_max_items_per_user(request: Request) -> int:
    return request.app.state.settings.max_items_per_user


async def get_hashing_lane(request: Request) -> HashingLane:
    return request.app.state.hashing_lane


DbSession = Depends(get_db)
Hasher = Depends(get_password_hasher)
MaxItemsPerUser = Depends(get_max_items_per_user)
HashingLaneDep = Depends(get_hashing_lane)
