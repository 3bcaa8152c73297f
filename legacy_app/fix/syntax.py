"""Small questions asked of libcst nodes."""
from typing import Dict, Iterator, List, Optional, Sequence, Set

import libcst as cst

def dotted(node: Optional[cst.CSTNode]) -> Optional[str]:
    """`a.b.c` for a Name or an Attribute chain of Names, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def last_name(node: Optional[cst.CSTNode]) -> Optional[str]:
    name = dotted(node)
    return None if name is None else name.rsplit(".", 1)[-1]


def method_call(node: cst.CSTNode, method: str) -> Optional[cst.BaseExpression]:
    """The object of `obj.method()` or `await obj.method()` (no arguments), else None."""
    if isinstance(node, cst.Await):
        node = node.expression
    if (isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == method):
        return node.func.value
    return None


def small_statements(statement: cst.CSTNode) -> Sequence[cst.BaseSmallStatement]:
    return statement.body if isinstance(statement, cst.SimpleStatementLine) else ()


def block(body: cst.BaseSuite) -> Sequence[cst.BaseStatement]:
    """The statements of an indented block (or the one-line `if x: y` form as one line)."""
    if isinstance(body, cst.IndentedBlock):
        return body.body
    return (cst.SimpleStatementLine(body=body.body),) if isinstance(body, cst.SimpleStatementSuite) else ()


def strip_docstring(statements: Sequence[cst.BaseStatement]) -> Sequence[cst.BaseStatement]:
    if statements and any(isinstance(s, cst.Expr) and isinstance(s.value, (cst.SimpleString, cst.ConcatenatedString))
                          for s in small_statements(statements[0])):
        return statements[1:]
    return statements


class Walker(cst.CSTVisitor):
    """Every node under a function's body, not descending into nested functions, lambdas or classes."""

    def __init__(self) -> None:
        self.nodes: List[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.nodes.append(node)
        return not isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef))


def own_nodes(function: cst.FunctionDef) -> List[cst.CSTNode]:
    walker = Walker()
    function.body.visit(walker)
    return walker.nodes


def all_nodes(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    collected: List[cst.CSTNode] = []

    class Collect(cst.CSTVisitor):
        def on_visit(self, child: cst.CSTNode) -> bool:
            collected.append(child)
            return True

    node.visit(Collect())
    return iter(collected)


def is_generator(function: cst.FunctionDef) -> bool:
    return any(isinstance(node, cst.Yield) for node in own_nodes(function))


def bound_in(function: cst.FunctionDef) -> Set[str]:
    """The names a function binds itself: its parameters, and its own assignments, with, for and imports."""
    names = {p.name.value for p in function.params.params + function.params.kwonly_params + function.params.posonly_params}
    for node in own_nodes(function):
        targets: List[cst.CSTNode] = []
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign, cst.For)):
            targets = [node.target]
        elif isinstance(node, cst.WithItem) and node.asname is not None:
            targets = [node.asname.name]
        elif isinstance(node, cst.ImportAlias):
            targets = [node.asname.name if node.asname else node.name]
        for target in targets:
            names |= {n.value for n in all_nodes(target) if isinstance(n, cst.Name)}
    return names


def module_bindings(module: cst.Module) -> Dict[str, List[int]]:
    """{name: indexes of the top-level statements that bind it} (assignments, imports, def, class, with/for
    targets), looking into top-level if/try/with blocks, not into functions."""
    bound: Dict[str, List[int]] = {}

    def bind(name: str, index: int) -> None:
        bound.setdefault(name, []).append(index)

    def targets(node: cst.CSTNode, index: int) -> None:
        if isinstance(node, cst.Name):
            bind(node.value, index)
        elif isinstance(node, (cst.Tuple, cst.List)):
            for element in node.elements:
                targets(element.value, index)

    def statement(node: cst.CSTNode, index: int) -> None:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            bind(node.name.value, index)
            return
        for small in small_statements(node):
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    targets(target.target, index)
            elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                targets(small.target, index)
            elif isinstance(small, cst.Import):
                for alias in small.names:
                    bind((dotted(alias.asname.name) if alias.asname else dotted(alias.name).split(".")[0]), index)
            elif isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                for alias in small.names:
                    bind(dotted(alias.asname.name) if alias.asname else alias.name.value, index)
        if isinstance(node, (cst.If, cst.Try, cst.With, cst.For, cst.While)):
            if isinstance(node, cst.With):
                for item in node.items:
                    if item.asname is not None:
                        targets(item.asname.name, index)
            for child in _blocks_of(node):
                for inner in block(child):
                    statement(inner, index)

    for index, node in enumerate(module.body):
        statement(node, index)
    return bound


def _blocks_of(node: cst.CSTNode) -> Iterator[cst.BaseSuite]:
    if isinstance(node, (cst.If, cst.With, cst.For, cst.While)):
        yield node.body
        orelse = getattr(node, "orelse", None)
        while orelse is not None:
            yield orelse.body
            orelse = getattr(orelse, "orelse", None) if isinstance(orelse, cst.If) else None
    elif isinstance(node, cst.Try):
        yield node.body
        for handler in node.handlers:
            yield handler.body
        if node.orelse is not None:
            yield node.orelse.body
        if node.finalbody is not None:
            yield node.finalbody.body


def has_global(module: cst.Module, name: str) -> bool:
    return any(isinstance(node, cst.Global) and any(item.name.value == name for item in node.names)
               for node in all_nodes(module))


def quote_of(module: cst.Module) -> str:
    """The quote the file uses most for its plain strings: what new strings are written with."""
    counts = {'"': 0, "'": 0}
    for node in all_nodes(module):
        if isinstance(node, cst.SimpleString) and node.quote in counts:
            counts[node.quote] += 1
    return "'" if counts["'"] > counts['"'] else '"'


def assigned_value(module: cst.Module, name: str) -> Optional[cst.BaseExpression]:
    value = None
    for statement in module.body:
        for small in small_statements(statement):
            if isinstance(small, cst.Assign) and any(dotted(t.target) == name for t in small.targets):
                value = small.value
            elif isinstance(small, cst.AnnAssign) and dotted(small.target) == name:
                value = small.value
    return value
