"""The doctor's server process: install the instrument, then import the target and serve it with uvicorn.

`python -m legacy_app.doctor.serve --events FILE --port PORT [--app-dir DIR] [--factory] module:attribute`.
The order is the point: the listeners are on SQLAlchemy's classes before the target's first import
runs, so the sessions and engines it makes at import time are seen too. The target gets no route and
no middleware; the recorder wraps it from outside. Exit 3 with one line on stderr when the target
cannot be loaded (the runner turns that line into its own exit 2).
"""
import argparse
import importlib
import inspect
import os
import sys
from typing import Any, List, Optional

from . import instrument

CANNOT_LOAD = 3


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


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="legacy_app.doctor.serve")
    parser.add_argument("target")
    parser.add_argument("--events", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app-dir", default=".")
    parser.add_argument("--factory", action="store_true")
    args = parser.parse_args(argv)
    instrument.install(args.events)
    try:
        app = load_target(args.target, args.app_dir, args.factory)
    except CannotLoad as error:
        print(f"doctor: {error}", file=sys.stderr, flush=True)
        return CANNOT_LOAD
    import uvicorn

    uvicorn.run(instrument.RequestRecorder(app), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
