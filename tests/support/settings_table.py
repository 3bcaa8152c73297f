"""The settings table of docs/configuration.md, rendered from legacy_app.config.Settings.

`python -m tests.support.settings_table` rewrites the table's Settings rows in place; the rows for
variables only the scripts read (HOST/PORT, STACK) follow them and are kept as written.
"""
from dataclasses import fields
from pathlib import Path
from typing import Any, List

from legacy_app.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
HEADER = "| variable | default | meaning |\n| --- | --- | --- |\n"


def shown_default(item: Any) -> str:
    """A setting's default as the docs show it (`true`, `10`, `unset`...)."""
    if item.metadata["shown"]:
        return item.metadata["shown"]
    default = item.default
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default) if default != "" else "unset"


def settings_rows() -> List[str]:
    rows = []
    for item in fields(Settings):
        default = shown_default(item)
        if default != "unset" and not item.metadata["shown"]:
            default = f"`{default}`"  # a value to type; "unset" and "from the file limit" are words
        rows.append(f"| `{item.metadata['env']}` | {default} | {item.metadata['meaning']} |")
    return rows


def rewrite(doc: Path = DOC) -> None:
    text = doc.read_text()
    start = text.index(HEADER) + len(HEADER)
    lines = text[start:].split("\n")
    names = {f"`{item.metadata['env']}`" for item in fields(Settings)}
    kept = []
    end = 0
    for end, line in enumerate(lines):
        if not line.startswith("|"):
            break
        if line.split("|")[1].strip() not in names:
            kept.append(line)
    doc.write_text(text[:start] + "\n".join(settings_rows() + kept + lines[end:]))


if __name__ == "__main__":
    rewrite()
