"""scripts/run.sh, the README's first command: serves the API, passes --workers on, stops on SIGTERM."""
import os
import signal
import subprocess
import sys
import time

from legacy_app.http_client import Client
from legacy_app.server_process import PACKAGE_PARENT, free_port

# The stack whose virtualenv runs these tests is the one run.sh must use.
STACK = "legacy" if ".venv-legacy" in sys.prefix else "current"


def test_run_script_serves_with_two_workers_and_stops_cleanly(tmp_path):
    port = free_port()
    log_path = tmp_path / "run.log"
    env = {**os.environ, "STACK": STACK, "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["bash", str(PACKAGE_PARENT / "scripts" / "run.sh"), "--workers", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120  # the first call may install the run requirements
            while log_path.read_text().count("Application startup complete.") < 2:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            assert Client(port).request("GET", "/users/?limit=1").status == 200
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
    log_text = log_path.read_text()
    assert returncode == 0, log_text
    assert len(set(line for line in log_text.splitlines() if "Started server process" in line)) == 2
    assert "Traceback" not in log_text
