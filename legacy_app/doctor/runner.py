"""Serve the target under the instrument, send each request twice (as sent, then hung up on), judge each.

The target runs in `python -m legacy_app.doctor.serve` (a uvicorn subprocess); its events arrive as
JSON lines in a temporary file. Requests go one at a time. After each one the runner waits for the
app to return (background tasks included; at most APP_RETURN_TIMEOUT), then SETTLE_SECONDS more for
whatever the app does after returning (a close in a callback, a checkin by the pool), and only then judges.
"""
import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import findings

SETTLE_SECONDS = 0.5
APP_RETURN_TIMEOUT = 10.0
START_TIMEOUT = 30.0
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
VERSIONED_PACKAGES = ("fastapi", "starlette", "pydantic", "sqlalchemy", "uvicorn")


class CannotRun(Exception):
    """The target could not be run; the message is the one line the command prints (exit status 2)."""


def installed_versions() -> Dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def load_requests(path: Path) -> List[Dict[str, Any]]:
    """A JSON list of {"method", "path", "json"?, "headers"?}."""
    try:
        requests = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CannotRun(f"cannot read requests from {path}: {error}") from None
    if not isinstance(requests, list) or not requests:
        raise CannotRun(f"{path}: expected a non-empty JSON list of requests")
    for n, request in enumerate(requests, 1):
        if not (isinstance(request, dict) and isinstance(request.get("method"), str)
                and isinstance(request.get("path"), str) and request["path"].startswith("/")
                and isinstance(request.get("headers", {}), dict)):
            raise CannotRun(f"{path}: request {n} needs \"method\" and a \"path\" starting with /"
                            " (and \"headers\", if given, an object)")
        if not all(isinstance(value, str) and _is_latin_1(f"{name}{value}") for name, value in request.get("headers", {}).items()):
            raise CannotRun(f"{path}: request {n}: header names and values must be strings of Latin-1 characters (HTTP/1.1)")
    return [{"method": r["method"].upper(), "path": r["path"], "json": r.get("json"), "headers": r.get("headers", {})}
            for r in requests]


def _is_latin_1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def openapi_requests(schema: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every GET of the schema that needs no parameter (no path parameter, no required query or header)."""
    requests = []
    for path, operations in schema.get("paths", {}).items():
        get = operations.get("get")
        if get is None or "{" in path:
            continue
        if any(p.get("required") for p in get.get("parameters", []) + operations.get("parameters", [])):
            continue
        requests.append({"method": "GET", "path": path, "json": None, "headers": {}})
    return requests


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

    def _why_it_stopped(self) -> str:
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        doctor = [line[len("doctor: "):] for line in lines if line.startswith("doctor: ")]
        if doctor:
            return doctor[-1]
        return f"the server stopped with status {self.process.returncode}: {lines[-1] if lines else 'no output'}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _body(request: Dict[str, Any]) -> Tuple[bytes, Dict[str, str]]:
    headers = {str(k): str(v) for k, v in request["headers"].items()}
    if request["json"] is None:
        return b"", headers
    headers.setdefault("Content-Type", "application/json")
    return json.dumps(request["json"]).encode(), headers


def send(port: int, request: Dict[str, Any]) -> Tuple[Optional[int], bytes]:
    """The status and the body as received (None, b"" when no answer came; a cut body as far as it came)."""
    body, headers = _body(request)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=APP_RETURN_TIMEOUT + 30)
    status = None
    try:
        connection.request(request["method"], request["path"], body=body or None, headers=headers)
        response = connection.getresponse()
        status = response.status
        return status, response.read()
    except http.client.IncompleteRead as cut:
        return status, cut.partial
    except (OSError, http.client.HTTPException):
        return status, b""  # a cut response is still judged on what the server did
    finally:
        connection.close()


def send_and_hang_up(port: int, request: Dict[str, Any]) -> None:
    body, headers = _body(request)
    lines = [f"{request['method']} {request['path']} HTTP/1.1", f"Host: 127.0.0.1:{port}",
             f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class Doctor:
    def __init__(self, server: DoctorServer, settle: float) -> None:
        self.server, self.settle = server, settle
        self.sessions, self.connections = findings.Ids(), findings.Ids()
        self.last_body = b""  # what the last plain run received, for callers that check the answer too

    def run(self, request: Dict[str, Any], disconnect: bool) -> Dict[str, Any]:
        first = len(self.server.events.read())
        if disconnect:
            send_and_hang_up(self.server.port, request)
            status = None
        else:
            status, self.last_body = send(self.server.port, request)
        number = self._wait_for_return(first)
        time.sleep(self.settle)
        if self.server.process.poll() is not None:
            raise CannotRun(f"the server stopped during {request['method']} {request['path']}: "
                            + self.server._why_it_stopped())
        events = list(self.server.events.read())
        result: Dict[str, Any] = {"method": request["method"], "path": request["path"], "status": status,
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


def fetch_openapi(port: int) -> List[Dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/openapi.json")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise CannotRun(f"no --requests given and GET /openapi.json answered {response.status}")
        return openapi_requests(json.loads(body))
    except (OSError, ValueError, http.client.HTTPException) as error:
        raise CannotRun(f"no --requests given and GET /openapi.json failed: {error}") from None
    finally:
        connection.close()


def run_doctor(target: str, app_dir: Path = Path("."), factory: bool = False,
               requests_file: Optional[Path] = None, settle: float = SETTLE_SECONDS) -> Dict[str, Any]:
    requests = load_requests(requests_file) if requests_file is not None else None
    with tempfile.TemporaryDirectory(prefix="legacy_app_doctor_") as scratch:
        server = DoctorServer(target, Path(app_dir).resolve(), factory, Path(scratch))
        try:
            server.wait_until_serving()
            if requests is None:
                requests = fetch_openapi(server.port)
                if not requests:
                    raise CannotRun("no --requests given and the OpenAPI schema has no GET without parameters")
            doctor = Doctor(server, settle)
            results = []
            for request in requests:
                plain = doctor.run(request, disconnect=False)
                hung_up = doctor.run(request, disconnect=True)
                if set(hung_up["hazards"]) - set(plain["hazards"]):
                    hung_up["hazards"].append("leak_on_disconnect")
                results += [plain, hung_up]
        finally:
            server.stop()
    totals = findings.count(results)
    return {"target": target, "versions": installed_versions(), "settle_s": settle,
            "requests": results, "hazards": totals}
