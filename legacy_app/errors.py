"""Error responses that never echo what the client sent."""
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .compat import public_errors


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default handler includes each error's `input`: with Pydantic 2 a missing field
    # puts the whole body, password included, into the 422.
    return JSONResponse(status_code=422, content={"detail": public_errors(exc.errors())})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
