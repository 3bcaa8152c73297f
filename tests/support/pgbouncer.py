"""A PgBouncer in transaction mode in front of the test PostgreSQL, for the deployment tests."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from sqlalchemy.engine import make_url

from legacy_app.server.process import free_port

from .live_server import wait_until

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)

CONFIG = """\
[databases]
* = host={host} port={port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
unix_socket_dir =
"""


class PgBouncer:
    def __init__(self, postgres_url: str, pool_size: int = 4) -> None:
        self.server = make_url(postgres_url)
        self.pool_size = pool_size
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.process: Optional[subprocess.Popen] = None

    def url(self) -> str:
        """postgres_url with PgBouncer's address instead of the server's."""
        return self.server.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def start(self) -> "PgBouncer":
        user = self.server.username or "postgres"
        (self.directory / "userlist.txt").write_text(f'"{user}" "{self.server.password or ""}"\n')
        (self.directory / "pgbouncer.ini").write_text(CONFIG.format(
            host=self.server.host or "127.0.0.1", port=self.server.port or 5432,
            listen_port=self.port, directory=self.directory, pool_size=self.pool_size,
        ))
        command = [PGBOUNCER, str(self.directory / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(self.directory, "postgres")
            for path in self.directory.iterdir():
                shutil.chown(path, "postgres")
            command[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_until(self._listening, timeout=10, message="pgbouncer listening on 127.0.0.1", log=self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def _listening(self) -> bool:
        assert self.process.poll() is None, f"pgbouncer exited with {self.process.returncode}:\n{self.log()}"
        return "listening on 127.0.0.1" in self.log()

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)
