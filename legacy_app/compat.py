"""Every difference between the legacy stack and the current one, in one place.

Legacy: FastAPI 0.86 / Starlette 0.20 / Pydantic 1.10 / SQLAlchemy 1.4.
Current: FastAPI 0.1xx / Starlette 1.x / Pydantic 2.x / SQLAlchemy 2.x.
The rest of the package imports these names and never checks a version itself.
"""
import contextlib
import inspect
from typing import Any, AsyncIterator, Callable, Dict, Iterable, List

import fastapi
import fastapi.routing
import pydantic
import sqlalchemy
from sqlalchemy.engine import make_url

PYDANTIC_V2 = pydantic.VERSION.startswith("2.")
SQLALCHEMY_2 = not sqlalchemy.__version__.startswith("1.")
# FastAPI 0.93 added `lifespan=`; Starlette 1.0 dropped `on_startup=`/`on_shutdown=`.
FASTAPI_HAS_LIFESPAN = "lifespan" in inspect.signature(fastapi.FastAPI.__init__).parameters

# --- Pydantic -------------------------------------------------------------------------------------

if PYDANTIC_V2:

    class OrmModel(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(from_attributes=True)

    def field_validator(*names: str) -> Callable[[Callable[..., Any]], Any]:
        return pydantic.field_validator(*names)

else:

    class OrmModel(pydantic.BaseModel):  # type: ignore[no-redef]
        class Config:
            orm_mode = True

    def field_validator(*names: str) -> Callable[[Callable[..., Any]], Any]:  # type: ignore[misc]
        return pydantic.validator(*names, allow_reuse=True)


# Pydantic 2 writes Optional[str] as anyOf [string, null]; Pydantic 1 writes just "string", so
# OpenAPI 3.0 needs `nullable` said explicitly there.
NULLABLE: Dict[str, Any] = {} if PYDANTIC_V2 else {"nullable": True}


def schema_only(**keywords: Any) -> Dict[str, Any]:
    """Field(...) keywords that add to the JSON Schema without adding validation."""
    if PYDANTIC_V2:
        return {"json_schema_extra": keywords}
    return keywords  # Pydantic 1 copies unknown Field keywords into the schema


def query_pattern(pattern: str) -> Dict[str, str]:
    """Query(...) keyword for a regular expression: `regex` before FastAPI 0.100, `pattern` after."""
    if "pattern" in inspect.signature(fastapi.Query).parameters:
        return {"pattern": pattern}
    return {"regex": pattern}


def public_errors(errors: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Validation errors without the submitted values.

    Pydantic 2 copies the offending input into every error (for a missing field: the whole body,
    password included); Pydantic 1 does not. Both become {loc, msg, type}.
    """
    return [
        {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}
        for error in errors
    ]


# --- SQLAlchemy -----------------------------------------------------------------------------------


def driver_url(url: str) -> str:
    """Point a PostgreSQL URL at a driver the installed SQLAlchemy has.

    SQLAlchemy 1.4 has no psycopg 3 dialect, so ``postgresql+psycopg://`` becomes psycopg2 there.
    """
    parsed = make_url(url)
    if not SQLALCHEMY_2 and parsed.drivername == "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


# --- FastAPI / Starlette --------------------------------------------------------------------------


def leaf_routes(router: Any) -> Iterable[Any]:
    """The router's routes, those of included routers among them, each with .matches() and .path.

    FastAPI 0.86 copies an included router's routes into the app's; recent FastAPI keeps the
    included router as one entry, whose routes fastapi.routing.iter_route_contexts() lists.
    """
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_route_contexts is None:
        return router.routes
    return iter_route_contexts(router.routes)


def rebuild_middleware_stack(app: Any) -> None:
    """Make a change to app.build_middleware_stack (as OpenTelemetry's instrument_app makes) take effect.

    Starlette before 0.24 builds the stack at once (and again on add_middleware); later releases
    build it at the first request, so there is nothing to redo.
    """
    if getattr(app, "middleware_stack", None) is not None:
        app.middleware_stack = app.build_middleware_stack()


def lifespan_kwargs(startup: Callable[[], None], shutdown: Callable[[], None]) -> Dict[str, Any]:
    """FastAPI(...) keyword arguments that run `startup` and `shutdown` around serving."""
    if FASTAPI_HAS_LIFESPAN:

        @contextlib.asynccontextmanager
        async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
            startup()
            try:
                yield
            finally:
                shutdown()

        return {"lifespan": lifespan}
    return {"on_startup": [startup], "on_shutdown": [shutdown]}


def import_dbapi(dialect_class: Any) -> Any:
    """Import the driver module of a dialect class (ImportError when it is not installed).

    SQLAlchemy 2.0 renamed the classmethod `dbapi()` to `import_dbapi()` and warns on the old name.
    """
    if hasattr(dialect_class, "import_dbapi"):
        return dialect_class.import_dbapi()
    return dialect_class.dbapi()


def sqlstate(error: BaseException) -> Any:
    """The SQLSTATE of a PostgreSQL driver error: psycopg 3 calls it `sqlstate`, psycopg2 `pgcode`."""
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
