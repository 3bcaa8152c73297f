from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import models, schemas


async def get_user(db: AsyncSession, user_id: int):
    result = await db.execute(select(models.User).where(models.User.id == user_id))
    return result.scalars().first()


async def get_users(db: AsyncSession):
    result = await db.execute(select(models.User).order_by(models.User.id))
    return result.scalars().all()


async def create_user(db: AsyncSession, user: schemas.UserCreate):
    db_user = models.User(email=user.email)
    db.add(db_user)
    await db.commit()
    await db.refresh(db_user)
    return db_user


async def create_audit_entry(db: AsyncSession, user_id: int, action: str):
    db_entry = models.AuditEntry(user_id=user_id, action=action)
    db.add(db_entry)
    await db.commit()
    await db.refresh(db_entry)
    return db_entry
