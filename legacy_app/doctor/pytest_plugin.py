"""`pytest -p legacy_app.doctor`: the doctor's instrument inside a user's own test suite.

At configure time the instrument's SQLAlchemy listeners are installed, and Starlette's TestClient and
httpx's ASGITransport (the client of async suites; httpx2's too) are patched so that the app they
drive is wrapped in the instrument's request recorder. After each phase of each test (setup, call,
teardown) the requests it made are judged like the doctor judges a served request — except that
sessions the test's own fixtures made outside any request (a session on a connection rolled back at
teardown, say) are the test's, not the app's. The terminal summary says how many requests were
recorded and lists the hazards per test; `--doctor-strict` turns a phase with a hazard into a failure.
"""
import gc
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest

from . import findings, instrument, runner

STRICT = "--doctor-strict"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("doctor", "session lifecycle of the requests made through Starlette's TestClient")
    group.addoption(STRICT, action="store_true", default=False,
                    help="fail a test whose requests show a hazard (leaked connection, session used after close, ...)")


def pytest_configure(config: Any) -> None:
    if not config.pluginmanager.has_plugin("legacy-app-doctor"):
        config.pluginmanager.register(DoctorPlugin(strict=config.getoption(STRICT)), "legacy-app-doctor")


def _record_test_client_requests() -> None:
    """Wrap the app handed to TestClient's transport (httpx or httpx2 since Starlette 0.21, requests before)."""
    from starlette import testclient

    transport = getattr(testclient, "_TestClientTransport", None) or testclient._ASGIAdapter
    original = transport.__init__
    if getattr(original, "_doctor_wrapped", False):
        return

    def init(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, instrument.RequestRecorder(app), *args, **kwargs)

    init._doctor_wrapped = True  # type: ignore[attr-defined]
    transport.__init__ = init


def _record_asgi_transport_requests() -> None:
    """Wrap the app handed to httpx.ASGITransport (and httpx2's), as AsyncClient(transport=...) uses it."""
    import importlib

    for name in ("httpx", "httpx2"):
        try:
            transport = importlib.import_module(name).ASGITransport
        except (ImportError, AttributeError):
            continue
        original = transport.__init__
        if getattr(original, "_doctor_wrapped", False):
            continue

        def init(self: Any, app: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(self, instrument.RequestRecorder(app), *args, **kwargs)

        init._doctor_wrapped = True  # type: ignore[attr-defined]
        transport.__init__ = init


class DoctorPlugin:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        handle, path = tempfile.mkstemp(prefix="legacy_app_doctor_", suffix=".jsonl")
        os.close(handle)
        self.events_path = path
        instrument.install(path)
        _record_test_client_requests()
        _record_asgi_transport_requests()
        self.events = runner.EventFile(Path(path))
        # Whether each session seen so far is closed (by raw id): all the judgment needs of past events,
        # so a long suite is not judged against its whole history.
        self.session_closed: Dict[int, bool] = {}
        # Sessions the tests made themselves (fixtures, test bodies) outside any request, by raw id; those
        # made while the suite was collected (an app's module-level session) stay the app's.
        self.made_outside_requests: Set[int] = set()
        self.tests_started = False
        self.sessions, self.connections = findings.Ids(), findings.Ids()
        self.requests = 0
        self.by_test: Dict[str, List[Dict[str, Any]]] = {}

    def judge(self) -> List[Dict[str, Any]]:
        """The requests started since the last judgment: each with its hazards and where they happened."""
        if not any(e["kind"] == "request_start" for e in self.events.read()):
            self._forget_judged()
            return []
        gc.collect()  # a connection only the collector returns shows now, as the leak it is
        recent = list(self.events.read())
        self._note_the_tests_sessions(recent)
        events = self._past() + recent
        results = []
        for start in (e for e in recent if e["kind"] == "request_start"):
            judged = findings.analyse(start["request"], events, self.sessions, self.connections,
                                      callers_sessions=self.made_outside_requests)
            method, _, path = (start.get("detail") or "? ?").partition(" ")
            results.append({"method": method, "path": path, "status": judged["status"],
                            "hazards": judged["hazards"], "where": judged["observations"]["where"]})
        self._forget_judged()
        self.requests += len(results)
        return results

    def _past(self) -> List[Dict[str, Any]]:
        past = []
        for session, closed in self.session_closed.items():
            past.append({"t": 0.0, "kind": "session_made", "request": None, "session": session, "connection": None, "thread": ""})
            if closed:
                past.append(dict(past[-1], kind="session_close"))
        return past

    def _note_the_tests_sessions(self, events: List[Dict[str, Any]]) -> None:
        for e in events:
            if e["kind"] == "session_made":  # an id() may be reused: each new session decides anew
                if e["request"] is None and self.tests_started:
                    self.made_outside_requests.add(e["session"])
                else:
                    self.made_outside_requests.discard(e["session"])

    def _forget_judged(self) -> None:
        events = self.events.read()
        self._note_the_tests_sessions(events)
        for e in events:
            if e["kind"] in ("session_made", "session_close"):
                self.session_closed[e["session"]] = e["kind"] == "session_close"
        self.events.events.clear()

    def pytest_collection_finish(self, session: Any) -> None:
        self._forget_judged()  # what importing the apps made is theirs
        self.tests_started = True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any):
        outcome = yield
        report = outcome.get_result()
        hazardous = [r for r in self.judge() if r["hazards"]]
        if not hazardous:
            return
        self.by_test.setdefault(item.nodeid, []).extend(dict(r, phase=call.when) for r in hazardous)
        if self.strict and report.passed:
            report.outcome = "failed"
            report.longrepr = "doctor: " + "\n".join(_describe(r) for r in hazardous)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("doctor: session lifecycle of the requests the tests made")
        if not self.requests:
            terminalreporter.write_line("no request recorded: the tests sent none through Starlette's TestClient "
                                        "or httpx's ASGITransport, so nothing was judged")
            return
        if not self.by_test:
            terminalreporter.write_line(f"no hazard in {self.requests} requests")
            return
        for nodeid, results in self.by_test.items():
            terminalreporter.write_line(nodeid, red=True)
            for result in results:
                terminalreporter.write_line("  " + _describe(result))
        count = sum(len(results) for results in self.by_test.values())
        terminalreporter.write_line(f"{count} of {self.requests} requests with a hazard in {len(self.by_test)} tests"
                                    + ("" if self.strict else f" (fail them with {STRICT})"))

    def pytest_unconfigure(self, config: Any) -> None:
        os.unlink(self.events_path)


def _describe(result: Dict[str, Any]) -> str:
    where: List[Tuple[str, str]] = [(code, text) for code, texts in result["where"].items() for text in texts]
    phase = "" if result.get("phase", "call") == "call" else f" (in {result['phase']})"
    lines = [f"{result['method']} {result['path']} -> {result['status']}{phase}: {', '.join(result['hazards'])}"]
    return "\n    ".join(lines + [f"{code}: {text}" for code, text in where])
