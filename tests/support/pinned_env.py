"""A user's app environment: a virtualenv holding exactly the pins of one constraints/stacks/<name>.txt.

Kept in .venvs/stack-<name> between runs and made again only when its pin file (or the Python) changed
or it no longer holds exactly the pins. A test holds its lock while it installs into it and puts it
back as it was, so two test runs (CI runs the suite on two stacks at once) never share it.
"""
import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

from packaging.utils import canonicalize_name

from .live_server import REPO_ROOT

STACKS_DIR = REPO_ROOT / "constraints" / "stacks"
VENVS_DIR = REPO_ROOT / ".venvs"
LOCK_TIMEOUT = 30 * 60.0  # another run's whole stack test may be ahead of this one


def parse_pins(lines: List[str]) -> Dict[str, str]:
    """{canonical name: version} of `pip freeze` lines; a direct-URL install (`name @ url`) maps to the URL."""
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        if not separator:
            name, _, version = line.partition(" @ ")
            version = "@ " + version
        pins[canonicalize_name(name)] = version.strip()
    return pins


class PinnedEnv:
    def __init__(self, name: str) -> None:
        self.name = name
        self.pin_file = STACKS_DIR / f"{name}.txt"
        self.path = VENVS_DIR / f"stack-{name}"
        self.python = self.path / "bin" / "python"
        self.pins = parse_pins(self.pin_file.read_text().splitlines())
        self._lock_file: Optional[object] = None

    def stamp(self) -> str:
        return hashlib.sha256(self.pin_file.read_bytes() + sys.version.encode()).hexdigest()

    def acquire(self) -> None:
        VENVS_DIR.mkdir(exist_ok=True)
        self._lock_file = open(VENVS_DIR / f"stack-{self.name}.lock", "w")
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.path} stayed locked by another test run for {LOCK_TIMEOUT:.0f} s")
                time.sleep(1)

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing drops the lock
            self._lock_file = None

    def ensure(self) -> float:
        """Make the environment hold exactly the pins; the seconds spent making it (0.0: it did already)."""
        stamp_path = self.path / ".pins-sha256"
        stamp = self.stamp()
        if self.python.exists() and stamp_path.exists() and stamp_path.read_text() == stamp and self.freeze() == self.pins:
            return 0.0
        started = time.monotonic()
        shutil.rmtree(self.path, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True, capture_output=True, timeout=300)
        self.pip("install", "-r", str(self.pin_file))
        frozen = self.freeze()
        assert frozen == self.pins, (
            f"{self.pin_file} is not a whole `pip freeze`: installing it gave "
            f"{sorted(set(frozen.items()) ^ set(self.pins.items()))} besides (or instead of) the pins")
        stamp_path.write_text(stamp)
        return time.monotonic() - started

    def pip(self, *args: str) -> str:
        result = subprocess.run([str(self.python), "-m", "pip", "--disable-pip-version-check", *args],
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"pip {' '.join(args)} in {self.path}:\n{result.stdout}{result.stderr}"
        return result.stdout

    def freeze(self) -> Dict[str, str]:
        return parse_pins(self.pip("freeze").splitlines())

    def python_command(self, *args: str) -> List[str]:
        """Run this environment's Python isolated: the work tree (the current directory) and PYTHONPATH,
        which would put the repository's legacy_app before the installed one, stay off sys.path."""
        return [str(self.python), "-I", *args]
