"""The doctor's server process: install the instrument, then import the target and serve it with uvicorn.

`PYTHON legacy_app_doctor_serve.py --events FILE --port PORT [--app-dir DIR] [--factory] module:attribute`:
the runner copies this file and instrument.py into a directory of their own and runs them with the
app's interpreter (`doctor --python`, else ours), so the app's process holds the instrument and
nothing else of legacy_app, on the app's own stack (Python 3.8+). The order is the point: the
listeners are on SQLAlchemy's classes before the target's first import runs, so the sessions and
engines it makes at import time are seen too. The target gets no route and no middleware; the
recorder wraps it from outside. Exit 3 with one line on stderr when the target cannot be loaded or
served (the runner turns that line into its own exit 2).
"""
import argparse
import importlib
import importlib.util
import inspect
import json
import os
import platform
import sys
from typing import Any, Dict, List, Optional

if __package__:
    from . import instrument
else:  # copied beside the instrument, as the runner runs it
    import legacy_app_doctor_instrument as instrument  # type: ignore[no-redef]

CANNOT_LOAD = 3
VERSIONED_PACKAGES = ("fastapi", "starlette", "pydantic", "sqlalchemy", "uvicorn")


class CannotLoad(Exception):
    pass


def load_target(target: str, app_dir: str, factory: bool) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise CannotLoad(f"TARGET must be module:attribute, got {target!r}")
    sys.path.insert(0, os.path.abspath(app_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise CannotLoad(f"cannot import {module_name}: {type(error).__name__}: {error}") from error
    app: Any = module
    for part in attribute.split("."):
        if not hasattr(app, part):
            raise CannotLoad(f"module {module_name} has no attribute {attribute!r}")
        app = getattr(app, part)
    if factory:
        try:
            app = app()
        except Exception as error:
            raise CannotLoad(f"the factory {target} raised {type(error).__name__}: {error}") from error
    call = getattr(app, "__call__", None)
    if not (inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)):
        raise CannotLoad(f"{target} is not an ASGI app (no async __call__(scope, receive, send))"
                         + ("; is it a factory? use --factory" if callable(app) and not factory else ""))
    return app


def versions() -> Dict[str, str]:
    """The app's stack, as its own interpreter has it."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="legacy_app.doctor.serve")
    parser.add_argument("target")
    parser.add_argument("--events", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app-dir", default=".")
    parser.add_argument("--factory", action="store_true")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("uvicorn") is None:
        print(f"doctor: the app's environment ({sys.executable}) has no uvicorn to serve it: "
              f"{sys.executable} -m pip install uvicorn", file=sys.stderr, flush=True)
        return CANNOT_LOAD
    instrument.install(args.events)
    try:
        app = load_target(args.target, args.app_dir, args.factory)
    except CannotLoad as error:
        print(f"doctor: {error}", file=sys.stderr, flush=True)
        return CANNOT_LOAD
    # Where the app serves its OpenAPI: FastAPI's openapi_url (None when disabled), for discovery; an
    # app wrapped in middleware objects is followed through their `.app`.
    inner = app
    for _ in range(10):
        if hasattr(inner, "openapi_url") or not hasattr(inner, "app"):
            break
        inner = inner.app
    openapi_url = getattr(inner, "openapi_url") if hasattr(inner, "openapi_url") else "unknown"
    instrument.record("app_info", detail=json.dumps({
        "openapi_url": openapi_url, "versions": versions(),
        "asyncio": "sqlalchemy.ext.asyncio" in sys.modules}))
    import uvicorn

    uvicorn.run(instrument.RequestRecorder(app), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
