"""The session middleware of `@app.middleware("http")` and of BaseHTTPMiddleware subclasses.

Recognised when it stores a session factory's result on `request.state.<name>` and closes it (in
`finally`, after call_next, or by `with`); rewritten into one `add_middleware(DBSessionMiddleware, ...)`
when that is all it does. Everything else it may do (a header, a commit, error handling, a
scoped_session's remove()) is a reason to leave it alone, and the reason is reported.
"""
from typing import Callable, Optional, Sequence, Set

import libcst as cst

from .dispatch import NotRewritable, Shape, read_dispatch
from .modules import Definitions, imports_of, is_file_of
from .plan import FilePlan
from .report import FIXED, REFUSED, REQUIREMENT, Finding
from .sources import Source
from .syntax import (all_nodes, block, bound_in, dotted, has_global, last_name, module_bindings, quote_of,
                     small_statements, strip_docstring)

MIDDLEWARE = {False: "DBSessionMiddleware", True: "AsyncDBSessionMiddleware"}


def plan_middleware(definitions: Definitions, source: Source, plan: FilePlan,
                    imported_elsewhere: Callable[[], Set[str]]) -> None:
    """Adds to `plan` the rewrite (or the refusal) of each session middleware of `source`."""
    module = source.module
    for index, statement in enumerate(module.body):
        candidates = [(statement, index)]
        if isinstance(statement, cst.FunctionDef):  # create_app(): the middleware inside the factory
            candidates += [(inner, index) for inner in block(statement.body) if isinstance(inner, cst.FunctionDef)]
        for node, top in candidates:
            try:
                if isinstance(node, cst.FunctionDef):
                    _function_form(definitions, source, plan, node, top, imported_elsewhere)
                elif isinstance(node, cst.ClassDef) and node is statement:
                    _class_form(definitions, source, plan, node, imported_elsewhere)
            except NotRewritable as refusal:
                plan.findings.append(Finding(source.path, source.line(refusal.node), REFUSED, refusal.reason))


def _function_form(definitions: Definitions, source: Source, plan: FilePlan, function: cst.FunctionDef, top: int,
                   imported_elsewhere: Callable[[], Set[str]]) -> None:
    decorators = [d for d in function.decorators if _is_http_middleware(d.decorator)]
    if not decorators:
        return
    decorator = decorators[0]
    request, call_next = _parameters(function, 0)
    shape = read_dispatch(definitions, source, function.body, request, call_next)
    if shape is None:
        return
    where = decorator.decorator
    if len(function.decorators) > 1:
        raise NotRewritable(where, "the middleware has other decorators too: more than the session")
    name = function.name.value
    if name in imported_elsewhere() or _referenced(source.module, name, exclude=function.name):
        raise NotRewritable(where, f"{name} is used elsewhere too; fix would remove it")
    app = source.code(where.func.value)  # type: ignore[attr-defined]
    nested = function is not source.module.body[top]
    _check_factory(source, shape.factory, None if nested else top, source.module.body[top] if nested else None)
    cls = _middleware_class(source, shape)
    line = f"{app}.add_middleware({_arguments(source, cls, shape)})"
    replacement = cst.parse_statement(line + source.module.default_newline)
    replacement = replacement.with_changes(leading_lines=_kept_leading_lines(source, function))
    plan.edits[id(function)] = lambda _updated: replacement
    plan.use({cls}, top)
    decorated = "@" + source.code(decorator.decorator)
    plan.findings.append(Finding(source.path, source.line(decorator), FIXED, _fixed_message(
        f"the {decorated} session middleware {name}", shape, line)))


def _class_form(definitions: Definitions, source: Source, plan: FilePlan, cls: cst.ClassDef,
                imported_elsewhere: Callable[[], Set[str]]) -> None:
    if not any(last_name(base.value) == "BaseHTTPMiddleware" for base in cls.bases):
        return
    members = strip_docstring(block(cls.body))
    dispatch = next((m for m in members if isinstance(m, cst.FunctionDef) and m.name.value == "dispatch"), None)
    if dispatch is None:
        return
    request, call_next = _parameters(dispatch, 1)
    shape = read_dispatch(definitions, source, dispatch.body, request, call_next)
    if shape is None:
        return
    name = cls.name.value
    others = [m for m in members if m is not dispatch]
    if others:
        what = f"its own {others[0].name.value}" if isinstance(others[0], cst.FunctionDef) else "more than dispatch()"
        raise NotRewritable(cls, f"the BaseHTTPMiddleware subclass {name} has {what}: more than the session")
    if cls.decorators:
        raise NotRewritable(cls, f"the BaseHTTPMiddleware subclass {name} is decorated: more than the session")
    if name in imported_elsewhere():
        raise NotRewritable(cls, f"{name} is imported by another file; fix rewrites a middleware class only together "
                                 "with its registration, in one file")
    registrations, others_used = _registrations(source, name, cls)
    if others_used:
        raise NotRewritable(others_used[0], f"{name} is used here other than as a middleware; fix would remove it")
    if not registrations:
        raise NotRewritable(cls, f"{name} is not registered in this file (app.add_middleware({name}) or "
                                 f"Middleware({name})); fix rewrites a middleware class only together with its registration")
    middleware = _middleware_class(source, shape, removed=cls)
    arguments = _arguments(source, middleware, shape)
    first = min(_top_index(source, call) for call in registrations)
    _check_factory(source, shape.factory, first, None)
    for call in registrations:
        new_args = cst.parse_expression(f"f({arguments})").args  # type: ignore[attr-defined]
        plan.edits[id(call)] = lambda updated, new_args=new_args: updated.with_changes(args=new_args)
    plan.edits[id(cls)] = lambda _updated: cst.RemovalSentinel.REMOVE
    plan.use({middleware}, first)
    registration = source.code(registrations[0].func)
    plan.findings.append(Finding(source.path, source.line(cls), FIXED, _fixed_message(
        f"the BaseHTTPMiddleware session middleware {name}", shape,
        f"{registration}({arguments})" + (f" at line {source.line(registrations[0])}, the class removed"
                                          if len(registrations) == 1 else ", the class removed"))))


def _fixed_message(what: str, shape: Shape, now: str) -> str:
    hazard = f"closes request.state.{shape.state_attribute} as the response starts, before its body and background tasks"
    if not shape.closes_in_finally:
        hazard += ", and skips the close when the route raises"
    return f"{what} {hazard}: now {now} (requirement: {REQUIREMENT})"


def _parameters(function: cst.FunctionDef, skip: int):
    names = [p.name.value for p in function.params.params][skip:]
    return (names[0], names[1]) if len(names) == 2 else (None, None)


def _is_http_middleware(decorator: cst.BaseExpression) -> bool:
    return (isinstance(decorator, cst.Call) and isinstance(decorator.func, cst.Attribute)
            and decorator.func.attr.value == "middleware" and len(decorator.args) == 1
            and isinstance(decorator.args[0].value, cst.SimpleString)
            and decorator.args[0].value.evaluated_value == "http")


def _middleware_class(source: Source, shape: Shape, removed: Optional[cst.ClassDef] = None) -> str:
    """The class to import, when its name is free in the module (or is the class fix removes)."""
    name = MIDDLEWARE[shape.asynchronous]
    if name in imports_from_sessions(source.module):
        return name
    taken = [s for i, s in enumerate(source.module.body) if i in module_bindings(source.module).get(name, [])]
    if any(statement is not removed for statement in taken):
        raise NotRewritable(next(s for s in taken if s is not removed), f"the name {name} is already taken in this module")
    return name


def imports_from_sessions(module: cst.Module) -> Set[str]:
    names: Set[str] = set()
    for statement in module.body:
        for small in small_statements(statement):
            if (isinstance(small, cst.ImportFrom) and dotted(small.module) == "legacy_app.sessions"
                    and not small.relative and not isinstance(small.names, cst.ImportStar)):
                names |= {alias.name.value for alias in small.names if alias.asname is None}
    return names


def _arguments(source: Source, middleware: str, shape: Shape) -> str:
    arguments = f"{middleware}, session_factory={source.code(shape.factory)}"
    if shape.state_attribute != "db":
        quote = quote_of(source.module)
        arguments += f", state_attribute={quote}{shape.state_attribute}{quote}"
    return arguments


def _check_factory(source: Source, factory: cst.BaseExpression, use: Optional[int],
                   enclosing: Optional[cst.CSTNode]) -> None:
    """The factory must exist where add_middleware() now reads it: at registration, no longer per request."""
    name = str(dotted(factory)).split(".")[0]
    if has_global(source.module, name):
        raise NotRewritable(factory, f"{name} is reassigned at run time (`global {name}`): the middleware reads it per "
                                     "request, add_middleware() would read it once")
    if enclosing is not None and isinstance(enclosing, cst.FunctionDef):
        if name in bound_in(enclosing):
            return
    bindings = module_bindings(source.module).get(name)
    if not bindings:
        raise NotRewritable(factory, f"cannot tell where {name} comes from: it is not defined or imported in this module")
    if use is not None and min(bindings) >= use:
        raise NotRewritable(factory, f"{name} is defined after the middleware is registered; move its definition "
                                     "above and run fix again")


def _kept_leading_lines(source: Source, function: cst.FunctionDef) -> Sequence[cst.EmptyLine]:
    """The removed function's comments stay; its blank lines go when it followed a simple statement
    (app = FastAPI()), so that the add_middleware() line joins it."""
    lines = function.leading_lines
    if any(line.comment is not None for line in lines):
        return lines
    parent = source.parents.get(function)
    siblings = list(getattr(parent, "body", ()))
    position = next((i for i, s in enumerate(siblings) if s is function), 0)
    if position and isinstance(siblings[position - 1], cst.SimpleStatementLine):
        return ()
    return lines


def _referenced(module: cst.Module, name: str, exclude: cst.CSTNode) -> bool:
    return any(isinstance(n, cst.Name) and n.value == name and n is not exclude for n in all_nodes(module))


def _registrations(source: Source, name: str, cls: cst.ClassDef):
    registrations, others = [], []
    for node in all_nodes(source.module):
        if not (isinstance(node, cst.Name) and node.value == name) or node is cls.name:
            continue
        arg = source.parents.get(node)
        call = source.parents.get(arg) if isinstance(arg, cst.Arg) else None
        if (isinstance(call, cst.Call) and call.args[0] is arg and arg.keyword is None and len(call.args) == 1
                and last_name(call.func) in ("add_middleware", "Middleware")):
            registrations.append(call)
        else:
            others.append(node)
    return registrations, others


def _top_index(source: Source, node: cst.CSTNode) -> int:
    top = node
    while source.parents.get(top) is not None and not isinstance(source.parents.get(top), cst.Module):
        top = source.parents[top]
    return next(i for i, s in enumerate(source.module.body) if s is top)


def imported_from(source: Source, sources: Sequence[Source]) -> Set[str]:
    """The names other files of the run import from `source`: what fix must not remove from it."""
    names: Set[str] = set()
    for other in sources:
        if other is source:
            continue
        for imported in imports_of(other.module).values():
            if imported.name and is_file_of(other.path, imported.level, imported.module, source.path):
                names.add(imported.name)
    return names
