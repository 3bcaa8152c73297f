"""Seed a running server over its HTTP API: `scripts/seed.sh [--url URL] (--users N | --file FILE)`.

Idempotent: a user is looked up by email (GET /users/?email=) before it is created, and an item
is added only if its owner has no item with that title. Prints created / skipped / failed and
exits 1 when anything failed, 2 when the server cannot be reached. Stopped on the way (Ctrl-C,
SIGTERM, the server gone) it says what it wrote and that the same command again is safe, and exits
130 (SIGINT), 143 (SIGTERM) or 2.
"""
import argparse
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import quote, urlsplit

import requests

from ..server.client import http_session
from . import records
from .progress import Progress
from .records import SeedUser
from .stopping import Interrupted, report_stop, signals_interrupt


class Unreachable(Exception):
    pass


class _Stopping(Exception):
    """Raised in a worker instead of sending a request once the run is stopping."""


@dataclass
class Tally:
    counts: Dict[str, int] = field(default_factory=lambda: {
        f"{kind}_{outcome}": 0 for kind in ("users", "items") for outcome in ("created", "skipped", "failed")
    })
    failures: List[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, failure: Optional[str] = None) -> None:
        with self.lock:
            self.counts[key] += 1
            if failure:
                self.failures.append(failure)

    def summary(self) -> str:
        c = self.counts
        return (
            f"users: {c['users_created']} created, {c['users_skipped']} skipped, {c['users_failed']} failed; "
            f"items: {c['items_created']} created, {c['items_skipped']} skipped, {c['items_failed']} failed"
        )

    @property
    def failed(self) -> bool:
        return self.counts["users_failed"] + self.counts["items_failed"] > 0


class Seeder:
    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--url must look like http://HOST:PORT, got {url!r}")
        self.url = url
        self.base = f"http://{parts.netloc}{parts.path.rstrip('/')}"
        self.timeout = timeout
        self.local = threading.local()
        self.sessions: List[requests.Session] = []
        self.sessions_lock = threading.Lock()
        self.stopping = threading.Event()  # set: no further request is sent

    def session(self) -> requests.Session:
        """One per thread, keeping its connection alive; lookups are retried, registrations never."""
        if not hasattr(self.local, "session"):
            session = self.local.session = http_session()
            with self.sessions_lock:
                self.sessions.append(session)
        return self.local.session

    def close(self) -> None:
        with self.sessions_lock:
            for session in self.sessions:
                session.close()
            self.sessions.clear()

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        if self.stopping.is_set():
            raise _Stopping()
        try:
            return self.session().request(method, self.base + path, json=body, timeout=self.timeout)
        except requests.exceptions.ChunkedEncodingError as error:  # the body ended before it was whole
            raise Unreachable(f"{method} {self.base + path}: the answer was cut short: {error}") from None
        except requests.RequestException as error:  # refused, reset or timed out, after the retries
            raise Unreachable(f"cannot reach {self.url}: {error}") from None

    def check_reachable(self) -> None:
        try:  # fail fast: one try, a short timeout
            reply = requests.get(self.base + "/health", timeout=min(3.0, self.timeout))
        except requests.RequestException as error:
            raise Unreachable(f"cannot reach {self.url}: {error}") from None
        if reply.status_code != 200:
            raise Unreachable(f"{self.url}/health answered {reply.status_code}; is this the legacy_app API?")

    def seed_user(self, user: SeedUser, tally: Tally) -> bool:
        """Whether it wrote anything (a user, an item, or tried to): False for a user that, with its items, was there."""
        existing = self.find(user.email)
        wrote = existing is None
        if existing is None:
            reply = self.call("POST", "/users/", {"email": user.email, "password": user.password})
            if reply.status_code == 200:
                existing = reply.json()
                tally.add("users_created")
            elif reply.status_code == 400 and (existing := self.find(user.email)) is not None:
                tally.add("users_skipped")  # registered meanwhile by someone else
            else:
                tally.add("users_failed", f"user {user.email}: HTTP {reply.status_code} {_detail(reply.content)}")
                for _ in user.items:
                    tally.add("items_failed")
                return True
        else:
            tally.add("users_skipped")
        titles = {item["title"] for item in existing["items"]}
        for item in user.items:
            if item.title in titles:
                tally.add("items_skipped")
                continue
            wrote = True
            body = {"title": item.title, "description": item.description}
            reply = self.call("POST", f"/users/{existing['id']}/items/", body)
            if reply.status_code == 200:
                titles.add(item.title)
                tally.add("items_created")
            else:
                tally.add("items_failed", f"item {item.title!r} of {user.email}: HTTP {reply.status_code} {_detail(reply.content)}")
        return wrote

    def find(self, email: str) -> Optional[Dict[str, Any]]:
        reply = self.call("GET", f"/users/?email={quote(email)}")
        if reply.status_code != 200:
            raise Unreachable(f"{self.url}/users/?email= answered {reply.status_code}: {_detail(reply.content)}")
        found = reply.json()
        return found[0] if found else None


def _detail(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body).get("detail"))[:200]
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")


def run(url: str, users: List[SeedUser], concurrency: int, timeout: float) -> int:
    """Exit 0; 1 when a row failed; 2 when the server cannot be reached, at the start or on the way;
    130 / 143 when SIGINT / SIGTERM stopped it (signals_interrupt() must be in force for those)."""
    seeder = Seeder(url, timeout)
    seeder.check_reachable()
    tally = Tally()
    stop: Optional[Exception] = None
    with Progress(len(users)) as progress:

        def one(user: SeedUser) -> None:
            wrote = seeder.seed_user(user, tally)
            progress.update(1, unchanged=0 if wrote else 1)

        try:
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                try:
                    for _ in pool.map(one, users):
                        pass
                except BaseException:  # the server is gone, or a signal: start no other user, and
                    seeder.stopping.set()  # no other request; wait for the answers on their way, to count them
                    pool.shutdown(cancel_futures=True)
                    raise
        except (Interrupted, Unreachable) as error:
            stop = error
        finally:
            seeder.close()
    for failure in tally.failures[:20]:
        print(f"failed: {failure}", file=sys.stderr)
    if len(tally.failures) > 20:
        print(f"... and {len(tally.failures) - 20} more failures", file=sys.stderr)
    if isinstance(stop, Interrupted):
        report_stop("seed", stop.reason, progress.done, len(users), tally.summary())
        return stop.exit_code
    if stop is not None:
        report_stop("seed", str(stop), progress.done, len(users), tally.summary())
        return 2
    print(f"{url}: {tally.summary()}")
    return 1 if tally.failed else 0


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in --help; none where there is none (--users, --file)."""

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seed.sh", description=__doc__.splitlines()[0],
                                     formatter_class=_HelpWithDefaults)
    parser.add_argument(
        "--url", default=f"http://127.0.0.1:{os.environ.get('PORT') or 8000}",
        help="base URL of the running server; scripts/run.sh serves at http://127.0.0.1:$PORT, 8000 when PORT is unset",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--users", type=int, help="generate this many users (user<N>@seed.example.com)")
    source.add_argument("--file", type=Path, help="a .json or .csv file (format: scripts/README.md)")
    parser.add_argument("--items-per-user", type=int, default=0, help="items per generated user")
    parser.add_argument("--password", default="seed-password", help="password of generated users")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one answer")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.users is not None and args.users < 1) or args.items_per_user < 0 or args.concurrency < 1:
        parser.error("--users and --concurrency must be at least 1, --items-per-user at least 0")
    if not args.timeout > 0:
        parser.error("--timeout must be more than 0")
    with signals_interrupt():
        try:
            if args.file:
                users = records.load(args.file)
            else:
                users = list(records.generated(args.users, args.items_per_user, args.password))
            return run(args.url, users, args.concurrency, args.timeout)
        except Interrupted as stop:  # before the first request
            print(f"seed: {stop.reason} before anything was sent", file=sys.stderr)
            return stop.exit_code
        except records.SeedFileError as error:
            print(f"seed: {error}", file=sys.stderr)
            return 1
        except (Unreachable, ValueError) as error:
            print(f"seed: {error}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
