from sqlalchemy.orm import Session

from . import models, schemas


def get_user(db: Session, user_id: int):
    return db.query(models.User).filter(models.User.id == user_id).first()


def get_users(db: Session):
    return db.query(models.User).order_by(models.User.id)


def create_user(db: Session, user: schemas.UserCreate):
    db_user = models.User(email=user.email)
    db.add(db_user)
    db.commit()
    db.refresh(db_user)
    return db_user


def create_audit_entry(db: Session, user_id: int, action: str):
    db_entry = models.AuditEntry(user_id=user_id, action=action)
    db.add(db_entry)
    db.commit()
    db.refresh(db_entry)
    return db_entry
