"""Blog API. `get_db` commits what the route wrote once the route is done, the way the team likes it
(no db.commit() scattered over the routes)."""
import os
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import Column, Integer, String, create_engine, func, select
from sqlalchemy.orm import Session, declarative_base, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///./blog.db")
engine = create_engine(DATABASE_URL, connect_args={"check_same_thread": False} if DATABASE_URL.startswith("sqlite") else {})
SessionLocal = sessionmaker(autocommit=False, autoflush=False, bind=engine)
Base = declarative_base()


class Post(Base):
    __tablename__ = "blog_yield_commit_posts"
    id = Column(Integer, primary_key=True)
    title = Column(String(80), nullable=False)


Base.metadata.create_all(engine)


def get_db():
    db = SessionLocal()
    try:
        yield db
        db.commit()
    finally:
        db.close()


SessionDep = Annotated[Session, Depends(get_db, scope="function")]

app = FastAPI(title="blog")


@app.post("/posts")
def create_post(db: SessionDep):
    post = Post(title="hello")
    db.add(post)
    db.flush()
    return {"id": post.id}


@app.get("/posts/count")
def count_posts(
    db: Session = Depends(
        get_db,
        scope="function",
    ),
):
    return {"count": db.scalar(select(func.count(Post.id)))}


@app.get("/health", dependencies=[Depends(get_db, scope="function")])
def health():
    return {"ok": True}
