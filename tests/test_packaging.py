"""The package metadata declares the same runtime requirements as requirements.txt."""
import configparser

from .live_server import REPO_ROOT


def requirement_lines(text: str) -> set:
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return {line for line in lines if line}


def test_setup_cfg_and_requirements_txt_agree():
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    declared = requirement_lines(config["options"]["install_requires"])
    assert declared == requirement_lines((REPO_ROOT / "requirements.txt").read_text())


def test_the_console_script_is_declared():
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    assert "legacy-app = legacy_app.cli:main" in config["options.entry_points"]["console_scripts"]
