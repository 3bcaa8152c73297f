"""Each scenario sends real requests to a probe server and derives its figures from what the
observers recorded. Nothing here is filled in from expectation: a figure that could not be
observed is reported as None.

Requests go through requests, one Session (keep-alive) per thread. The probe's own requests are
retried when idempotent (server_process.http_session); those of pool_exhaustion are not: a
request that failed is its result.
"""
import json
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import requests

from ..server_process import http_session

Events = List[Dict[str, Any]]


@dataclass
class Reply:
    status: int
    body: bytes
    complete: bool  # the whole body arrived: its Content-Length, or every chunk up to the last one

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(session: requests.Session, method: str, url: str, timeout: float = 60.0) -> Reply:
    """The answer as received. A body cut short, whether it declared a Content-Length or came
    chunked, makes urllib3 raise IncompleteRead or ProtocolError, which requests turns into
    ChunkedEncodingError: complete=False, and the body holds what was read before (maybe nothing)."""
    with session.request(method, url, stream=True, timeout=timeout) as response:
        parts: List[bytes] = []
        try:
            for part in response.iter_content(chunk_size=65536):
                parts.append(part)
            complete = True
        except requests.exceptions.ChunkedEncodingError:
            complete = False
        return Reply(response.status_code, b"".join(parts), complete)


class Probe:
    """Talks to one probe server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.session = http_session()

    def request(self, method: str, path: str) -> Reply:
        return fetch(self.session, method, self.base + path)

    def reset(self) -> None:
        self.request("GET", "/_probe/reset")

    def snapshot(self) -> Dict[str, Any]:
        return self.request("GET", "/_probe/events").json()

    def wait_for(self, *names: str, timeout: float = 5.0) -> Dict[str, Any]:
        """The event log once every named event has happened (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.snapshot()
            seen = {event["event"] for event in snapshot["events"]}
            if all(name in seen for name in names) or time.monotonic() > deadline:
                return snapshot
            time.sleep(0.02)

    def settle(self, seconds: float = 0.15) -> Dict[str, Any]:
        time.sleep(seconds)
        return self.snapshot()

    def rows_persisted(self) -> int:
        return self.request("GET", "/_probe/rows").json()["rows"]

    def cleanup(self) -> None:
        self.request("GET", "/_probe/cleanup")

    def close(self) -> None:
        self.session.close()


def _first(events: Events, name: str) -> Optional[Dict[str, Any]]:
    return next((event for event in events if event["event"] == name), None)


def _count(events: Events, name: str) -> int:
    return sum(1 for event in events if event["event"] == name)


def close_timing(probe: Probe, path: str) -> Dict[str, Any]:
    """Did the session close after the last body message reached the server, and on which thread?"""
    probe.reset()
    reply = probe.request("GET", path)
    events = probe.wait_for("session.close", "response.body_complete")["events"]
    close = _first(events, "session.close")
    body_complete = _first(events, "response.body_complete")
    return {
        "status": reply.status,
        "closed_after_response": None if not (close and body_complete) else close["t"] > body_complete["t"],
        "close_thread": close["thread"] if close else None,
    }


def no_db_route(probe: Probe, path: str = "/health", requests: int = 5) -> Dict[str, Any]:
    probe.reset()
    for _ in range(requests):
        probe.request("GET", path)
    events = probe.settle()["events"]
    return {
        "sessions_created": _count(events, "session.create") / requests,
        "connections_checked_out": _count(events, "pool.checkout") / requests,
    }


def error_persistence(probe: Probe, path: str) -> Dict[str, Any]:
    probe.cleanup()
    probe.reset()
    reply = probe.request("POST", path)
    probe.wait_for("session.close")
    rows = probe.rows_persisted()
    probe.cleanup()
    return {"status": reply.status, "rows_persisted": rows}


def late_use(probe: Probe, path: str, name: str, uses: int) -> Dict[str, Any]:
    """The request's session used after the endpoint returned: did it work, did it leak?

    The probe route records `<name>.query_ok` per successful use and `<name>.end` when done.
    leaked_connections counts the connections this request left checked out (earlier leaks in
    the same server are subtracted).
    """
    probe.reset()
    checked_out_before = probe.snapshot()["checked_out"]
    reply = probe.request("GET", path)
    probe.wait_for(f"{name}.end", "session.close")
    snapshot = probe.settle(0.1)  # let a close that follows the late use finish
    events = snapshot["events"]
    close = _first(events, "session.close")
    end = _first(events, f"{name}.end")
    return {
        "status": reply.status,
        "session_usable": _count(events, f"{name}.query_ok") == uses,
        "leaked_connections": snapshot["checked_out"] - checked_out_before,
        "closed_after_late_use": None if not (close and end) else close["t"] > end["t"],
        "reply": reply,
    }


def background_task(probe: Probe) -> Dict[str, Any]:
    result = late_use(probe, "/probe/background", "background", uses=1)
    del result["reply"]
    return result


def streaming_response(probe: Probe, chunks: int = 5) -> Dict[str, Any]:
    result = late_use(probe, "/probe/stream", "stream", uses=chunks)
    reply = result.pop("reply")
    result["body_complete"] = reply.complete and reply.body.count(b"chunk ") == chunks
    return result


def factory_failure(probe: Probe) -> Dict[str, Any]:
    probe.reset()
    db_status = probe.request("GET", "/users/").status
    no_db_status = probe.request("GET", "/health").status
    exception = _first(probe.settle()["events"], "server.exception")
    return {
        "db_route_status": db_status,
        "no_db_route_status": no_db_status,
        "error_type": exception["type"] if exception else None,
    }


def contextvars(probe: Probe) -> Dict[str, Any]:
    return {"set_in_middleware_visible_in_endpoint": probe.request("GET", "/probe/contextvar").json()["visible"]}


def pool_exhaustion(port: int, requests: int, path: str = "/probe/slow") -> Dict[str, Any]:
    statuses: List[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(requests + 1)

    def one() -> None:
        session = http_session(retries=0)  # its own connection: the requests are concurrent
        start.wait()
        try:
            status: Any = fetch(session, "GET", f"http://127.0.0.1:{port}{path}", timeout=120).status
        except Exception as error:  # a refused or reset connection is a result, not a crash
            status = type(error).__name__
        finally:
            session.close()
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(requests)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    counts = Counter(str(status) for status in statuses)
    return {"requests": requests, "status_counts": dict(sorted(counts.items())), "wall_s": round(wall, 2)}


def overhead(probes: Dict[str, Probe], requests: int, warmup: int = 50) -> Dict[str, Dict[str, Any]]:
    """Median latency per strategy, the strategies' requests interleaved in one run."""
    routes = {"db_route_median_us": "/probe/select1", "no_db_route_median_us": "/health"}
    samples: Dict[str, Dict[str, List[float]]] = {name: {key: [] for key in routes} for name in probes}
    for key, path in routes.items():
        for round_number in range(warmup + requests):
            for name, probe in probes.items():
                began = time.perf_counter()
                reply = probe.request("GET", path)
                elapsed = time.perf_counter() - began
                if reply.status != 200:
                    raise RuntimeError(f"{name} {path} answered {reply.status} during the overhead run")
                if round_number >= warmup:
                    samples[name][key].append(elapsed)
    return {
        name: {key: round(statistics.median(values) * 1e6, 1) for key, values in by_key.items()}
        for name, by_key in samples.items()
    }


Scenario = Callable[[Probe], Dict[str, Any]]

MAIN_SCENARIOS: Dict[str, Scenario] = {
    "normal_request": lambda probe: close_timing(probe, "/users/?limit=5"),
    "no_db_route": no_db_route,
    "error_after_flush": lambda probe: error_persistence(probe, "/probe/error-after-flush"),
    "http_exception_after_flush": lambda probe: error_persistence(probe, "/probe/http-exception-after-flush"),
    "background_task": background_task,
    "streaming_response": streaming_response,
    "contextvars": contextvars,
}
