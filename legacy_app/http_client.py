"""A minimal HTTP client on the standard library, which reports truncated bodies faithfully."""
import http.client
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional


@dataclass
class Reply:
    status: int
    body: bytes
    complete: bool  # the whole body arrived and the response ended cleanly
    headers: Dict[str, str] = field(default_factory=dict)  # names lower-cased

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One keep-alive connection to host:port; reconnects after a failed exchange."""

    def __init__(self, port: int, timeout: float = 60.0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._connection: Optional[http.client.HTTPConnection] = None

    def request(self, method: str, path: str, body: Optional[bytes] = None) -> Reply:
        headers = {"content-type": "application/json"} if body is not None else {}
        reused = self._connection is not None
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
        except (OSError, http.client.HTTPException):
            self.close()
            if reused:  # the server closed an idle keep-alive connection (e.g. after a 500): once more
                return self.request(method, path, body)
            raise
        try:
            data = response.read()
            complete = True
        except http.client.IncompleteRead as partial:
            data, complete = partial.partial, False
            self.close()
        except (OSError, http.client.HTTPException):
            data, complete = b"", False
            self.close()
        if response.will_close:
            self.close()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, data, complete, headers)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
