"""The files `fix` reads and writes: found under the PATHs, decoded with their own encoding, parsed into a
concrete syntax tree, shown as a unified diff, written back atomically in the encoding they came in."""
import ast
import contextlib
import difflib
import io
import os
import shutil
import tempfile
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

# Not an app's own source: caches, dependencies, virtualenvs (a directory holding pyvenv.cfg).
SKIPPED_DIRECTORIES = {"__pycache__", "node_modules", "site-packages"}


class CannotFix(Exception):
    """fix cannot run; the message is the one line the command prints (exit status 2)."""


@dataclass
class Source:
    path: Path  # as shown to the user
    encoding: str  # what tokenize found: the coding cookie, a BOM (utf-8-sig), else utf-8
    text: str
    module: cst.Module
    _metadata: Dict[type, Mapping[cst.CSTNode, Any]] = field(repr=False, default_factory=dict)

    def _resolve(self, provider: type) -> Mapping[cst.CSTNode, Any]:
        # Resolved on first use: most files of an app hold nothing fix looks at twice.
        if provider not in self._metadata:
            wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)  # for these very nodes
            self._metadata[provider] = wrapper.resolve(provider)
        return self._metadata[provider]

    @property
    def parents(self) -> Mapping[cst.CSTNode, cst.CSTNode]:
        return self._resolve(ParentNodeProvider)

    def line(self, node: cst.CSTNode) -> int:
        return self._resolve(PositionProvider)[node].start.line

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)


def python_files(paths: Sequence[Path]) -> List[Path]:
    """The .py files under each PATH (a file given by name is read whatever its suffix), each once."""
    found: List[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            for root, directories, names in os.walk(given):
                directories[:] = sorted(
                    d for d in directories
                    if not d.startswith(".") and d not in SKIPPED_DIRECTORIES and not (Path(root, d) / "pyvenv.cfg").exists()
                )
                found.extend(Path(root, name) for name in sorted(names) if name.endswith(".py"))
        elif given.is_file():
            found.append(given)
        else:
            raise CannotFix(f"{given}: no such file or directory")
    seen, unique = set(), []
    for path in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique


def read_source(path: Path) -> Source:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CannotFix(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        text = raw.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as error:
        raise CannotFix(f"{path}: cannot decode: {error}") from None
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        raise CannotFix(f"{path}:{_where_it_fails(text, error)}") from None
    if module.code != text:  # libcst round-trips every file it parses; never write one it would not
        raise CannotFix(f"{path}: cannot parse it without changing it")
    return Source(path, encoding, text, module)


def _where_it_fails(text: str, error: cst.ParserSyntaxError) -> str:
    """line:column: why, as Python's own parser says it when it fails too (libcst may point past the error)."""
    try:
        ast.parse(text)
    except SyntaxError as python:
        return f"{python.lineno}:{python.offset}: cannot parse: {python.msg}"
    except ValueError:  # a null byte
        pass
    message = str(error.message).strip().splitlines()[0]
    return f"{error.raw_line}:{error.raw_column + 1}: cannot parse: {message}"


def unified_diff(path: Path, before: str, after: str) -> str:
    label = path.as_posix().lstrip("/")
    lines = []
    for line in difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                     f"a/{label}", f"b/{label}"):
        lines.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(lines)


def check_writable(path: Path) -> None:
    target = path.resolve()
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise CannotFix(f"{path}: cannot write: its directory {target.parent} is not writable")


def write_atomically(path: Path, text: str, encoding: str) -> None:
    """Replace the file in one rename: a reader (or a crash) sees the old file or the new one, never half."""
    target = path.resolve()  # a symlink keeps pointing at the file it pointed at
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as error:
        raise CannotFix(f"{path}: cannot write: the result does not fit its encoding {encoding}: {error}") from None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".fix", dir=str(target.parent))
    except OSError as error:
        raise CannotFix(f"{path}: cannot write: {error.strerror or error}") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        shutil.copymode(str(target), temporary)  # mkstemp's file is 0600
        os.replace(temporary, str(target))
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise CannotFix(f"{path}: cannot write: {error.strerror or error}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
