"""`doctor --versions`: the same requests on other FastAPI releases, each in a copy of the app's environment.

Each environment is made with the app's interpreter (`PYTHON -m venv`) and given the app's packages at
their versions (`pip install --no-deps`, FastAPI already at the spec's version), then
`pip install fastapi==X` once more: pip's default upgrade strategy, only-if-needed, moves what that
FastAPI requires (Starlette, anyio, ...) and nothing else. What moved is checked against the app's
packages afterwards. Environments are kept in CACHE/<fastapi version>-<key> (key: the app's packages,
its Python and the spec) and reused while they still hold what they were made with; CACHE is
$LEGACY_APP_DOCTOR_CACHE, else ~/.cache/legacy_app/doctor-versions, and removing it clears them.

Only runner.py and the standard library are used here; the target is served by each environment's
own Python exactly as `doctor --python` serves it.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from .runner import SETTLE_SECONDS, CannotRun, run_doctor

CACHE_ENV = "LEGACY_APP_DOCTOR_CACHE"
DEFAULT_CACHE = Path("~/.cache/legacy_app/doctor-versions")
NEWEST = "fastapi==newest"
# The releases that moved where a `yield` dependency's exit code runs (docs/before-you-upgrade.md):
# up to 0.105 after the response, 0.106-0.117 before it, 0.118 after it again, 0.121 adds scope="function".
PRESETS: Dict[str, List[str]] = {
    "fastapi-session-changes": ["fastapi==0.105.0", "fastapi==0.106.0", "fastapi==0.117.1", "fastapi==0.118.0",
                                "fastapi==0.121.0", NEWEST],
}
SPEC = re.compile(r"^fastapi==(\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?|newest)$")
# Always in a run's "packages" (besides whatever else differs from the app's environment).
STACK = ("fastapi", "starlette", "pydantic", "pydantic-core", "anyio")
# What a FastAPI release may bring with it; anything else that moved is said on stderr.
FASTAPI_REQUIRES = STACK + ("typing-extensions", "annotated-types", "annotated-doc", "typing-inspection",
                            "sniffio", "exceptiongroup", "idna")
MARKER = "legacy_app-doctor-env.json"
VENV_TIMEOUT = 300
PIP_TIMEOUT = 1800
LOCK_TIMEOUT = 1800.0

# Run by the app's interpreter (Python 3.8+, standard library only, isolated): its Python and its packages,
# one requirement line each, as `pip freeze` writes them (pip itself left out: each venv has its own).
DESCRIBE = r"""
import json, platform, re, sys
from importlib import metadata
from urllib.parse import unquote, urlparse
packages = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in packages or key == "pip":
        continue
    line = "%s==%s" % (name, dist.version)
    direct = dist.read_text("direct_url.json")
    if direct:
        info = json.loads(direct)
        vcs = info.get("vcs_info")
        if info.get("dir_info", {}).get("editable"):
            line = "-e " + unquote(urlparse(info["url"]).path)
        elif vcs:
            line = "%s @ %s+%s@%s" % (name, vcs["vcs"], info["url"], vcs["commit_id"])
        else:
            line = "%s @ %s" % (name, info["url"])
    packages[key] = {"version": dist.version, "line": line}
print(json.dumps({"python": platform.python_version(), "base": getattr(sys, "_base_executable", sys.executable),
                  "packages": dict(sorted(packages.items()))}))
"""


class VersionsError(CannotRun):
    """--versions names something that is neither fastapi==VERSION nor a preset (exit 2, one line)."""


def parse_specs(text: str) -> List[str]:
    """`fastapi==X` tokens and preset names, separated by spaces or commas, in order, each once."""
    specs: List[str] = []
    for token in re.split(r"[\s,]+", text.strip()):
        if not token:
            continue
        expanded = PRESETS.get(token, [token])
        for spec in expanded:
            if not SPEC.match(spec):
                raise VersionsError(f"--versions: {token!r} is neither fastapi==VERSION, {NEWEST} nor a preset "
                                    f"({', '.join(PRESETS)})")
            if not any(normal(spec) == normal(seen) for seen in specs):
                specs.append(spec)
    if not specs:
        raise VersionsError(f"--versions: no version given (fastapi==VERSION ..., or a preset: {', '.join(PRESETS)})")
    return specs


def normal(spec: str) -> str:
    """The spec with the release's trailing zeros dropped: fastapi==0.105 and fastapi==0.105.0 are one version."""
    name, _, version = spec.partition("==")
    release = re.match(r"[\d.]+", version)
    if release is None:
        return spec
    numbers = release.group(0).rstrip(".").split(".")
    while len(numbers) > 1 and numbers[-1] == "0":
        numbers.pop()
    return f"{name}=={'.'.join(numbers)}{version[release.end():]}"


def cache_root(environ: Optional[Dict[str, str]] = None) -> Path:
    environ = dict(os.environ) if environ is None else environ
    return Path(environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def describe(python: str) -> Dict[str, Any]:
    """{"python", "base", "packages": {canonical name: {"version", "line"}}} of the environment of `python`."""
    result = subprocess.run([python, "-I", "-c", DESCRIBE], capture_output=True, text=True, timeout=120,
                            env=_clean_env())
    if result.returncode != 0:
        raise CannotRun(f"cannot list the packages of {python}: {_last_line(result.stderr)}")
    return json.loads(result.stdout)


def env_python(directory: Path) -> Path:
    return directory / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def newest_fastapi(python: str) -> str:
    """The newest FastAPI the app's Python can install, as its pip's index has it."""
    errors = []
    for interpreter in dict.fromkeys([python, sys.executable]):  # the app's pip first: it may have none
        result = subprocess.run([interpreter, "-m", "pip", "index", "versions", "fastapi"], capture_output=True,
                                text=True, timeout=300, env=_clean_env())
        found = re.search(r"^fastapi \(([^)]+)\)", result.stdout, re.MULTILINE)
        if result.returncode == 0 and found:
            return f"fastapi=={found.group(1)}"
        errors.append(_last_line(result.stderr or result.stdout))
    raise CannotRun(f"cannot find the newest FastAPI: {errors[-1]}")


class VersionEnv:
    """One spec's environment: the app's packages, FastAPI at the spec's version and what it moved."""

    def __init__(self, spec: str, app: Dict[str, Any], python: str, root: Path) -> None:
        self.spec, self.app, self.python_of_app = spec, app, python
        lines = sorted(p["line"] for p in app["packages"].values())
        key = hashlib.sha256(json.dumps([app["python"], app["base"], lines, normal(spec)]).encode()).hexdigest()[:16]
        self.path = root / f"fastapi-{normal(spec).partition('==')[2]}-{key}"
        self.python = env_python(self.path)
        self.marker = self.path / MARKER

    def ready(self) -> Optional[Dict[str, Any]]:
        """What the environment was made with, when it still holds exactly that; else None."""
        try:
            made = json.loads(self.marker.read_text())
            now = describe(str(self.python))["packages"]
        except (OSError, ValueError, CannotRun):
            return None
        return made if {k: p["line"] for k, p in now.items()} == made["lines"] else None

    def make(self) -> Dict[str, Any]:
        """Make the environment anew; {"packages": what differs from the app and FastAPI's stack, "notes": [...]}."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _run([self.python_of_app, "-m", "venv", str(self.path)], VENV_TIMEOUT, "python -m venv")
            pins = [p["line"] for name, p in self.app["packages"].items() if name != "fastapi"]
            requirements = self.path / "app-requirements.txt"
            requirements.write_text("\n".join(pins + [self.spec]) + "\n")
            # The app's packages as they are (FastAPI at the spec's version), then what that FastAPI requires.
            self._pip("install", "--no-deps", "-r", str(requirements))
            self._pip("install", self.spec)
            now = describe(str(self.python))["packages"]
            check = subprocess.run([str(self.python), "-m", "pip", "check"], capture_output=True, text=True,
                                   timeout=PIP_TIMEOUT, env=_clean_env())
        except CannotRun:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        before = self.app["packages"]
        changed = {name: p["version"] for name, p in now.items()
                   if name not in before or before[name]["version"] != p["version"]}
        packages = {name: now[name]["version"] for name in STACK if name in now}
        packages.update(sorted(changed.items()))
        notes = [f"{name} {before[name]['version'] if name in before else '(new)'} -> {version}, which FastAPI "
                 "does not require" for name, version in changed.items() if name not in FASTAPI_REQUIRES]
        if check.returncode != 0:
            notes += [f"pip check: {line}" for line in check.stdout.splitlines() if line.strip()]
        made = {"spec": self.spec, "packages": packages, "notes": notes,
                "lines": {k: p["line"] for k, p in now.items()}, "made": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.marker.write_text(json.dumps(made, indent=2))
        return made

    def _pip(self, *args: str) -> None:
        _run([str(self.python), "-m", "pip", "--disable-pip-version-check", "--no-input", *args], PIP_TIMEOUT,
             f"pip {args[0]}")


def run_versions(target: str, specs: Sequence[str], app_dir: Path = Path("."), factory: bool = False,
                 requests_file: Optional[Path] = None, settle: float = SETTLE_SECONDS, python: Optional[str] = None,
                 headers: Sequence[str] = (), openapi_url: Optional[str] = None, cache: Optional[Path] = None,
                 progress: Callable[[str], None] = lambda line: None) -> Dict[str, Any]:
    """`{"runs": [...]}`: per spec, its environment (made or reused) and the doctor's requests served from it."""
    python = python or sys.executable
    if not (shutil.which(python) or Path(python).is_file()):
        raise CannotRun(f"--python {python}: no such interpreter")
    root = cache or cache_root()
    app = describe(python)
    runs = []
    for number, spec in enumerate(specs, 1):
        prefix = f"doctor --versions [{number}/{len(specs)}]"
        run: Dict[str, Any] = {"spec": spec, "installed": False, "packages": {}, "requests": []}
        runs.append(run)
        try:
            if spec == NEWEST:
                run["spec"] = newest_fastapi(python)
            env = VersionEnv(run["spec"], app, python, root)
            with _locked(env.path.with_name(env.path.name + ".lock")):
                made = env.ready()
                if made is None:
                    progress(f"{prefix} {run['spec']}: installing into {env.path} …")
                    made = env.make()
                else:
                    progress(f"{prefix} {run['spec']}: cached in {env.path}")
        except CannotRun as error:
            run["error"] = str(error)
            progress(f"{prefix} {run['spec']}: not installed: {error}")
            continue
        run.update(installed=True, packages=made["packages"])
        for note in made["notes"]:
            progress(f"{prefix} {run['spec']}: {note}")
        progress(f"{prefix} {run['spec']}: serving the app (" + ", ".join(
            f"{name} {version}" for name, version in made["packages"].items()) + ") …")
        try:
            document = run_doctor(target, app_dir=app_dir, factory=factory, requests_file=requests_file,
                                  settle=settle, python=str(env.python), headers=headers, openapi_url=openapi_url)
        except CannotRun as error:
            run["error"] = str(error)
            progress(f"{prefix} {run['spec']}: could not run: {error}")
            continue
        run["requests"] = [{"method": r["method"], "path": r["path"], "disconnected": r["disconnected"],
                            "status": r["status"], "hazards": list(r["hazards"])} for r in document["requests"]]
        run["verdict"], run["inconclusive"] = document["verdict"], document["inconclusive"]
        hazardous = sum(1 for r in run["requests"] if r["hazards"])
        progress(f"{prefix} {run['spec']}: " + (f"{hazardous} of {len(run['requests'])} requests with a hazard"
                                                 if hazardous else "no hazard")
                 + "".join(f"; inconclusive: {reason}" for reason in document.get("inconclusive", [])))
    progress(f"doctor --versions: environments kept in {root} (rm -r {root} clears them)")
    return {"runs": runs}


def exit_status(document: Dict[str, Any]) -> int:
    """1 when any run shows a hazard, 2 when none could run, 3 when a run exercised too little to call
    clean (as the doctor's own exit 3), else 0."""
    ran = [run for run in document["runs"] if run["installed"] and "error" not in run]
    if any(r["hazards"] for run in ran for r in run["requests"]):
        return 1
    if not ran:
        return 2
    return 3 if any(run.get("verdict") == "inconclusive" for run in ran) else 0


def render_versions_table(document: Dict[str, Any]) -> str:
    """One table: FastAPI (and Starlette) release by request, plain and hung up, with status and hazards."""
    header = ("FastAPI", "Starlette", "request", "status")
    rows: List[Any] = []  # (4 cells, hazards), or (2 cells, a line saying why the run has no requests)
    for run in document["runs"]:
        packages = run["packages"]
        first = [packages.get("fastapi") or run["spec"].partition("==")[2], packages.get("starlette", "-")]
        if not run["installed"] or "error" in run:
            why = "not installed" if not run["installed"] else "could not run"
            rows.append((first, f"{why}: {run.get('error', '')}"))
            continue
        for request in run["requests"]:
            route = f"{request['method']} {request['path']}" + (" (client hung up)" if request["disconnected"] else "")
            status = "-" if request["status"] is None else str(request["status"])
            rows.append((first + [route, status], ", ".join(request["hazards"]) or "-"))
            first = ["", ""]
    full = [list(header)] + [cells for cells, _ in rows if len(cells) == 4]
    widths = [max(len(cells[i]) for cells in full if i < len(cells)) for i in range(4)]

    def line(cells: List[str], rest: str) -> str:
        return "  ".join(f"{cell:{width}}" for cell, width in zip(cells, widths)) + "  " + rest

    lines = [line(list(header), "hazards")] + [line(cells, rest).rstrip() for cells, rest in rows]
    others = [(run["spec"], {k: v for k, v in run["packages"].items() if k not in ("fastapi", "starlette")})
              for run in document["runs"] if run["installed"]]
    if others:
        lines += ["", "FastAPI's stack in each (everything else as the app has it):"]
        lines += [f"  {spec}: " + ", ".join(f"{name} {version}" for name, version in packages.items())
                  for spec, packages in others]
    lines += ["", _summary(document)]
    return "\n".join(lines)


def _summary(document: Dict[str, Any]) -> str:
    groups: Dict[str, List[str]] = {"hazard": [], "clean": [], "inconclusive": [], "could not run": [],
                                    "not installed": []}
    for run in document["runs"]:
        version = run["packages"].get("fastapi") or run["spec"].partition("==")[2]
        if not run["installed"]:
            groups["not installed"].append(version)
        elif "error" in run:
            groups["could not run"].append(version)
        else:
            groups["hazard" if any(r["hazards"] for r in run["requests"])
                   else "inconclusive" if run.get("verdict") == "inconclusive" else "clean"].append(version)
    return "verdict: " + "; ".join(f"{name} on FastAPI {', '.join(versions)}" for name, versions in groups.items()
                                   if versions)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time makes or checks an environment (two runs may share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(path, "w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CannotRun(f"{path} stayed locked by another run for {LOCK_TIMEOUT:.0f} s") from None
                time.sleep(1)
        yield  # closing the file drops the lock


def _run(command: List[str], timeout: float, what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    except subprocess.TimeoutExpired:
        raise CannotRun(f"{what} took longer than {timeout:.0f} s") from None
    if result.returncode != 0:
        raise CannotRun(_last_line(result.stderr or result.stdout) or f"{what} failed with status {result.returncode}")


def _clean_env() -> Dict[str, str]:
    """Ours, without what would make the app's interpreter or its pip see our virtualenv."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV", "PIP_USER"):
        env.pop(name, None)
    return env


def _last_line(output: str) -> str:
    """pip's error line (the last `ERROR:` one), else the last line that is not a warning."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line[len("ERROR: "):] for line in lines if line.startswith("ERROR: ")]
    if errors:
        return errors[-1]
    others = [line for line in lines if not line.startswith("WARNING")]
    return (others or lines or [""])[-1]
