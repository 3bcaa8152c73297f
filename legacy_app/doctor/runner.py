"""Serve the target under the instrument, send each request twice (as sent, then hung up on), judge each.

The target runs in `python -m legacy_app.doctor.serve` (a uvicorn subprocess); its events arrive as
JSON lines in a temporary file. Requests go one at a time. After each one the runner waits for the
app to return (background tasks included; at most APP_RETURN_TIMEOUT), then SETTLE_SECONDS more for
whatever the app does after returning (a close in a callback, a checkin by the pool), and only then judges.
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from . import findings
from . import requests as sending

SETTLE_SECONDS = 0.5
APP_RETURN_TIMEOUT = 10.0
START_TIMEOUT = 30.0
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(: .*)?$")


class CannotRun(Exception):
    """The target could not be run; the message is the one line the command prints (exit status 2)."""


class EventFile:
    """Reads the JSON lines the server appends, whole lines only."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.events: List[Dict[str, Any]] = []

    def read(self) -> List[Dict[str, Any]]:
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        self.events.extend(json.loads(line) for line in complete.splitlines() if line.strip())
        return self.events


def place_server_files(directory: Path) -> Path:
    """Copy serve.py and instrument.py into `directory`, under names no app uses; the script's path."""
    directory.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    shutil.copyfile(here / "instrument.py", directory / "legacy_app_doctor_instrument.py")
    script = directory / "legacy_app_doctor_serve.py"
    shutil.copyfile(here / "serve.py", script)
    return script


class DoctorServer:
    """The target served by `python` (the app's interpreter; ours by default) under the instrument alone."""

    def __init__(self, target: str, app_dir: Path, factory: bool, scratch: Path,
                 env: Optional[Dict[str, str]] = None, python: Optional[str] = None) -> None:
        self.events = EventFile(scratch / "events.jsonl")
        self.events.path.touch()
        self.log_path = scratch / "server.log"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        script = place_server_files(scratch / "server")
        command = [python or sys.executable, str(script), target, "--events", str(self.events.path),
                   "--port", str(self.port), "--app-dir", str(app_dir)] + (["--factory"] if factory else [])
        child_env = dict(os.environ, **(env or {}))
        child_env.pop("PYTHONHOME", None)
        if python is None:  # our own interpreter: compare's probe app is a module of this package
            child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), child_env.get("PYTHONPATH")]))
        else:  # the app's: nothing of ours on its path, and none of our virtualenv's settings
            child_env.pop("PYTHONPATH", None)
            child_env.pop("VIRTUAL_ENV", None)
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=child_env,
                                        cwd=str(app_dir))

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CannotRun(self._why_it_stopped())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        raise CannotRun(f"the server did not start within {START_TIMEOUT:.0f} s"
                        + (f"; its last line: {lines[-1]}" if lines else ""))

    def app_info(self) -> Dict[str, Any]:
        """What serve.py reported of the app: its openapi_url, its stack, whether it uses SQLAlchemy's asyncio."""
        found = [e for e in self.events.read() if e["kind"] == "app_info"]
        return json.loads(found[-1]["detail"]) if found else {}

    def saw_async(self) -> bool:
        return bool(self.app_info().get("asyncio"))

    def _why_it_stopped(self) -> str:
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        doctor = [line[len("doctor: "):] for line in lines if line.startswith("doctor: ")]
        if doctor:
            return doctor[-1]
        last = lines[-1] if lines else "no output"
        errors = [line for line in lines if EXCEPTION_LINE.match(line)]  # "Application startup failed" says not why
        why = f" ({errors[-1].strip()})" if errors and errors[-1] != last else ""
        return f"the server stopped with status {self.process.returncode}: {last}{why}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def get(method: str, path: str) -> sending.PreparedRequest:
    """A request with no body and no header of its own (compare's probes)."""
    return sending.PreparedRequest(method, path, {}, b"", sending.RequestSpec(method, path))


def send(port: int, request: sending.PreparedRequest) -> Tuple[Optional[int], bytes]:
    """The status and the body as received (None, b"" when no answer came; a cut body as far as it came)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=APP_RETURN_TIMEOUT + 30)
    status = None
    try:
        connection.request(request.method, request.path, body=request.body or None, headers=request.headers)
        response = connection.getresponse()
        status = response.status
        return status, response.read()
    except http.client.IncompleteRead as cut:
        return status, cut.partial
    except (OSError, http.client.HTTPException):
        return status, b""  # a cut response is still judged on what the server did
    finally:
        connection.close()


def send_and_hang_up(port: int, request: sending.PreparedRequest) -> None:
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
             f"Content-Length: {len(request.body)}"] + [f"{k}: {v}" for k, v in request.headers.items()]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)


class Doctor:
    def __init__(self, server: DoctorServer, settle: float) -> None:
        self.server, self.settle = server, settle
        self.sessions, self.connections = findings.Ids(), findings.Ids()
        self.last_body = b""  # what the last plain run received, for callers that check the answer too

    def run(self, request: sending.PreparedRequest, disconnect: bool) -> Dict[str, Any]:
        first = len(self.server.events.read())
        if disconnect:
            send_and_hang_up(self.server.port, request)
            status = None
        else:
            status, self.last_body = send(self.server.port, request)
        number = self._wait_for_return(first)
        time.sleep(self.settle)
        if self.server.process.poll() is not None:
            raise CannotRun(f"the server stopped during {request.method} {request.path}: "
                            + self.server._why_it_stopped())
        events = list(self.server.events.read())
        result: Dict[str, Any] = {"method": request.method, "path": request.path, "status": status,
                                  "disconnected": disconnect}
        if number is None:  # the server never handed the request to the app
            result.update(hazards=[], observations={"reached_app": False}, events=[])
            return result
        judged = findings.analyse(number, events, self.sessions, self.connections)
        sent_status = judged.pop("status")
        result["status"] = status if status is not None else sent_status
        result.update(judged)
        result["observations"]["reached_app"] = True
        return result

    def _wait_for_return(self, first: int) -> Optional[int]:
        deadline = time.monotonic() + APP_RETURN_TIMEOUT
        number = None
        while True:
            events = self.server.events.read()[first:]
            if number is None:
                number = next((e["request"] for e in events if e["kind"] == "request_start"), None)
            if number is not None and any(e["kind"] == "app_return" and e["request"] == number for e in events):
                return number
            if time.monotonic() > deadline:
                return number
            time.sleep(0.02)


def run_doctor(target: str, app_dir: Path = Path("."), factory: bool = False,
               requests_file: Optional[Path] = None, settle: float = SETTLE_SECONDS, python: Optional[str] = None,
               headers: Sequence[str] = (), openapi_url: Optional[str] = None,
               environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Serve `target` (with `python`, the app's interpreter), send its requests, judge them.

    The document's strings pass through the requests' redaction: no token, ${ENV} value or --header
    value reaches the report, the JSON, the page or the kept log.
    """
    environ = os.environ if environ is None else environ
    try:
        context = sending.Context(environ, sending.parse_header_options(headers, environ))
        specs = sending.load(requests_file, environ) if requests_file is not None else None
    except sending.RequestsError as error:
        raise CannotRun(str(error)) from None
    if python is not None:
        python = _interpreter(python)
    scratch = Path(tempfile.mkdtemp(prefix="legacy_app_doctor_"))
    try:
        server = DoctorServer(target, Path(app_dir).resolve(), factory, scratch, python=python)
        try:
            server.wait_until_serving()
            info = server.app_info()
            not_exercised: List[sending.NotExercised] = []
            if specs is None:
                specs, not_exercised = _discover(server, context, openapi_url, info)
            results = _exercise(Doctor(server, settle), context, specs, not_exercised)
        except CannotRun as error:
            raise CannotRun(f"{error}; the server's log: {_keep(server.log_path, context)}") from None
        finally:
            server.stop()
        document = _document(target, info, settle, results, not_exercised, asynchronous=server.saw_async())
        if document["verdict"] != "clean":
            document["server_log"] = _keep(server.log_path, context)
        return context.redact_all(document)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _interpreter(python: str) -> str:
    """--python as an absolute path (the server runs in --app-dir), not resolved: a virtualenv's python
    is a link, and resolving it would leave the virtualenv."""
    found = os.path.abspath(python) if os.sep in python else shutil.which(python)
    if found is None or not (os.path.isfile(found) and os.access(found, os.X_OK)):
        raise CannotRun(f"--python {python}: no such interpreter")
    return found


def _discover(server: "DoctorServer", context: sending.Context, openapi_url: Optional[str],
              info: Dict[str, Any]) -> Tuple[List[sending.RequestSpec], List[sending.NotExercised]]:
    def get_schema(url: str) -> Tuple[Optional[int], bytes]:
        return send(server.port, sending.PreparedRequest("GET", url, dict(context.headers), b"",
                                                         sending.RequestSpec("GET", url)))
    try:
        _, schema = sending.find_schema(sending.openapi_candidates(openapi_url, info.get("openapi_url", "unknown")),
                                        get_schema)
    except sending.RequestsError as error:
        raise CannotRun(str(error)) from None
    specs, not_exercised = sending.discover(schema)
    if not specs:
        raise CannotRun("no --requests given and the app's OpenAPI has no GET the doctor can send"
                        + "".join(f"; {n.method} {n.path}: {n.reason}" for n in not_exercised[:5]))
    return specs, not_exercised


def _exercise(doctor: "Doctor", context: sending.Context, specs: Sequence[sending.RequestSpec],
              not_exercised: List[sending.NotExercised]) -> List[Dict[str, Any]]:
    results = []
    for spec in specs:
        prepared = context.render(spec)
        if isinstance(prepared, sending.NotExercised):
            not_exercised.append(prepared)
            continue
        plain = doctor.run(prepared, disconnect=False)
        plain["origin"] = spec.origin
        notes = context.remember(prepared, plain["status"], doctor.last_body)
        if notes:
            plain["notes"] = notes
        results.append(plain)
        if spec.hangup:
            hung_up = doctor.run(prepared, disconnect=True)
            hung_up["origin"] = spec.origin
            if set(hung_up["hazards"]) - set(plain["hazards"]):
                hung_up["hazards"].append("leak_on_disconnect")
            results.append(hung_up)
    return results


def _document(target: str, info: Dict[str, Any], settle: float, results: List[Dict[str, Any]],
              not_exercised: List[sending.NotExercised], asynchronous: bool) -> Dict[str, Any]:
    totals = findings.count(results)
    coverage, inconclusive = _coverage(results, not_exercised)
    verdict = "hazard" if totals else ("inconclusive" if inconclusive else "clean")
    return {"target": target, "versions": info.get("versions", {}),  # the app's stack, as serve.py read it there
            "settle_s": settle, "requests": results, "hazards": totals, "coverage": coverage, "verdict": verdict,
            "inconclusive": inconclusive, "asynchronous": asynchronous}


def _coverage(results: List[Dict[str, Any]],
              not_exercised: List[sending.NotExercised]) -> Tuple[Dict[str, Any], List[str]]:
    """What was exercised, and why the run shows nothing when it does (one line a reason)."""
    plain = [r for r in results if not r["disconnected"]]
    answered: Dict[str, int] = {}
    for request in plain:
        key = str(request["status"])
        answered[key] = answered.get(key, 0) + 1
    used = [r for r in plain if r["observations"].get("transactions") or r["observations"].get("checkouts")]
    coverage = {
        "requests": len(plain),  # as sent; each may also have been sent once more and hung up on
        "answered": dict(sorted(answered.items())),
        "used_a_session": len(used),
        "not_exercised": [{"method": n.method, "path": n.path, "reason": n.reason} for n in not_exercised],
    }
    reasons = []
    if not any(r["status"] is not None and 200 <= r["status"] < 400 for r in used):
        reasons.append("no request both used a database session and answered 2xx/3xx"
                       + ("" if plain else " (no request was sent)"))
    for request in plain:
        route = f"{request['method']} {request['path']}"
        if request["status"] in (401, 403):
            reasons.append(f"{route} answered {request['status']}: log in first (a login request in --requests, "
                           "with \"save\", or --header \"Authorization: ...\")")
        elif request["status"] == 404 and request.get("origin") == "openapi":
            reasons.append(f"{route} answered 404 on a path the app's own OpenAPI lists: give it an id that exists "
                           "(--requests)")
    return coverage, reasons


def _keep(log_path: Path, context: sending.Context) -> str:
    """The server's log, redacted, somewhere that outlives the run; its path."""
    kept = Path(tempfile.mkdtemp(prefix="legacy_app_doctor_log_")) / "server.log"
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    kept.write_text(context.redact(text), encoding="utf-8")
    return str(kept)
