"""The app's FastAPI, read from the app's own interpreter (`--python`), and what it does with a yield
dependency's exit code."""
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Tuple

from .sources import CannotFix

Version = Tuple[int, ...]
ASK = "import importlib.metadata as m; print(m.version('fastapi'))"
# FastAPI ran a yield dependency's exit code after the response up to 0.105, before it from 0.106 to
# 0.117, after it again from 0.118; Depends(..., scope="function") runs it before, from 0.121.
BEFORE_RESPONSE = ((0, 106), (0, 118))
FUNCTION_SCOPE = (0, 121)


def fastapi_version(python: Optional[str]) -> Tuple[Optional[str], str]:
    """(FastAPI's version, or None when it is not installed there; the interpreter asked)."""
    interpreter = python or sys.executable
    if python is not None and not (shutil.which(python) or Path(python).is_file()):
        raise CannotFix(f"--python {python}: no such interpreter")
    try:
        answer = subprocess.run([interpreter, "-c", ASK], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CannotFix(f"--python {interpreter}: cannot run it: {error}") from None
    version = answer.stdout.strip()
    return (version if answer.returncode == 0 and version else None), interpreter


def parse(version: str) -> Version:
    return tuple(int(re.match(r"\d*", part).group() or 0) for part in version.split(".")[:3])  # type: ignore[union-attr]


def exits_after_response(version: Version) -> bool:
    return not BEFORE_RESPONSE[0] <= version[:2] < BEFORE_RESPONSE[1]


def has_function_scope(version: Version) -> bool:
    return version[:2] >= FUNCTION_SCOPE
