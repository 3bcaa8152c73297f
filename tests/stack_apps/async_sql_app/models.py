from sqlalchemy import Column, ForeignKey, Integer, String

from .database import Base


class User(Base):
    __tablename__ = "stack_app_users"  # not `users`: the test database is shared with the service's tests

    id = Column(Integer, primary_key=True, index=True)
    email = Column(String(255), unique=True, index=True)


class AuditEntry(Base):
    __tablename__ = "stack_app_audit"

    id = Column(Integer, primary_key=True, index=True)
    user_id = Column(Integer, ForeignKey("stack_app_users.id"))
    action = Column(String(50))
