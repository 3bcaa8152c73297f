"""Each scenario sends real requests to a probe server and derives its figures from what the doctor's
instrument recorded (legacy_app/doctor). Nothing here is filled in from expectation: a figure that
could not be observed is reported as None.

The session scenarios go through the doctor, one request at a time, each judged after the app
returned and a settle time. Overhead and pool exhaustion are timed with requests against servers
without the instrument, one Session (keep-alive) per thread; the requests of pool_exhaustion are not
retried: a request that failed is its result.
"""
import json
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import requests
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from ..doctor.runner import Doctor, get
from ..models import User
from ..server.client import http_session
from .probe import PROBE_EMAIL

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
    """Plain HTTP to one uninstrumented probe server (overhead)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.session = http_session()

    def request(self, method: str, path: str) -> Reply:
        return fetch(self.session, method, self.base + path)

    def close(self) -> None:
        self.session.close()


class ProbeRun:
    """One probe server under the doctor, and the database it writes to (to count persisted rows)."""

    def __init__(self, doctor: Doctor, engine: Engine) -> None:
        self.doctor, self.engine = doctor, engine

    def request(self, method: str, path: str) -> Dict[str, Any]:
        """The doctor's judgement of one request (plain, no hang-up): hazards, observations, events."""
        return self.doctor.run(get(method, path), disconnect=False)

    def body(self) -> bytes:
        return self.doctor.last_body

    def rows_persisted(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count(User.id)).where(User.email == PROBE_EMAIL)).scalar()

    def cleanup(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(User.__table__.delete().where(User.email == PROBE_EMAIL))


def _first(events: Events, kind: str) -> Optional[Dict[str, Any]]:
    return next((event for event in events if event["kind"] == kind), None)


def _thread(event: Dict[str, Any]) -> str:
    return "event-loop" if event["thread"] == "MainThread" else "worker"


def close_timing(probe: ProbeRun, path: str) -> Dict[str, Any]:
    """Did the session close after the last body message reached the server, and on which thread?"""
    result = probe.request("GET", path)
    lifecycle = result["observations"].get("session_lifecycle", [])
    before_end = lifecycle[0]["closed_before_response_end"] if lifecycle else None
    close = _first(result["events"], "session_close")
    return {
        "status": result["status"],
        "closed_after_response": None if before_end is None else not before_end,
        "close_thread": _thread(close) if close else None,
        "hazards": result["hazards"],
    }


def no_db_route(probe: ProbeRun, path: str = "/health", requests: int = 5) -> Dict[str, Any]:
    results = [probe.request("GET", path) for _ in range(requests)]
    return {
        "sessions_created": sum(r["observations"]["sessions"] for r in results) / requests,
        "connections_checked_out": sum(r["observations"]["checkouts"] for r in results) / requests,
    }


def error_persistence(probe: ProbeRun, path: str) -> Dict[str, Any]:
    probe.cleanup()
    result = probe.request("POST", path)
    rows = probe.rows_persisted()
    probe.cleanup()
    return {"status": result["status"], "rows_persisted": rows, "hazards": result["hazards"]}


def late_use(probe: ProbeRun, path: str, after: str) -> Dict[str, Any]:
    """The request's session used after `after` (response_start or response_end): did it reach the
    database, did it leak, and was the session closed after that use?"""
    result = probe.request("GET", path)
    events = result["events"]
    milestone = _first(events, after)
    late_begins = [e for e in events if e["kind"] == "begin" and milestone and e["t"] >= milestone["t"]]
    closes = [e for e in events if e["kind"] == "session_close"]
    return {
        "status": result["status"],
        "session_usable": bool(late_begins),
        "leaked_connections": len(result["observations"]["where"].get("connection_leaked", [])),
        "closed_after_late_use": bool(late_begins and closes) and closes[-1]["t"] > late_begins[-1]["t"],
        "hazards": result["hazards"],
    }


def background_task(probe: ProbeRun) -> Dict[str, Any]:
    return late_use(probe, "/probe/background", after="response_end")


def streaming_response(probe: ProbeRun, chunks: int = 5) -> Dict[str, Any]:
    result = late_use(probe, "/probe/stream", after="response_start")
    result["body_complete"] = probe.body().count(b"chunk ") == chunks
    return result


def factory_failure(probe: ProbeRun) -> Dict[str, Any]:
    db_route = probe.request("GET", "/users/")
    no_db_route = probe.request("GET", "/health")
    returned = _first(db_route["events"], "app_return")
    raised = (returned or {}).get("detail") or ""
    return {
        "db_route_status": db_route["status"],
        "no_db_route_status": no_db_route["status"],
        "error_type": raised[len("raised "):] if raised.startswith("raised ") else None,
    }


def contextvars(probe: ProbeRun) -> Dict[str, Any]:
    probe.request("GET", "/probe/contextvar")
    return {"set_in_middleware_visible_in_endpoint": json.loads(probe.body())["visible"]}


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


Scenario = Callable[[ProbeRun], Dict[str, Any]]

MAIN_SCENARIOS: Dict[str, Scenario] = {
    "normal_request": lambda probe: close_timing(probe, "/users/?limit=5"),
    "no_db_route": no_db_route,
    "error_after_flush": lambda probe: error_persistence(probe, "/probe/error-after-flush"),
    "http_exception_after_flush": lambda probe: error_persistence(probe, "/probe/http-exception-after-flush"),
    "background_task": background_task,
    "streaming_response": streaming_response,
    "contextvars": contextvars,
}
