"""The edits planned for one file, and the transformer that applies them: nothing else of the tree changes."""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Union

import libcst as cst

from .report import Finding
from .sources import Source

Edit = Callable[[cst.CSTNode], Union[cst.CSTNode, cst.RemovalSentinel, cst.FlattenSentinel]]


@dataclass
class FilePlan:
    """The edits of one file, the names to import from legacy_app.sessions, and where they are first used."""
    source: Source
    edits: Dict[int, Edit] = field(default_factory=dict)
    imports: Set[str] = field(default_factory=set)
    first_use: Optional[int] = None  # index of the top-level statement that first uses an imported name
    findings: List[Finding] = field(default_factory=list)

    def use(self, names: Set[str], index: int) -> None:
        self.imports |= names
        self.first_use = index if self.first_use is None else min(self.first_use, index)


class Apply(cst.CSTTransformer):
    """Replaces nodes by identity: {id(original node): edit(updated node)}."""

    def __init__(self, edits: Dict[int, Edit]) -> None:
        super().__init__()
        self.edits = edits

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode):  # type: ignore[override]
        edit = self.edits.get(id(original_node))
        return updated_node if edit is None else edit(updated_node)
