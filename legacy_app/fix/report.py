"""What a `fix` run found and did, and how it is shown: the diff on stdout, one line a finding on stderr."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Tuple

from .sources import unified_diff

MODES = ("diff", "write", "check")
REQUIREMENT = "legacy_app>=1.1"  # the slim install: the session middleware with FastAPI and SQLAlchemy only
FIXED, REFUSED = "fixed", "refused"


@dataclass
class Finding:
    path: Path
    line: int
    status: str  # FIXED: rewritten (or, without --write, would be); REFUSED: left alone, the reason says why
    message: str


@dataclass
class FileChange:
    path: Path
    before: str
    after: str
    encoding: str


@dataclass
class FixReport:
    mode: str
    files_read: int = 0  # the Python files under the paths given
    findings: List[Finding] = field(default_factory=list)
    changes: List[FileChange] = field(default_factory=list)
    requirements: List[Tuple[Path, str]] = field(default_factory=list)  # (file that now imports it, line)

    @property
    def fixed(self) -> List[Finding]:
        return [f for f in self.findings if f.status == FIXED]

    @property
    def refused(self) -> List[Finding]:
        return [f for f in self.findings if f.status == REFUSED]

    def diff(self) -> str:
        return "".join(unified_diff(c.path, c.before, c.after) for c in self.changes)

    @property
    def exit_code(self) -> int:
        """--check: 1 when something is to fix or was refused; otherwise 0 (2, cannot run, is CannotFix's)."""
        return 1 if self.mode == "check" and (self.changes or self.refused) else 0


def render(report: FixReport) -> str:
    """The findings, one line each (path:line: fixed|would fix|refused: why), then the requirement and a total."""
    done = "fixed" if report.mode == "write" else "would fix"
    lines = [f"{f.path}:{f.line}: {done if f.status == FIXED else 'refused'}: {f.message}"
             for f in sorted(report.findings, key=lambda f: (str(f.path), f.line))]
    if report.requirements:
        apps = ", ".join(sorted({str(path) for path, _ in report.requirements}))
        lines.append(f"requirement: add the line {REQUIREMENT} to the app's requirements (pip install legacy_app): "
                     f"{apps} now import{'s' if len(report.requirements) == 1 else ''} legacy_app.sessions")
    files = len(report.changes)
    read = f"{report.files_read} Python file{'s' if report.files_read != 1 else ''} read"
    lines.append(f"{done} {len(report.fixed)} in {files} file{'s' if files != 1 else ''}, refused {len(report.refused)} "
                 f"({read})" if report.findings else f"nothing to fix ({read})")
    return "\n".join(lines) + "\n"
