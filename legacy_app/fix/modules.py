"""Which file an imported name comes from, as far as the files of one `fix` run can tell."""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import libcst as cst

from .sources import Source
from .syntax import assigned_value, dotted, module_bindings


@dataclass(frozen=True)
class Imported:
    level: int  # leading dots of a relative import
    module: Tuple[str, ...]
    name: Optional[str]  # the name imported from the module; None for `import a.b as m`

    def as_module(self) -> Tuple[str, ...]:
        """The module this name is when it is used as one (`from app import deps` → app.deps)."""
        return self.module + ((self.name,) if self.name else ())


def imports_of(module: cst.Module) -> Dict[str, Imported]:
    """{local name: what it was imported as}, for the module's top-level imports."""
    found: Dict[str, Imported] = {}
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                parts = tuple((dotted(small.module) or "").split(".")) if small.module else ()
                parts = tuple(p for p in parts if p)
                for alias in small.names:
                    local = dotted(alias.asname.name) if alias.asname else alias.name.value
                    found[str(local)] = Imported(len(small.relative), parts, str(dotted(alias.name)))
            elif isinstance(small, cst.Import):
                for alias in small.names:
                    if alias.asname is not None:
                        found[str(dotted(alias.asname.name))] = Imported(0, tuple(str(dotted(alias.name)).split(".")), None)
    return found


@lru_cache(maxsize=None)
def _resolved(path: Path) -> Path:
    return path.resolve()


@lru_cache(maxsize=None)
def is_file_of(importer: Path, level: int, module: Tuple[str, ...], target: Path) -> bool:
    """Whether `module` (imported by the file `importer` with `level` dots) is the file `target`."""
    target = _resolved(target)
    if level:
        base = _resolved(importer).parent
        for _ in range(level - 1):
            base = base.parent
        candidate = base.joinpath(*module)
        return target in (candidate.with_suffix(".py"), candidate / "__init__.py")
    if not module:
        return False
    parts = target.with_suffix("").parts if target.name != "__init__.py" else target.parent.parts
    return parts[-len(module):] == module


class Definitions:
    """What a top-level name of a file is assigned, followed through `from x import name` into the run's files."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = sources
        self.imports: Dict[int, Dict[str, Imported]] = {}

    def value_of(self, source: Source, name: str, hops: int = 3) -> Tuple[bool, Optional[cst.BaseExpression]]:
        """(known, value): known False when the name comes from outside the run (or from nowhere it can tell)."""
        value = assigned_value(source.module, name)
        if value is not None:
            return True, value
        if id(source) not in self.imports:
            self.imports[id(source)] = imports_of(source.module)
        head, _, rest = name.partition(".")
        imported = self.imports[id(source)].get(head)
        if imported is None:  # bound here otherwise (def, class, with), or not at all
            return head in module_bindings(source.module), None
        module, inner = (imported.as_module(), rest) if rest else (imported.module, imported.name)
        if hops == 0 or not inner:
            return False, None
        for other in self.sources:
            if is_file_of(source.path, imported.level, module, other.path):
                return self.value_of(other, inner, hops - 1)
        return False, None
