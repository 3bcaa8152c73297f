import os

from legacy_app import crud, models, schemas
from legacy_app.database import Base, SessionLocal, engine

Base.metadata.create_all(bind=engine)


def test_the_tutorials_crud_calls():
    db = SessionLocal()
    try:
        user = schemas.UserCreate(email="rick@example.com", password="wubba-lubba-dub-dub")
        assert crud.get_user_by_email(db, email=user.email) is None
        db_user = crud.create_user(db=db, user=user)
        assert isinstance(db_user, models.User)
        # argon2id with the parameters the environment configures (the runner sets them)
        configured = "m={ARGON2_MEMORY_KIB},t={ARGON2_TIME_COST},p={ARGON2_PARALLELISM}".format(**os.environ)
        assert db_user.hashed_password.startswith(f"$argon2id$v=19${configured}$")
        assert crud.get_user_by_email(db, email="Rick@Example.com").id == db_user.id
        assert crud.get_user(db, user_id=db_user.id).email == "rick@example.com"

        item = schemas.ItemCreate(title="Portal Gun", description="Opens portals")
        db_item = crud.create_user_item(db=db, item=item, user_id=db_user.id)
        assert isinstance(db_item, models.Item)
        assert db_item.owner_id == db_user.id

        users = crud.get_users(db, skip=0, limit=100)
        assert [u.email for u in users] == ["rick@example.com"]
        assert [i.title for i in users[0].items] == ["Portal Gun"]
        assert [i.title for i in crud.get_items(db, skip=0, limit=100)] == ["Portal Gun"]
    finally:
        db.close()
