"""uvicorn's HTTP protocol with HEADER_TIMEOUT: a connection whose request head is not complete
that many seconds after it opened (or after it began its next request) is closed.

uvicorn has no such option; its keep-alive timeout covers only the silence between requests.
This subclass of uvicorn's own protocol (httptools where installed, as uvicorn's `auto` picks;
otherwise h11) adds one timer and touches nothing else: the asyncio Protocol methods it extends
and the `loop`, `transport` and `cycle` attributes both uvicorn 0.19 and 0.54 have. `serve`
passes it to uvicorn as `http=`.
"""
import asyncio
from typing import Any, Optional

from ..config import environment_settings

try:
    import httptools  # noqa: F401  (uvicorn's "auto" picks httptools when it imports)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornProtocol
except ImportError:  # pragma: no cover - the pinned stacks install httptools
    from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornProtocol  # type: ignore[assignment]

_timeout: Optional[float] = None


def header_timeout() -> float:
    """HEADER_TIMEOUT, read once per process (a worker inherits serve's environment)."""
    global _timeout
    if _timeout is None:
        _timeout = environment_settings().header_timeout
    return _timeout


class HeaderTimeoutProtocol(_UvicornProtocol):  # type: ignore[misc, valid-type]
    _timer: Optional[asyncio.TimerHandle] = None
    _armed_for: Any = None  # the request cycle that was the latest when the timer started

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if self._timer is not None:
            if cycle is not self._armed_for:  # a new request's head is complete
                self._disarm()
        elif cycle is not None and cycle.response_complete and not self.transport.is_closing():
            self._arm()  # bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._armed_for = self.cycle
        self._timer = self.loop.call_later(header_timeout(), self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self.cycle is self._armed_for and not self.transport.is_closing():
            self.transport.close()
