"""The doctor: the session lifecycle of any FastAPI or Starlette app that uses SQLAlchemy, measured from outside.

`python -m legacy_app doctor module:app` serves the target in a real uvicorn subprocess with
class-level SQLAlchemy listeners and an outermost ASGI recorder installed before the target is
imported (instrument.py, serve.py), sends each request twice, once with the client hanging up
right after sending it (runner.py), and turns what each request did into hazards (findings.py) and a
report by request (report.py).

Importing this package imports nothing else: neither SQLAlchemy nor pytest.
"""


# `pytest -p legacy_app.doctor` registers this module as a plugin, so its hooks must be found here.
# They live in pytest_plugin.py, imported only when pytest calls them: importing the doctor never needs pytest.
def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    from .pytest_plugin import pytest_addoption as add_options

    add_options(parser)


def pytest_configure(config):  # type: ignore[no-untyped-def]
    from .pytest_plugin import pytest_configure as configure

    configure(config)
