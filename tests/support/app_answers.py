"""What an app answers, and what the doctor finds in it: each served from its own interpreter, for
comparing an app before and after a change (tests/fix/test_fix.py)."""
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from legacy_app.server.process import PACKAGE_PARENT, ServerProcess

Request = Tuple[str, str]  # (method, path), no body
Answer = Tuple[Optional[int], bytes]


def _env(database_url: str) -> Dict[str, str]:
    python_path = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, DATABASE_URL=database_url, PYTHONPATH=python_path)


def start_doctor(target: str, app_dir: Path, requests: Sequence[Request], database_url: str, scratch: Path,
                 python: Optional[str] = None) -> subprocess.Popen:
    """`legacy_app doctor TARGET --json` on `requests` (each sent once), started; finish() reads its document."""
    requests_file = scratch / "requests.json"
    requests_file.write_text(json.dumps([{"method": m, "path": p, "hangup": False} for m, p in requests]))
    command = [sys.executable, "-m", "legacy_app", "doctor", target, "--app-dir", str(app_dir), "--json",
               "--requests", str(requests_file), "--settle", "0.2"] + (["--python", python] if python else [])
    return subprocess.Popen(command, env=_env(database_url), cwd=str(scratch), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(doctor: subprocess.Popen) -> Dict[str, Any]:
    out, err = doctor.communicate(timeout=120)
    assert doctor.returncode in (0, 1), err
    return json.loads(out)


def hazards_by_path(document: Dict[str, Any]) -> Dict[str, List[str]]:
    return {r["path"]: r["hazards"] for r in document["requests"]}


def answers(target: str, app_dir: Path, requests: Sequence[Request], database_url: str, log_path: Path,
            python: Optional[str] = None, pause: float = 0.2) -> List[Answer]:
    """(status, body as received) of each request, sent once to the app served by uvicorn with `python`.

    `pause` seconds between requests: what the app does after answering (a commit after the response,
    a background task) is done before the next request reads, so the answers do not depend on that race.
    """
    command = [python or sys.executable, "-m", "uvicorn", target, "--app-dir", str(app_dir)]
    received = []
    with ServerProcess(command, {"DATABASE_URL": database_url}, log_path) as server:
        for method, path in requests:
            received.append(_send(server.port, method, path))
            time.sleep(pause)
    return received


def _send(port: int, method: str, path: str) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status = None
    try:
        connection.request(method, path)
        response = connection.getresponse()
        status = response.status
        return status, response.read()
    except http.client.IncompleteRead as cut:
        return status, cut.partial
    finally:
        connection.close()
