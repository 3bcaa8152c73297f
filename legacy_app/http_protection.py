"""A pure ASGI middleware for every response: a request body size limit, and protective headers."""
from typing import Any, Dict, List, Tuple

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

Message = Dict[str, Any]

HEADERS: List[Tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),  # user data must not sit in shared caches
    # The docs pages may load only what this service serves (they must work offline, and ReDoc
    # would fetch its logo from cdn.redoc.ly); inline script and style are Swagger UI's and ReDoc's.
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors 'none'",
    ),
]


class BodyTooLarge(HTTPException):
    """Raised from receive(): FastAPI re-raises HTTPExceptions from body parsing, so it becomes a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(limit))


def too_large_detail(limit: int) -> str:
    return f"Request body larger than {limit} bytes"


class BodyLimitAndSecurityHeaders:
    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in HEADERS if name not in present]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send_with_headers)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:  # chunked bodies declare no length
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send_with_headers)

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        detail = too_large_detail(self.max_body_bytes)
        await JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Any) -> Any:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
