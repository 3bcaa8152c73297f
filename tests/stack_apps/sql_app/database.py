import os

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

try:  # SQLAlchemy 1.4+
    from sqlalchemy.orm import declarative_base
except ImportError:  # 1.3
    from sqlalchemy.ext.declarative import declarative_base

SQLALCHEMY_DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./sql_app.db")
# On PostgreSQL the test finds this app's connections in pg_stat_activity by this name.
APPLICATION_NAME = os.environ.get("APPLICATION_NAME", "sql_app")

if SQLALCHEMY_DATABASE_URL.startswith("sqlite"):
    connect_args = {"check_same_thread": False}
else:
    connect_args = {"application_name": APPLICATION_NAME}

engine = create_engine(SQLALCHEMY_DATABASE_URL, connect_args=connect_args)
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)

Base = declarative_base()
