"""A pure ASGI middleware for every response: a request body size limit, and protective headers."""
from typing import List, Optional, Tuple

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def too_large_detail(limit: int) -> str:
    return f"Request body larger than {limit} bytes"


class BodyLimitAndSecurityHeaders:
    """Pure ASGI: a 413 for a body over max_body_bytes (declared, or counted as it arrives), and
    HEADERS on every response that does not set them itself."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        answered = False  # the 413 went out: whatever the app sends afterwards is dropped

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if answered:
                return
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
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:  # chunked bodies declare no length
                    if not started:
                        await self._too_large(scope, receive, send_with_headers)
                        answered = True
                    # The app stops reading as if the client had gone (FastAPI then answers 400,
                    # which is dropped). An exception raised here would not do: under
                    # BaseHTTPMiddleware it reaches FastAPI inside a task group's ExceptionGroup,
                    # which FastAPI turns into that 400.
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counting_receive, send_with_headers)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = too_large_detail(self.max_body_bytes)
        await JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> Optional[int]:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
