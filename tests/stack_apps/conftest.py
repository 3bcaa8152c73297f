"""Registers the marker of tests/test_user_stacks.py (pytest reads this file when it collects tests/)."""


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "user_stacks: installs the package into pinned user environments (constraints/stacks/) and serves "
        "the apps of tests/stack_apps/ from them; deselect with -m 'not user_stacks'",
    )
