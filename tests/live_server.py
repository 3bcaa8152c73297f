"""The service under test in a real uvicorn process."""
from pathlib import Path
from typing import Dict

from legacy_app.server_process import PACKAGE_PARENT, ServerProcess

REPO_ROOT = PACKAGE_PARENT


class LiveServer(ServerProcess):
    def __init__(self, env: Dict[str, str], log_path: Path) -> None:
        super().__init__("legacy_app.main:app", env=env, log_path=log_path)
