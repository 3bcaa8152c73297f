"""A FastAPI + SQLAlchemy users/items API whose session is managed per request by a middleware."""
