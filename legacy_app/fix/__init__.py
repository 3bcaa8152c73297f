"""`legacy_app fix PATH...`: rewrite an app's session hazards into legacy_app.sessions, refuse the rest with a reason.

    report = fix_paths([Path("app")], "diff", python=".venv/bin/python")
    print(report.diff(), end="")
    print(render(report), end="", file=sys.stderr)
    return report.exit_code

Recognised (middleware.py): a session middleware of `@app.middleware("http")` or of a BaseHTTPMiddleware
subclass → one `add_middleware(DBSessionMiddleware, ...)` line; (dependencies.py) a yield dependency that
commits after its yield on a FastAPI that runs that after the response → `Depends(dep, scope="function")`.
libcst edits only those nodes: every other byte of a file stays as it was. Needs libcst (the `fix` extra).
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import libcst as cst

from .dependencies import plan_dependencies
from .middleware import imported_from, imports_from_sessions, plan_middleware
from .modules import Definitions
from .plan import Apply, FilePlan
from .report import FIXED, MODES, REFUSED, REQUIREMENT, FileChange, Finding, FixReport, render
from .sources import CannotFix, check_writable, python_files, read_source, write_atomically
from .stack import fastapi_version
from .syntax import small_statements

__all__ = ["CannotFix", "FileChange", "Finding", "FixReport", "FIXED", "MODES", "REFUSED", "REQUIREMENT",
           "fix_paths", "render"]

IMPORT_FROM = "legacy_app.sessions"


def fix_paths(paths: Sequence[Union[str, Path]], mode: str = "diff", python: Optional[str] = None) -> FixReport:
    """Read every file first (CannotFix, and nothing written, when one cannot be read or parsed), plan the
    edits, and with mode "write" write each changed file atomically in its own encoding."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    sources = [read_source(path) for path in python_files([Path(p) for p in paths])]
    if not sources:  # an empty folder is not an app with nothing to fix
        raise CannotFix(f"no Python file under {', '.join(str(p) for p in paths)}")
    plans: Dict[int, FilePlan] = {id(source): FilePlan(source) for source in sources}
    definitions = Definitions(sources)
    for source in sources:
        plan_middleware(definitions, source, plans[id(source)], lambda source=source: imported_from(source, sources))
    asked: List[Tuple[Optional[str], str]] = []

    def fastapi() -> Tuple[Optional[str], str]:  # asked once, and only when a dependency needs the answer
        if not asked:
            asked.append(fastapi_version(python))
        return asked[0]

    plan_dependencies(sources, plans, fastapi)
    report = FixReport(mode, files_read=len(sources))
    for source in sources:
        plan = plans[id(source)]
        report.findings.extend(plan.findings)
        if not plan.edits:
            continue
        if plan.imports:
            _import(plan)
            report.requirements.append((source.path, REQUIREMENT))
        after = source.module.visit(Apply(plan.edits)).code
        if after != source.text:
            report.changes.append(FileChange(source.path, source.text, after, source.encoding))
    if mode == "write":
        for change in report.changes:
            check_writable(change.path)
        written: List[str] = []
        for change in report.changes:
            try:
                write_atomically(change.path, change.after, change.encoding)
            except CannotFix as error:
                raise CannotFix(f"{error}" + (f" (already written: {', '.join(written)})" if written else "")) from None
            written.append(str(change.path))
    return report


def _import(plan: FilePlan) -> None:
    """`from legacy_app.sessions import ...` after the last top-level import before the first use (else after the
    docstring, else first)."""
    module = plan.source.module
    names = sorted(plan.imports - imports_from_sessions(module))
    if not names:
        return
    statement = cst.parse_statement(f"from {IMPORT_FROM} import {', '.join(names)}\n")
    limit = plan.first_use if plan.first_use is not None else len(module.body)
    imports = [i for i, s in enumerate(module.body[:limit])
               if any(isinstance(small, (cst.Import, cst.ImportFrom)) for small in small_statements(s))]
    first = module.body[0]
    if imports:
        anchor, place = module.body[imports[-1]], lambda updated: [updated, statement]
    elif any(isinstance(s, cst.Expr) and isinstance(s.value, cst.SimpleString) for s in small_statements(first)):
        spaced = statement.with_changes(leading_lines=[cst.EmptyLine()])
        anchor, place = first, lambda updated: [updated, spaced]
    else:
        anchor, place = first, lambda updated: [statement, updated]
    earlier = plan.edits.get(id(anchor))  # none so far: imports and docstrings are never rewritten
    plan.edits[id(anchor)] = lambda updated: cst.FlattenSentinel(place(earlier(updated) if earlier else updated))
