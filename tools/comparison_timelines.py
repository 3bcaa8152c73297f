"""Draw docs/compare-<strategy>.png: the doctor's timeline of the probe app's background task and
streamed body under each session strategy (SQLite, the installed stack).

`python -m tools.comparison_timelines` (needs Debian's `chromium` for the screenshot).
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict

from legacy_app.config import FLOOR_HASHING_ENV, STRATEGIES
from legacy_app.doctor.runner import run_doctor
from legacy_app.doctor.timeline import render_html
from legacy_app.server.process import PACKAGE_PARENT

DOCS = PACKAGE_PARENT / "docs"
REQUESTS = '[{"method": "GET", "path": "/probe/background"}, {"method": "GET", "path": "/probe/stream"}]'
SIZE = "1000,820"


def plain_runs(document: Dict[str, Any]) -> Dict[str, Any]:
    """The requests as sent (the hung-up runs left out), so that the picture fits a screen."""
    requests = [request for request in document["requests"] if not request["disconnected"]]
    hazards: Dict[str, int] = {}
    for request in requests:
        for code in request["hazards"]:
            hazards[code] = hazards.get(code, 0) + 1
    return dict(document, requests=requests, hazards=hazards)


def screenshot(html: str, picture: Path, scratch: Path) -> None:
    page = scratch / "timeline.html"
    page.write_text(html, encoding="utf-8")
    subprocess.run(
        [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={scratch / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--screenshot={picture}", f"--window-size={SIZE}", "--hide-scrollbars", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="legacy_app_timelines_") as scratch:
        scratch_dir = Path(scratch)
        requests_file = scratch_dir / "requests.json"
        requests_file.write_text(REQUESTS)
        for strategy in STRATEGIES:
            os.environ.update(FLOOR_HASHING_ENV, SESSION_STRATEGY=strategy,
                              DATABASE_URL=f"sqlite:///{scratch_dir / (strategy + '.db')}")
            document = run_doctor("legacy_app.comparison.probe:app", app_dir=PACKAGE_PARENT, requests_file=requests_file)
            picture = DOCS / f"compare-{strategy}.png"
            screenshot(render_html(plain_runs(document)), picture, scratch_dir)
            print(f"{picture.relative_to(PACKAGE_PARENT)}: {document['hazards'] or 'no hazard'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
