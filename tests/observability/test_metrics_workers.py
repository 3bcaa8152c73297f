"""`serve --workers 2`: a scrape of either worker reports exact sums over both, and serve removes
the multiprocess directory it made."""
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Set

import pytest
import requests

from ..conftest import database_url_for, reset_database
from ..support.live_server import LiveServer, wait_until
from .test_metrics import Samples, parse, value

MAX_REQUESTS = 400  # spread over both workers long before this in practice


@pytest.fixture(params=["sqlite", "postgresql"])
def served_database(request, tmp_path) -> str:
    url = database_url_for(request.param, tmp_path)
    if request.param != "sqlite":
        reset_database(url)
    return url


def worker_pids(log: str, request_line: str) -> Set[str]:
    """The pids in the request log lines ("INFO [pid] legacy_app.request: method=... path=...")."""
    return set(re.findall(r"\[(\d+)\] legacy_app\.request: " + re.escape(request_line), log))


def wait_until_logged(server: LiveServer, count: int) -> None:
    """Until `count` request lines other than scrapes are in the log.

    A worker counts a request after its response is sent, so a scrape answered by the other worker
    at once may not see it yet. The request log writes its line after the metrics middleware
    (inside it) has counted: once every line is there, every count is.
    """
    wait_until(
        lambda: len(re.findall(r"legacy_app\.request: method=\S+ path=(?!/metrics )", server.log())) >= count,
        timeout=10, message=f"{count} request lines logged", log=server.log,
    )


def get_on_a_new_connection(url: str) -> int:
    return requests.get(url, timeout=30).status_code  # no Session: a connection of its own


def scrape_on_a_new_connection(base_url: str) -> Samples:
    reply = requests.get(f"{base_url}/metrics", timeout=30)
    assert reply.status_code == 200
    return parse(reply.text)


@pytest.mark.live
def test_two_workers_report_exact_sums_over_both_and_serve_removes_its_directory(served_database, tmp_path):
    scratch = tmp_path / "tmp"  # serve makes its multiprocess directory under TMPDIR
    scratch.mkdir()
    env = {"DATABASE_URL": served_database, "TMPDIR": str(scratch)}
    with LiveServer(env, tmp_path / "serve.log", app="cli", workers=2) as server:
        assert [p.name[:19] for p in scratch.iterdir()] == ["legacy_app-metrics-"]
        user = {"email": "workers@example.com", "password": "pw"}
        user_id = requests.post(f"{server.url}/users/", json=user, timeout=30).json()["id"]
        path = f"/users/{user_id}"

        sent = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            # New connections, several at once: the workers share the listening socket.
            while sent < 60 or (len(worker_pids(server.log(), f"method=GET path={path} status=200")) < 2
                                and sent < MAX_REQUESTS):
                statuses = list(pool.map(lambda _: get_on_a_new_connection(server.url + path), range(20)))
                assert statuses == [200] * 20
                sent += 20
            for _ in range(5):
                assert get_on_a_new_connection(server.url + "/users/999999") == 404
        assert len(worker_pids(server.log(), f"method=GET path={path} status=200")) == 2
        wait_until_logged(server, 1 + 1 + sent + 5)  # start()'s /health, the POST, the reads

        scrapes = []
        while len(scrapes) < 6 or (len(worker_pids(server.log(), "method=GET path=/metrics")) < 2
                                   and len(scrapes) < 60):
            scrapes.append(scrape_on_a_new_connection(server.url))
        assert len(worker_pids(server.log(), "method=GET path=/metrics")) == 2  # both workers answered
        for samples in scrapes:
            assert value(samples, "http_requests_total", method="GET", route="/users/{user_id}", status="200") == sent
            assert value(samples, "http_requests_total", method="GET", route="/users/{user_id}", status="404") == 5
            assert value(samples, "http_requests_total", method="POST", route="/users/", status="200") == 1
            assert value(samples, "http_request_duration_seconds_count", method="GET", route="/users/{user_id}") == sent + 5
            assert value(samples, "db_transaction_duration_seconds_count") == sent + 5 + 1
            # asgi-middleware: every request has a session, also the /health start() waited for.
            assert value(samples, "db_session_duration_seconds_count") == sent + 5 + 1 + 1
            # Gauges: the sum over the live workers, at rest.
            assert value(samples, "db_pool_checked_out") == 0
            assert value(samples, "db_sessions_open") == 0
            assert value(samples, "db_pool_capacity") == 2 * (5 + 10)
    assert server.process.returncode == 0
    assert list(scratch.iterdir()) == []  # serve removed its directory


@pytest.mark.live
def test_one_worker_needs_no_multiprocess_directory(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'one.db'}", "TMPDIR": str(scratch)}
    with LiveServer(env, tmp_path / "serve.log", app="cli") as server:
        assert not [p for p in scratch.iterdir() if p.name.startswith("legacy_app-metrics-")]
        assert get_on_a_new_connection(server.url + "/users/1") == 404
        wait_until_logged(server, 2)  # start()'s /health and the read
        samples = scrape_on_a_new_connection(server.url)
    assert value(samples, "http_requests_total", method="GET", route="/users/{user_id}", status="404") == 1


def test_a_killed_workers_gauges_leave_the_sum(tmp_path):
    """A worker killed with SIGKILL cannot remove its gauge files; the next scrape drops them."""
    from legacy_app.observability.metrics import forget_dead_workers

    directory = tmp_path / "multiproc"
    directory.mkdir()
    (directory / "gauge_livesum_999999999.db").write_bytes(b"")  # a pid no process has
    (directory / "counter_999999999.db").write_bytes(b"")
    forget_dead_workers(str(directory))
    assert sorted(p.name for p in directory.iterdir()) == ["counter_999999999.db"]  # totals stay
