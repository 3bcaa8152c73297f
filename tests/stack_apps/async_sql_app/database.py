import os

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import declarative_base, sessionmaker

SQLALCHEMY_DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./sql_app.db")
# On PostgreSQL the test finds this app's connections in pg_stat_activity by this name.
APPLICATION_NAME = os.environ.get("APPLICATION_NAME", "async_sql_app")

if SQLALCHEMY_DATABASE_URL.startswith("sqlite"):
    connect_args = {}
elif SQLALCHEMY_DATABASE_URL.startswith("postgresql+asyncpg"):
    connect_args = {"server_settings": {"application_name": APPLICATION_NAME}}
else:
    connect_args = {"application_name": APPLICATION_NAME}

engine = create_async_engine(SQLALCHEMY_DATABASE_URL, connect_args=connect_args)
# sessionmaker(class_=AsyncSession): SQLAlchemy 1.4 has no async_sessionmaker.
SessionLocal = sessionmaker(engine, class_=AsyncSession, autoflush=False, expire_on_commit=False)

Base = declarative_base()
