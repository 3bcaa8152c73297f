"""Connection drills: idle connections beyond the server's file limit, and clients slow to send their
headers, directly and through deploy/nginx.conf. Loopback only, bounded in time and count."""
import json
import resource
import socket
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import requests

from legacy_app.config import FLOOR_HASHING_ENV
from legacy_app.observability.logs import logging_config
from legacy_app.server.process import ServerProcess

from .drills import DrillResult, _dialect
from .nginx_proxy import NginxProxy, nginx_binary

FILE_LIMIT = 256  # the server's, set with `ulimit -n` before serve starts: the drill stays small
SLOW_CLIENT_CAP_S = 30.0  # how long the slow clients are watched at most


@contextmanager
def _serve_with_file_limit(url: str, log_dir: Path, name: str, file_limit: int, asyncio_loop: bool = False,
                           **env: str) -> Iterator[ServerProcess]:
    """`legacy_app serve` under `ulimit -n file_limit` (soft and hard: serve cannot raise it); with
    asyncio_loop, plain uvicorn on asyncio's loop instead of uvloop (serve's logging configuration)."""
    if asyncio_loop:
        log_config = log_dir / f"{name}-log-config.json"
        log_config.write_text(json.dumps(logging_config("info")))
        runner = f'-m uvicorn legacy_app.main:app --loop asyncio --log-config {log_config}'
    else:
        runner = "-m legacy_app serve"
    command = ["bash", "-c", f'ulimit -n {file_limit} && exec "$0" {runner} "$@"', sys.executable]
    server = ServerProcess(command, {"DATABASE_URL": url, **FLOOR_HASHING_ENV, **env}, log_dir / f"{name}.log")
    with server:
        yield server


def _raise_own_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def idle_connections(url: str, log_dir: Path, file_limit: int = FILE_LIMIT, beyond: int = 100,
                     seconds: float = 15.0, asyncio_loop: bool = False) -> DrillResult:
    """file_limit + beyond connections that send nothing, held `seconds`; /health probed meanwhile."""
    _raise_own_file_limit()
    name = "idle-connections-asyncio" if asyncio_loop else "idle-connections"
    with _serve_with_file_limit(url, log_dir, name, file_limit, asyncio_loop) as server:
        log_before = server.log_path.stat().st_size
        idle: List[socket.socket] = []
        refused = 0
        try:
            for _ in range(file_limit + beyond):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
                except OSError:
                    refused += 1
            probes: List[Any] = []
            began = time.monotonic()
            while time.monotonic() - began < seconds:
                sent = time.perf_counter()
                try:
                    status: Any = requests.get(f"{server.url}/health", timeout=2).status_code
                except requests.RequestException as error:
                    status = type(error).__name__
                probes.append((status, time.perf_counter() - sent, time.monotonic() - began))
                time.sleep(0.5)
            closed_by_server = sum(1 for sock in idle if _closed(sock))
        finally:
            for sock in idle:
                sock.close()
        time.sleep(1)
        recovered = _answers(f"{server.url}/health")
        log = server.log()
        log_growth = server.log_path.stat().st_size - log_before
    statuses = Counter(str(status) for status, _, _ in probes)
    first_200 = next((round(at, 1) for status, _, at in probes if status == 200), None)
    # serve: /health answers again while the idle connections are still held (HEADER_TIMEOUT closed
    # them). Plain uvicorn has no header timeout: there, a quiet log is what is asked.
    passed = (first_200 is not None or asyncio_loop) and log.count("Traceback") == 0 and log_growth < 100_000 and recovered
    return DrillResult(name, _dialect(url), passed, {
        "file_limit": file_limit, "opened": len(idle), "refused": refused, "held_s": seconds,
        "health": dict(statuses), "health_max_s": round(max(latency for _, latency, _ in probes), 2),
        "first_health_200_at_s": first_200,
        "closed_by_server": closed_by_server, "log_growth_bytes": log_growth, "tracebacks": log.count("Traceback"),
        "recovered": recovered,
    })


def _closed(sock: socket.socket) -> bool:
    """The server has closed this connection (it reads as EOF or reset without blocking)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def slow_headers(url: str, log_dir: Path, through_nginx: bool = False, cap: float = SLOW_CLIENT_CAP_S,
                 nginx_replace: Optional[Dict[str, str]] = None, **env: str) -> DrillResult:
    """One connection that sends nothing, one that sends a header byte every 2 s: when is each closed?"""
    name = "slow-headers-nginx" if through_nginx else "slow-headers"
    with ExitStack() as stack:
        server = stack.enter_context(_serve_with_file_limit(url, log_dir, name, 1024, **env))
        target = server.port
        if through_nginx:
            proxy = stack.enter_context(NginxProxy(server.port, log_dir / "nginx", nginx_replace))
            target = proxy.port
        silent = socket.create_connection(("127.0.0.1", target))
        dribbling = socket.create_connection(("127.0.0.1", target))
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
        began = time.monotonic()
        closed_at: Dict[str, Optional[float]] = {"silent": None, "dribbling": None}
        sent = 0
        next_byte = began
        while time.monotonic() - began < cap and None in closed_at.values():
            now = time.monotonic()
            if closed_at["dribbling"] is None and now >= next_byte and sent < len(request):
                try:
                    dribbling.sendall(request[sent:sent + 1])
                    sent += 1
                except OSError:
                    closed_at["dribbling"] = now - began
                next_byte = now + 2.0
            for label, sock in (("silent", silent), ("dribbling", dribbling)):
                if closed_at[label] is None and _closed(sock):
                    closed_at[label] = time.monotonic() - began
            time.sleep(0.1)
        healthy = _answers(f"http://127.0.0.1:{target}/health")
        silent.close()
        dribbling.close()
    figures = {label: (f"closed after {round(seconds, 1)} s" if seconds is not None else f"open after {cap:g} s")
               for label, seconds in closed_at.items()}
    passed = None not in closed_at.values() and healthy
    return DrillResult(name, _dialect(url), passed, {**figures, "dribbled_bytes": sent, "health_after": healthy})


def connection_drills(urls: List[str], log_dir: Optional[Path] = None) -> Iterator[DrillResult]:
    with tempfile.TemporaryDirectory(prefix="legacy_app_drills_") as scratch:
        yield from _each(urls, log_dir or Path(scratch))


def _each(urls: List[str], log_dir: Path) -> Iterator[DrillResult]:
    for url in urls:
        yield idle_connections(url, log_dir)
        yield idle_connections(url, log_dir, asyncio_loop=True)
        yield slow_headers(url, log_dir)
        if nginx_binary():
            yield slow_headers(url, log_dir, through_nginx=True)
        else:
            yield DrillResult("slow-headers-nginx", _dialect(url), False, {"skipped": "nginx is not installed"})
