"""The README's examples, run as written: the `curl` session under "## Try it" against a live server,
the seeding command against another, and the doctor command on its known-answer app. Each compares
what really comes out with what the README shows; and every docs page is linked from the README."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import requests

pytestmark = [pytest.mark.server, pytest.mark.live]  # the README's commands, against a started server

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# The stack whose virtualenv runs these tests is the one the scripts must use.
STACK = "legacy" if Path(sys.prefix).name == "legacy" else "current"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The text under `## heading`, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme(), re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no section '## {heading}'"
    return match.group(1)


def fenced(text: str, language: str) -> List[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def commands(block: str) -> List[str]:
    """The block's commands: lines that are neither empty nor comments, continuation lines joined."""
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def documented_address() -> str:
    """scripts/run.sh's default address: where the README's commands expect the server."""
    run_sh = (REPO / "scripts" / "run.sh").read_text()
    host = re.search(r"\$\{HOST:-([^}]+)\}", run_sh).group(1)
    port = re.search(r"\$\{PORT:-([^}]+)\}", run_sh).group(1)
    return f"http://{host}:{port}"


def test_try_it_creates_a_user_reads_it_adds_an_item_and_lists_it_exactly_as_the_readme_shows(live_server_factory, tmp_path):
    text = section("Try it")
    assert text.lstrip("\n").split("\n```bash\n", 1)[0].count("```") == 0, "the bash block comes first under the heading"
    (block,) = fenced(text, "bash")
    (shown,) = fenced(text, "text")
    address = documented_address()
    assert len(commands(block)) == 4 and all(address in command for command in commands(block))

    server = live_server_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'try_it.db'}")
    ran = subprocess.run(["bash", "-e", "-c", block.replace(address, server.url)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr

    answers = [json.loads(line) for line in ran.stdout.splitlines()]
    assert answers == [json.loads(line) for line in shown.splitlines()], ran.stdout
    created, read, item, items = answers
    assert isinstance(created["id"], int) and created["email"] == "alice@example.com" and created["items"] == []
    assert read == created
    assert item["owner_id"] == created["id"] and item["title"] == "Notebook"
    assert items == [item]
    assert "password" not in ran.stdout and "hashed" not in ran.stdout


def test_the_readme_seeding_command_fills_the_running_server_and_run_again_creates_nothing(live_server_factory, tmp_path):
    text = section("Seed a running service")
    (block,) = fenced(text, "bash")
    (shown,) = fenced(text, "text")
    (command,) = commands(block)
    command = command.split("#", 1)[0].strip()
    assert command.startswith("scripts/seed.sh ")
    users = int(re.search(r"--users (\d+)", command).group(1))
    per_user = int(re.search(r"--items-per-user (\d+)", command).group(1))
    address = documented_address()
    # What the README shows is what its own command prints on the server scripts/run.sh started.
    assert shown.strip() == (f"{address}: users: {users} created, 0 skipped, 0 failed; "
                             f"items: {users * per_user} created, 0 skipped, 0 failed")

    server = live_server_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'seeded.db'}")
    small = re.sub(r"--users \d+", "--users 3", command)
    # No --url: the command seeds http://127.0.0.1:$PORT, the server scripts/run.sh starts on PORT.
    env = {**os.environ, "PORT": str(server.port), "STACK": STACK}
    first = subprocess.run(["bash", "-c", small], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.strip() == (f"{server.url}: users: 3 created, 0 skipped, 0 failed; "
                                    f"items: {3 * per_user} created, 0 skipped, 0 failed")

    stored = requests.get(f"{server.url}/users/?limit=100", timeout=10).json()
    assert sorted(user["email"] for user in stored) == [f"user{n}@seed.example.com" for n in (1, 2, 3)]
    assert [len(user["items"]) for user in stored] == [per_user] * 3
    assert len(requests.get(f"{server.url}/items/?limit=100", timeout=10).json()) == 3 * per_user

    # "Idempotent: run again, it creates nothing and skips the users and their items."
    again = subprocess.run(["bash", "-c", small], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == (f"{server.url}: users: 0 created, 3 skipped, 0 failed; "
                                    f"items: 0 created, {3 * per_user} skipped, 0 failed")
    assert len(requests.get(f"{server.url}/users/?limit=100", timeout=10).json()) == 3


@pytest.mark.slow  # the doctor serves the app and sends each request twice
def test_the_readme_doctor_command_finds_the_old_tutorial_middlewares_hazard_and_exits_as_stated(tmp_path):
    text = section("For your own app")
    blocks = [block for block in fenced(text, "bash") if block.startswith("legacy-app doctor ")]
    assert len(blocks) == 1, "one doctor example, in a bash block"
    line = blocks[0].strip()
    command, comment = line.split("#", 1)
    stated_exit = int(re.search(r"exit status (\d)", comment).group(1))
    shown = next(block for block in fenced(text, "text") if block.startswith("request "))
    shown_report = next(row for row in shown.splitlines() if row.startswith("GET /report ") and "hung up" not in row)
    shown_verdict = next(row for row in shown.splitlines() if row.startswith("verdict: "))

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'doctor_app.db'}",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    ran = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)

    assert ran.returncode == stated_exit == 1, ran.stdout + ran.stderr
    rows = ran.stdout.splitlines()
    # The request the client saw to the end: the same row on both stacks.
    assert shown_report.split() in [row.split() for row in rows], ran.stdout
    verdict = next(row for row in rows if row.startswith("verdict: "))
    assert verdict.startswith("verdict: a hazard") and shown_verdict.startswith("verdict: a hazard"), verdict


def test_every_docs_page_is_linked_from_the_readme_and_every_readme_link_resolves():
    text = readme()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [target for target in targets if "://" not in target]
    missing = [target for target in local if not (REPO / target).exists()]
    assert missing == [], f"README.md links to files that do not exist: {missing}"
    pages = sorted(path.relative_to(REPO).as_posix() for path in (REPO / "docs").glob("*.md"))
    unlinked = [page for page in pages if page not in local]
    assert unlinked == [], f"docs pages the README does not link: {unlinked}"
