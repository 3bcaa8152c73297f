"""A `yield` dependency that commits after its yield, and every `Depends(...)` of it in the run's files.

FastAPI 0.105 and older, and 0.118 and newer, run a yield dependency's exit code after the response
was sent: the client has its 200 before the commit, which may still fail. `Depends(dep,
scope="function")` (FastAPI 0.121+) runs it before. That also closes the session before a streamed body
or a background task reads through it, so a route doing either keeps the dependency as it is.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import libcst as cst

from .plan import FilePlan
from .modules import Imported, imports_of, is_file_of
from .report import FIXED, REFUSED, Finding
from .sources import Source
from .stack import FUNCTION_SCOPE, exits_after_response, has_function_scope, parse
from .syntax import all_nodes, dotted, is_generator, last_name, method_call, own_nodes, quote_of

STREAMING = ("StreamingResponse", "EventSourceResponse")
BACKGROUND = ("add_task", "BackgroundTask", "BackgroundTasks")
NEEDS = f"{FUNCTION_SCOPE[0]}.{FUNCTION_SCOPE[1]}"


@dataclass
class Dependency:
    source: Source
    function: cst.FunctionDef
    why: str  # "commits after its yield (line 23)"

    @property
    def name(self) -> str:
        return self.function.name.value

    @property
    def where(self) -> str:
        return f"{self.source.path}:{self.source.line(self.function)}"


@dataclass
class Use:
    source: Source
    node: cst.CSTNode  # the Depends(...) call, or the parameter annotated with an alias of it
    call: Optional[cst.Call]  # None: the dependency arrives through an Annotated alias
    scope: Optional[str]  # the scope= the call already gives
    function: Optional[cst.FunctionDef]  # whose parameter (or decorator) it is
    parameter: Optional[str]


def commits_after_yield(source: Source, function: cst.FunctionDef) -> Optional[str]:
    nodes = own_nodes(function)
    if not any(isinstance(n, cst.Yield) for n in nodes) or not any(
            isinstance(n, cst.Call) and (method_call(n, "commit") or method_call(n, "begin")) for n in nodes):
        return None
    yields = [source.line(n) for n in nodes if isinstance(n, cst.Yield)]
    for node in nodes:
        if isinstance(node, cst.Call) and method_call(node, "commit") is not None and source.line(node) > min(yields):
            return f"commits after its yield (line {source.line(node)})"
    for node in nodes:
        if (isinstance(node, cst.With) and any(method_call(i.item, "begin") is not None for i in node.items)
                and any(isinstance(n, cst.Yield) for n in all_nodes(node.body))):
            return (f"commits after its yield (as its `{'async ' if node.asynchronous else ''}with ...begin()` block "
                    f"ends, line {source.line(node)})")
    return None


def find_dependencies(sources: Sequence[Source]) -> List[Dependency]:
    found = []
    for source in sources:
        if "yield" not in source.text or not ("commit" in source.text or "begin" in source.text):
            continue
        for statement in source.module.body:
            if isinstance(statement, cst.FunctionDef):
                why = commits_after_yield(source, statement)
                if why is not None:
                    found.append(Dependency(source, statement, why))
    return found


class _Resolver:
    """Which Dependency a name or attribute in a file is, through the file's own imports."""

    def __init__(self, dependencies: List[Dependency], aliases: Dict[Tuple[int, str], Dependency]) -> None:
        self.dependencies, self.aliases = dependencies, aliases
        self.imports: Dict[int, Dict[str, Imported]] = {}

    def imports_of(self, source: Source) -> Dict[str, Imported]:
        if id(source) not in self.imports:
            self.imports[id(source)] = imports_of(source.module)
        return self.imports[id(source)]

    def _match(self, source: Source, expression: cst.CSTNode, named: Callable[[str, Source], Optional[Dependency]]):
        imports = self.imports_of(source)
        if isinstance(expression, cst.Name):
            local = named(expression.value, source)
            if local is not None and expression.value not in imports:
                return local
            imported = imports.get(expression.value)
            if imported is not None and imported.name:
                return self._find(named, imported.name, lambda target: is_file_of(
                    source.path, imported.level, imported.module, target.path))
        elif isinstance(expression, cst.Attribute) and isinstance(expression.value, cst.Name):
            imported = imports.get(expression.value.value)
            if imported is not None:
                return self._find(named, expression.attr.value, lambda target: is_file_of(
                    source.path, imported.level, imported.as_module(), target.path))
        return None

    def _find(self, named, name: str, is_target) -> Optional[Dependency]:
        sources = {id(d.source): d.source for d in self.dependencies}
        sources.update({key[0]: dep.source for key, dep in self.aliases.items()})
        for source in sources.values():
            if is_target(source):
                found = named(name, source)
                if found is not None:
                    return found
        return None

    def dependency(self, source: Source, expression: cst.CSTNode) -> Optional[Dependency]:
        return self._match(source, expression, lambda name, where: next(
            (d for d in self.dependencies if d.source is where and d.name == name), None))

    def alias(self, source: Source, expression: cst.CSTNode) -> Optional[Dependency]:
        return self._match(source, expression, lambda name, where: self.aliases.get((id(where), name)))


def _is_depends(call: cst.Call, imports: Dict[str, Imported]) -> bool:
    if last_name(call.func) == "Depends":
        return True
    imported = imports.get(dotted(call.func) or "")
    return imported is not None and imported.name == "Depends"


def _dependency_argument(call: cst.Call) -> Optional[cst.BaseExpression]:
    for position, arg in enumerate(call.args):
        if (arg.keyword is None and position == 0) or (arg.keyword is not None and arg.keyword.value == "dependency"):
            return arg.value
    return None


def _scope_of(call: cst.Call) -> Optional[str]:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "scope":
            value = arg.value
            return str(value.evaluated_value) if isinstance(value, cst.SimpleString) else "?"
    return None


def _owner(source: Source, node: cst.CSTNode) -> Tuple[Optional[cst.FunctionDef], Optional[str]]:
    parameter = None
    current = source.parents.get(node)
    while current is not None and not isinstance(current, cst.Module):
        if isinstance(current, cst.Param) and parameter is None:
            parameter = current.name.value
        if isinstance(current, cst.FunctionDef):
            return current, parameter
        current = source.parents.get(current)
    return None, None


def _alias_target(source: Source, call: cst.Call) -> Optional[str]:
    """X, when the call sits in a top-level `X = Annotated[..., Depends(dep)]` (`X: TypeAlias = ...`, `type X = ...`)."""
    current, annotated = source.parents.get(call), False
    while current is not None and not isinstance(current, (cst.Module, cst.FunctionDef, cst.ClassDef)):
        annotated = annotated or isinstance(current, cst.Subscript) and last_name(current.value) == "Annotated"
        if annotated and isinstance(current, cst.Assign) and len(current.targets) == 1:
            return dotted(current.targets[0].target)
        if annotated and isinstance(current, cst.AnnAssign):
            return dotted(current.target)
        if annotated and isinstance(current, getattr(cst, "TypeAlias", ())):  # Python 3.12
            return current.name.value  # type: ignore[attr-defined]
        current = source.parents.get(current)
    return None


def find_uses(sources: Sequence[Source], dependencies: List[Dependency]) -> Dict[int, List[Use]]:
    """{id(dependency): its uses}: every Depends(dep) call, and every parameter annotated with an alias of one."""
    resolver = _Resolver(dependencies, {})
    uses: Dict[int, List[Use]] = {id(d): [] for d in dependencies}
    for source in sources:
        if "Depends" not in source.text:
            continue
        imports = resolver.imports_of(source)
        for node in all_nodes(source.module):
            if not (isinstance(node, cst.Call) and _is_depends(node, imports)):
                continue
            argument = _dependency_argument(node)
            dependency = resolver.dependency(source, argument) if argument is not None else None
            if dependency is None:
                continue
            function, parameter = _owner(source, node)
            uses[id(dependency)].append(Use(source, node, node, _scope_of(node), function, parameter))
            alias = _alias_target(source, node) if function is None else None
            if alias:
                resolver.aliases[(id(source), alias)] = dependency
    aliases = {name for _, name in resolver.aliases}
    for source in sources:  # parameters annotated with an alias: `db: SessionDep`
        if not any(alias in source.text for alias in aliases):
            continue
        for node in all_nodes(source.module):
            if isinstance(node, cst.Param) and node.annotation is not None:
                dependency = resolver.alias(source, node.annotation.annotation)
                if dependency is not None:
                    function, _ = _owner(source, node)
                    uses[id(dependency)].append(Use(source, node, None, None, function, node.name.value))
    return uses


def route_refusal(use: Use) -> Optional[str]:
    """Why Depends(dep, scope="function") would break the function that uses it, if it would."""
    function = use.function
    if function is None:
        return None
    name = function.name.value
    if is_generator(function):
        return (f"the yield dependency {name} depends on it, and FastAPI refuses a yield dependency of scope "
                "\"request\" that depends on one of scope \"function\" (DependencyScopeError)")
    if use.parameter is None:
        return None
    nodes = list(all_nodes(function.body))
    if not any(isinstance(n, cst.Name) and n.value == use.parameter for n in nodes):
        return None
    calls = {last_name(n.func) for n in nodes if isinstance(n, cst.Call)}
    streaming = sorted(calls & set(STREAMING))
    if streaming:
        return (f"the route {name} streams its body ({streaming[0]}) and reads through {use.parameter}: "
                "scope=\"function\" would close the session before the body is sent")
    background = sorted(calls & set(BACKGROUND))
    if background:
        return (f"the route {name} hands work to a background task ({background[0]}) and reads through "
                f"{use.parameter}: scope=\"function\" would close the session before the task runs")
    return None


def with_function_scope(call: cst.Call, quote: str) -> cst.Call:
    """Depends(dep) → Depends(dep, scope="function"), keeping the call's layout (one line or one argument a line)."""
    args = list(call.args)
    scope = cst.Arg(keyword=cst.Name("scope"), value=cst.SimpleString(f"{quote}function{quote}"),
                    equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                          whitespace_after=cst.SimpleWhitespace("")))
    last = args[-1]
    if isinstance(last.comma, cst.Comma):  # a trailing comma: the new argument takes it, after the same break
        between = call.whitespace_before_args
        if isinstance(between, cst.SimpleWhitespace):
            between = cst.SimpleWhitespace(" ")
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=between))
        args.append(scope.with_changes(comma=last.comma))
    else:
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        args.append(scope)
    return call.with_changes(args=args)


def plan_dependencies(sources: Sequence[Source], plans: Dict[int, FilePlan],
                      fastapi: Callable[[], Tuple[Optional[str], str]]) -> None:
    """Adds the Depends rewrites (or the refusals) to the plans; `fastapi()` asks for the app's version."""
    dependencies = find_dependencies(sources)
    if not dependencies:
        return
    uses = find_uses(sources, dependencies)
    quotes: Dict[int, str] = {}
    for dependency in dependencies:
        mine = uses[id(dependency)]
        pending = [u for u in mine if u.call is not None and u.scope is None]
        explicit = [u for u in mine if u.scope not in (None, "function")]
        if not pending and not explicit:
            continue
        source, line = dependency.source, dependency.source.line(dependency.function)
        plan = plans[id(source)]
        version, python = fastapi()
        if version is None:
            plan.findings.append(Finding(source.path, line, REFUSED, (
                f"{dependency.name} {dependency.why}; cannot decide whether that runs after the response: FastAPI is "
                f"not installed in {python} (--python names the app's interpreter)")))
            continue
        if not exits_after_response(parse(version)):
            continue  # this FastAPI commits before the response: nothing to fix
        hazard = f"{dependency.name} {dependency.why}, which FastAPI {version} runs after the response is sent"
        refusals = [(u, why) for u, why in ((u, route_refusal(u)) for u in mine) if why]
        refusals += [(u, f"Depends({dependency.name}, scope=\"{u.scope}\") is asked for explicitly") for u in explicit]
        if refusals:
            for use, why in refusals:
                place = use.function if use.function is not None else use.node
                defined = f" ({dependency.where})" if use.source is not source else f" (line {line})"
                plans[id(use.source)].findings.append(Finding(use.source.path, use.source.line(place), REFUSED, (
                    f"{hazard.replace(dependency.name, dependency.name + defined, 1)}; but {why}: every "
                    f"Depends({dependency.name}) is left as it is (mixed scopes would give a request two sessions); "
                    "commit in the routes before they return")))
            continue
        if not has_function_scope(parse(version)):
            plan.findings.append(Finding(source.path, line, REFUSED, (
                f"{hazard}; Depends({dependency.name}, scope=\"function\"), which runs it before, needs FastAPI "
                f"{NEEDS}+: upgrade fastapi to >={NEEDS} and run fix again, or commit in the routes before they return")))
            continue
        places, lines = [], []
        for use in pending:
            use_plan = plans[id(use.source)]
            if id(use.source) not in quotes:
                quotes[id(use.source)] = quote_of(use.source.module)
            quote = quotes[id(use.source)]
            use_plan.edits[id(use.call)] = lambda updated, quote=quote: with_function_scope(updated, quote)
            if use.source is source:
                lines.append(str(use.source.line(use.node)))
            else:
                places.append(f"{use.source.path}:{use.source.line(use.node)}")
        if lines:
            places.insert(0, f"line{'s' if len(lines) > 1 else ''} {', '.join(lines)}")
        plan.findings.append(Finding(source.path, line, FIXED, (
            f"{hazard} (a commit that fails is a 200 the client already has): Depends({dependency.name}, "
            f"scope=\"function\") now runs it before ({', '.join(places)})")))


