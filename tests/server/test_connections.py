"""What `serve` does with connections: the file limit it raises, MAX_CONNECTIONS, HEADER_TIMEOUT,
accept errors logged once per interval; and deploy/nginx.conf in front of it."""
import asyncio
import errno
import json
import logging
import re
import socket
import sys
import time

import pytest
import requests

from legacy_app.server.connections import AcceptErrorLog
from legacy_app.observability.logs import logging_config
from tools.drills.connections import slow_headers
from tools.drills.nginx_proxy import NginxProxy, nginx_binary

from ..support.live_server import LiveServer, wait_until


def serve_under(file_limit: str, env: dict, log_path, app_args=None) -> LiveServer:
    """`legacy_app serve` started by bash after `ulimit <file_limit>` (e.g. "-Sn 300": soft only)."""
    command = ["bash", "-c", f'ulimit {file_limit} && exec "$0" -m legacy_app serve "$@"', sys.executable]
    return LiveServer(env, log_path, app=command)


@pytest.mark.live
def test_serve_raises_the_soft_file_limit_to_the_hard_one_and_derives_the_connection_bound(tmp_path):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with serve_under("-Sn 300", {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}, tmp_path / "s.log") as server:
        line = wait_until(lambda: re.search(r"file limit (\d+); at most (\d+) connections per worker", server.log()),
                          log=server.log, message="serve's connections line")
    assert int(line.group(1)) == hard
    assert int(line.group(2)) == hard - 5 - 10 - 64  # less the pool (5 + 10) and the reserve


def still_open(sock: socket.socket) -> bool:
    """Whether the server has not closed this connection (nor sent anything on it) yet; never blocks."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False


@pytest.mark.live
def test_beyond_max_connections_a_request_gets_503_at_once(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "MAX_CONNECTIONS": "4"}
    with LiveServer(env, tmp_path / "s.log", app="cli") as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        try:
            crowded = requests.get(f"{server.url}/health", timeout=5)
            # Answered while all four connections still hold their places: it did not wait for one to free.
            assert [still_open(sock) for sock in held] == [True] * 4
        finally:
            for sock in held:
                sock.close()
        assert crowded.status_code == 503
        assert wait_until(lambda: requests.get(f"{server.url}/health", timeout=5).status_code == 200)


def health_on(sock: socket.socket) -> bytes:
    """GET /health on this connection; its whole answer (headers and body may come apart)."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(5)
    answer = b""
    while not answer.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


@pytest.mark.live
def test_header_timeout_closes_silent_and_slow_connections_but_not_a_kept_alive_one(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "HEADER_TIMEOUT": "1"}
    with LiveServer(env, tmp_path / "s.log", app="cli") as server:
        silent = socket.create_connection(("127.0.0.1", server.port))
        kept = socket.create_connection(("127.0.0.1", server.port))
        assert health_on(kept).startswith(b"HTTP/1.1 200")
        assert still_open(silent)  # the server took it (it answered the later one) and did not close it at once
        silent.settimeout(30)
        assert silent.recv(1) == b""  # then closed by the server, with nothing sent: the head never came
        time.sleep(1.5)  # idle between requests is the keep-alive timeout's (5 s), not this one's
        assert health_on(kept).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /health HTTP/1.1\r\n")  # the next request's head, never finished
        kept.settimeout(5)
        assert kept.recv(1) == b""
        silent.close()
        kept.close()
        assert "Traceback" not in server.log()


def test_accept_errors_are_counted_and_logged_once_per_interval(caplog):
    caplog.set_level(logging.ERROR, logger="legacy_app")
    now = [100.0]
    loop = asyncio.new_event_loop()
    try:
        handler = AcceptErrorLog(loop, interval=10.0, clock=lambda: now[0])
        context = {"message": "socket.accept() out of system resource", "exception": OSError(errno.EMFILE, "Too many open files")}
        for _ in range(5):
            handler(loop, context)
        now[0] += 10
        handler.flush()  # what call_later runs at the end of the interval
        other = []
        loop.set_exception_handler(lambda _loop, ctx: other.append(ctx))
        AcceptErrorLog(loop).install()
        loop.call_exception_handler({"message": "something else", "exception": ValueError("x")})
    finally:
        loop.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("accepting connections failed 1 time(s) since the last report: Too many open files")
    assert messages[1].startswith("accepting connections failed 4 time(s)")
    assert [ctx["message"] for ctx in other] == ["something else"]  # passed on untouched


@pytest.mark.live
def test_a_server_out_of_file_descriptors_logs_no_traceback_per_accept(tmp_path):
    """uvicorn on the asyncio loop (which reports every failed accept) under `ulimit -n 64`."""
    config = tmp_path / "log.json"
    config.write_text(json.dumps(logging_config("info")))
    command = ["bash", "-c", 'ulimit -n 64 && exec "$0" -m uvicorn legacy_app.main:app "$@"', sys.executable,
               "--loop", "asyncio", "--log-config", str(config)]
    with LiveServer({"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}, tmp_path / "s.log", app=command) as server:
        idle = []
        try:
            for _ in range(100):
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
            wait_until(lambda: "accepting connections failed" in server.log(), log=server.log,
                       message="the accept-error line")
            time.sleep(2)  # asyncio retries every failed accept about once a second
            log = server.log()
        finally:
            for sock in idle:
                sock.close()
        assert wait_until(lambda: requests.get(f"{server.url}/health", timeout=5).status_code == 200)
    assert log.count("accepting connections failed") == 1
    assert "Traceback" not in log and "socket.accept() out of system resource" not in log


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed (Debian: apt-get install nginx)")
@pytest.mark.live
def test_slow_clients_are_closed_by_the_shipped_nginx_configuration(tmp_path):
    """The slow-header drill through deploy/nginx.conf, its header timeout shortened to 2 s."""
    result = slow_headers(f"sqlite:///{tmp_path / 'n.db'}", tmp_path, through_nginx=True, cap=15,
                          nginx_replace={"client_header_timeout": "2s"})
    assert result.passed, result.line()  # both closed, and the service answers after
    # nginx's header timeout closed each, as its log says: the silent one while nginx waited for a
    # request, the dribbling one while it read the request line; the latter within its first bytes
    # (one every 2 s), so by the 2 s put in, not the shipped 10 s (which lets it send six).
    error_log = (tmp_path / "nginx" / "error.log").read_text()
    timed_out = re.findall(r"client timed out \(\d+: [^)]*\) while ([a-z ]+)", error_log)
    assert sorted(timed_out) == ["reading client request line", "waiting for request"], error_log
    assert result.figures["dribbled_bytes"] <= 3, result.line()


@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed (Debian: apt-get install nginx)")
@pytest.mark.live
def test_nginx_limits_the_connections_of_one_client_and_refuses_ambiguous_framing(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}"}
    with LiveServer(env, tmp_path / "s.log", app="cli") as server, \
            NginxProxy(server.port, tmp_path / "nginx", {"limit_conn": "per_client 2"}) as proxy:
        waiting = []
        try:
            for _ in range(2):  # heads read, bodies awaited: each counts against the client's limit
                sock = socket.create_connection(("127.0.0.1", proxy.port))
                sock.sendall(b"POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n")
                waiting.append(sock)
            time.sleep(0.5)
            assert requests.get(f"{proxy.url}/health", timeout=5).status_code == 503
        finally:
            for sock in waiting:
                sock.close()
        assert wait_until(lambda: requests.get(f"{proxy.url}/health", timeout=5).status_code == 200)
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            body = b"0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            sock.sendall(b"POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body) + body)
            sock.settimeout(5)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1 ") == 1, answer
