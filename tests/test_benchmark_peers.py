"""The peers benchmark runs end to end: one short round, every variant on every endpoint, every ratio and target.

It runs in its own virtualenv (.venvs/peers, made by scripts/bench-peers.sh: the peers are not in the
stacks' virtualenvs); without it, or without wrk, the test is skipped. Whether the targets are met is
the benchmark's own output on a quiet machine (docs/performance-peers.md), not a test.
"""
import re
import shutil
import subprocess

import pytest

from legacy_app.server.process import PACKAGE_PARENT

# The benchmark serves each peer in uvicorn and drives it with wrk; a round may take its whole 300 s.
pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.timeout(600)]

PEERS_PYTHON = PACKAGE_PARENT / ".venvs" / "peers" / "bin" / "python"
VARIANTS = ("decorator", "ours", "fastapi-sqlalchemy", "yield", "advanced-alchemy")


@pytest.mark.skipif(not PEERS_PYTHON.exists(), reason="no .venvs/peers (bash scripts/bench-peers.sh makes it)")
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/bench-peers.sh installs it)")
def test_one_short_round_reports_every_variant_on_every_endpoint():
    result = subprocess.run(
        [str(PEERS_PYTHON), "-m", "benchmarks.peers", "--rounds", "1", "--seconds", "1"],
        cwd=PACKAGE_PARENT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr  # 1 means a target was missed, not a crash
    output = result.stdout
    header = re.search(r"^endpoint\s+(.*)$", output, re.MULTILINE)
    assert header and header.group(1).split() == list(VARIANTS), output
    for endpoint in ("/users/1", "/ping"):
        row = re.search(rf"^{re.escape(endpoint)}\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", output, re.MULTILINE)
        assert row, output
        assert all(int(figure) > 0 for figure in row.groups()), row.group(0)
    assert "not measured" not in output
    targets = re.findall(r"^  (PASS|FAIL) (\S+) ours / (\S+) = \d+\.\d{3}x", output, re.MULTILINE)
    assert [(endpoint, peer) for _, endpoint, peer in targets] == [
        ("/ping", "decorator"), ("/ping", "fastapi-sqlalchemy"), ("/ping", "yield"),
        ("/users/1", "decorator"), ("/users/1", "fastapi-sqlalchemy"), ("/users/1", "yield"),
        ("/users/1", "advanced-alchemy"),
    ]
    assert result.returncode == (1 if "FAIL" in output else 0)
    assert "Traceback" not in result.stderr
