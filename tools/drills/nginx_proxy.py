"""deploy/nginx.conf run as our own nginx process (Debian's /usr/sbin/nginx), in front of a live server.

The configuration is the shipped file with only its addresses (and, when asked, its timeouts)
replaced; pid, logs and temporary files go into a scratch prefix, so no root is needed.
"""
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, Optional

import requests

from legacy_app.server.process import PACKAGE_PARENT, free_port

SHIPPED_CONFIG = PACKAGE_PARENT / "deploy" / "nginx.conf"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> Optional[str]:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


class NginxProxy:
    """`with NginxProxy(upstream_port, prefix) as proxy:` serves deploy/nginx.conf on proxy.url."""

    def __init__(self, upstream_port: int, prefix: Path, replace: Optional[Dict[str, str]] = None) -> None:
        self.upstream_port = upstream_port
        self.prefix = prefix
        self.replace = replace or {}  # "client_header_timeout": "2s", ...: directives given another value
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen] = None

    def config(self) -> str:
        text = SHIPPED_CONFIG.read_text()
        text = text.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        text = text.replace("server 127.0.0.1:8000", f"server 127.0.0.1:{self.upstream_port}")
        for directive, value in self.replace.items():
            text, count = re.subn(rf"^(\s*{directive}\s+)[^;]+;", rf"\g<1>{value};", text, flags=re.M)
            assert count, f"{directive} is not in {SHIPPED_CONFIG}"
        temp_paths = "".join(f"    {name}_temp_path {self.prefix / name};\n" for name in TEMP_PATHS)
        return text.replace("http {\n", "http {\n" + temp_paths, 1)

    def start(self, timeout: float = 10.0) -> "NginxProxy":
        binary = nginx_binary()
        assert binary, "nginx is not installed"
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.config())
        directives = f"pid {self.prefix / 'nginx.pid'}; error_log {self.prefix / 'error.log'} info; daemon off; master_process off;"
        self.process = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(conf), "-g", directives],
            stdout=subprocess.DEVNULL, stderr=open(self.prefix / "stderr.log", "wb"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self.log()}")
            try:
                requests.get(f"{self.url}/health", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not answer within {timeout:.0f} s: {self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in (self.prefix / "stderr.log", self.prefix / "error.log") if path.exists()
        )

    def __enter__(self) -> "NginxProxy":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
