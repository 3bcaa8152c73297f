"""What a session middleware's body does: read statement by statement, each one a session middleware's own
(made, stored, call_next, closed, a rollback before re-raising), or a reason to leave the middleware alone."""
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import libcst as cst

from .modules import Definitions
from .sources import Source
from .syntax import all_nodes, block, dotted, last_name, method_call, small_statements, strip_docstring

SCOPED = ("scoped_session", "async_scoped_session")
SCOPED_REMOVE = (
    "removes the scoped_session {name} in a middleware: that runs on the event loop's thread (or task), while a "
    "sync route runs in a worker thread and keeps its own session, never removed; a thread-local session cannot "
    "be rewritten safely: give each request its own session (DBSessionMiddleware and get_db)"
)
COMMITS = (
    "commits the session itself (a commit policy of its own): DBSessionMiddleware commits nothing, so the "
    "routes' writes would be rolled back; commit in the routes (or crud) and run fix again"
)


class NotRewritable(Exception):
    def __init__(self, node: cst.CSTNode, reason: str) -> None:
        super().__init__(reason)
        self.node, self.reason = node, reason


class Stored(NamedTuple):
    """The session a middleware makes and stores on request.state."""
    statement: cst.CSTNode  # where it is stored
    attribute: str  # request.state.<attribute>
    factory: cst.BaseExpression  # the factory called, or the whole call when it has arguments
    local: Optional[str]  # the local name it also has (db = SessionLocal(); request.state.db = db)
    opened_by_with: Optional[str]  # "sync"/"async": a with statement opens (and closes) it


@dataclass
class Shape:
    """What a recognised session middleware does, in DBSessionMiddleware's terms."""
    factory: cst.BaseExpression
    state_attribute: str
    asynchronous: bool
    closes_in_finally: bool


def read_dispatch(definitions: Definitions, source: Source, body: cst.BaseSuite, request: Optional[str],
                  call_next: Optional[str]) -> Optional[Shape]:
    """The session middleware's shape, None when the body is not about a session at all; NotRewritable when it
    is, and does something DBSessionMiddleware would not."""
    statements = strip_docstring(block(body))
    nodes = [n for s in statements for n in all_nodes(s)]
    for node in nodes:
        removed = method_call(node, "remove")
        if isinstance(node, cst.Call) and removed is not None and scoped(definitions, source, removed, guess=True):
            raise NotRewritable(node, SCOPED_REMOVE.format(name=source.code(removed)))
    if request is None or call_next is None:
        return None
    session = _find_session(source, nodes, request)
    if session is None:
        return None
    store, attribute, factory, local, opened_by_with = session
    refs = {f"{request}.state.{attribute}"} | ({local} if local else set())
    closes = [n for n in nodes if isinstance(n, (cst.Call, cst.Await)) and dotted(method_call(n, "close")) in refs]
    closes = [n for n in closes if not (isinstance(n, cst.Call) and any(isinstance(a, cst.Await) and a.expression is n
                                                                        for a in closes))]
    for node in nodes:
        if isinstance(node, cst.Call) and method_call(node, "commit") is not None:
            raise NotRewritable(node, COMMITS)
    if not closes and not opened_by_with:
        raise NotRewritable(store, f"it stores a session on request.state.{attribute} and does not close it itself "
                                   "(no .close(), no with block); fix rewrites a middleware that closes its session")
    if isinstance(factory, cst.Call):
        raise NotRewritable(store, f"it makes the session with arguments ({source.code(factory)}): session_factory "
                                   "is called with none; define SessionLocal = sessionmaker(...) and run fix again")
    if dotted(factory) is None:
        raise NotRewritable(store, f"cannot tell what makes the session ({source.code(factory)})")
    if scoped(definitions, source, factory):
        raise NotRewritable(store, f"the session comes from the scoped_session {dotted(factory)}: one per thread, so "
                                   "the requests on the event loop's thread would share one session")
    checker = _Roles(source, request, call_next, refs, local, attribute)
    checker.check(statements, "body")
    if checker.calls != 1:
        raise NotRewritable(store, "it does not call call_next exactly once: more than the session")
    awaited = any(isinstance(c, cst.Await) for c in closes)
    asynchronous = opened_by_with == "async" or awaited or async_factory(definitions, source, factory)
    return Shape(factory, attribute, asynchronous, closes_in_finally=bool(opened_by_with) or checker.closed_in_finally)


class _Roles:
    """Walks the middleware's statements: each must be one of the session middleware's own."""

    def __init__(self, source: Source, request: str, call_next: str, refs: Set[str], local: Optional[str],
                 attribute: str) -> None:
        self.source, self.request, self.call_next = source, request, call_next
        self.refs, self.local, self.attribute = refs, local, attribute
        self.calls = 0
        self.response: Optional[str] = None
        self.closed_in_finally = False

    def more(self, node: cst.CSTNode) -> NotRewritable:
        code = self.source.code(node).strip().splitlines()[0]
        return NotRewritable(node, f"the middleware does more than the session (`{code}`); fix rewrites a "
                                   "middleware only when the session is all it handles")

    def check(self, statements: Sequence[cst.BaseStatement], where: str) -> None:
        for statement in statements:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    self.small(small, statement, where)
            elif isinstance(statement, cst.Try):
                self.check(block(statement.body), where)
                for handler in statement.handlers:
                    self.handler(handler)
                if statement.orelse is not None:
                    self.check(block(statement.orelse.body), where)
                if statement.finalbody is not None:
                    self.check(block(statement.finalbody.body), "finally")
            elif isinstance(statement, cst.With) and self.opens_session(statement):
                self.check(block(statement.body), where)
            else:
                raise self.more(statement)

    def opens_session(self, statement: cst.With) -> bool:
        return (len(statement.items) == 1 and statement.items[0].asname is not None
                and dotted(statement.items[0].asname.name) == self.local)

    def handler(self, handler: cst.ExceptHandler) -> None:
        statements = block(handler.body)
        smalls = [s for line in statements for s in small_statements(line)]
        if len(smalls) != len(statements) or not smalls or not isinstance(smalls[-1], cst.Raise):
            raise NotRewritable(handler, "the middleware handles the app's errors itself (its except does not "
                                         "re-raise): more than the session")
        caught = dotted(handler.name.name) if handler.name else None
        if smalls[-1].exc is not None and dotted(smalls[-1].exc) != caught:
            raise self.more(smalls[-1])
        for small in smalls[:-1]:  # a rollback before re-raising: the close rolls back anyway
            if not (isinstance(small, cst.Expr) and dotted(method_call(small.value, "rollback")) in self.refs):
                raise self.more(small)

    def is_call_next(self, node: Optional[cst.BaseExpression]) -> bool:
        if isinstance(node, cst.Await):
            node = node.expression
        return (isinstance(node, cst.Call) and dotted(node.func) == self.call_next and len(node.args) == 1
                and dotted(node.args[0].value) == self.request and node.args[0].keyword is None)

    def small(self, small: cst.BaseSmallStatement, line: cst.SimpleStatementLine, where: str) -> None:
        if isinstance(small, cst.Pass) or (isinstance(small, cst.Expr) and isinstance(small.value, cst.SimpleString)):
            return
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            value = small.value
            if len(targets) != 1 or value is None:
                raise self.more(line)
            target = dotted(targets[0])
            if target == f"{self.request}.state.{self.attribute}" or (target == self.local and self.local):
                return  # the session made and stored (_find_session read these)
            if self.is_call_next(value) and isinstance(targets[0], cst.Name) and self.calls == 0:
                self.calls += 1
                self.response = target
                return
            if (isinstance(targets[0], cst.Name) and self.calls == 0 and target == self.response_name(line)
                    and (isinstance(value, cst.Name) and value.value == "None"
                         or isinstance(value, cst.Call) and (last_name(value.func) or "").endswith("Response"))):
                return  # a default response, replaced by call_next's (an exception skips the return)
            raise self.more(line)
        if isinstance(small, cst.Return):
            if self.is_call_next(small.value) and self.calls == 0:
                self.calls += 1
                return
            if small.value is not None and dotted(small.value) == self.response and self.response:
                return
            raise self.more(line)
        if isinstance(small, cst.Expr) and dotted(method_call(small.value, "close")) in self.refs:
            if self.calls == 0 and where != "finally":
                raise NotRewritable(line, "the middleware closes the session before call_next: more than the session")
            self.closed_in_finally = self.closed_in_finally or where == "finally"
            return
        if (isinstance(small, cst.Expr) and where == "finally"
                and dotted(method_call(small.value, "rollback")) in self.refs):
            return
        raise self.more(line)

    def response_name(self, line: cst.SimpleStatementLine) -> Optional[str]:
        """The name call_next's response is later assigned to (for a default assigned before it)."""
        if self.response is not None:
            return self.response
        function = self.source.parents.get(line)
        while function is not None and not isinstance(function, cst.FunctionDef):
            function = self.source.parents.get(function)
        for node in all_nodes(function) if function is not None else ():
            if isinstance(node, cst.Assign) and len(node.targets) == 1 and self.is_call_next(node.value):
                return dotted(node.targets[0].target)
        return None


def _find_session(source: Source, nodes: List[cst.CSTNode], request: str) -> Optional[Stored]:
    """The session the middleware stores on request.state and closes (or opens by with, or names a session)."""
    bound: Dict[str, Tuple[cst.Call, Optional[str]]] = {}  # local name -> (its call, "sync"/"async" by with)
    for node in nodes:
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            if isinstance(node.value, cst.Call):
                bound.setdefault(node.targets[0].target.value, (node.value, None))
        elif isinstance(node, cst.With) and len(node.items) == 1 and node.items[0].asname is not None:
            item = node.items[0]
            if isinstance(item.item, cst.Call) and isinstance(item.asname.name, cst.Name):
                bound[item.asname.name.value] = (item.item, "async" if node.asynchronous else "sync")
    found = []
    for node in nodes:
        if not (isinstance(node, cst.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0].target
        if not (isinstance(target, cst.Attribute) and dotted(target.value) == f"{request}.state"):
            continue
        local, how, made = None, None, node.value
        if isinstance(node.value, cst.Name) and node.value.value in bound:
            local = node.value.value
            made, how = bound[local]
        if not isinstance(made, cst.Call):
            continue
        refs = {f"{request}.state.{target.attr.value}", local}
        closed = any(dotted(method_call(n, "close")) in refs for n in nodes if isinstance(n, cst.Call))
        looks_like_session = "session" in source.code(made.func).lower() or target.attr.value in ("db", "session")
        if closed or how or looks_like_session:
            factory = made.func if not made.args else made
            found.append(Stored(source.parents.get(node, node), target.attr.value, factory, local, how))
    if len(found) > 1:
        raise NotRewritable(found[1].statement, "the middleware stores more than one session: more than the session")
    return found[0] if found else None


def scoped(definitions: Definitions, source: Source, expression: cst.BaseExpression, guess: bool = False) -> bool:
    """Whether it is a scoped_session, as its definition in the run's files says; from outside the run, with
    `guess`, when its name says it is a session (`db_session`)."""
    name = dotted(expression)
    if name is None:
        return False
    known, value = definitions.value_of(source, name)
    if not known:
        return guess and "session" in name.lower()
    return isinstance(value, cst.Call) and last_name(value.func) in SCOPED


def async_factory(definitions: Definitions, source: Source, factory: cst.BaseExpression) -> bool:
    name = dotted(factory)
    value = definitions.value_of(source, name)[1] if name else None
    if not isinstance(value, cst.Call):
        return False
    maker = last_name(value.func)
    return maker == "async_sessionmaker" or (maker == "sessionmaker" and any(
        a.keyword is not None and a.keyword.value == "class_" and last_name(a.value) == "AsyncSession"
        for a in value.args))
