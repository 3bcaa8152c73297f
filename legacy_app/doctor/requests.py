"""What the doctor sends: the requests file, the GETs found in the app's OpenAPI schema, and what one answer
hands to the next request (saved values, seen ids), with the secrets among them kept out of every output.

A requests file is a JSON list of {"method", "path", "headers"?, "json"? or "form"?, "save"?, "hangup"?}.
In the path, header values, form values and JSON strings, `${NAME}` is read from the environment and
`{name}` is a value an earlier request saved (`"save": {"name": "access_token"}`, a key path into its
JSON answer such as "data.items.0.id"); `{{` and `}}` are literal braces.

Standard library only, like the rest of the doctor's side (the app's process holds serve.py and the instrument).
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple, Union
from urllib.parse import quote, quote_plus, urlencode

KEYS = ("method", "path", "headers", "json", "form", "save", "hangup")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
COMMON_OPENAPI_URLS = ("/openapi.json", "/api/openapi.json", "/api/v1/openapi.json", "/v1/openapi.json",
                       "/docs/openapi.json")
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie")
# A saved value under such a name is a credential from the moment it is saved.
SECRET_NAME = re.compile(r"token|secret|passw|key|session|cookie|auth|jwt|bearer", re.IGNORECASE)
NOT_REPORTED = "unknown"  # serve.py's openapi_url when the target has none (not FastAPI, or wrapped)
REDACTED = "***"
# A secret this short, blanked wherever it occurs, would blank ids, times and counts too: only whole words.
MIN_SUBSTRING_SECRET = 8
MIN_SECRET = 4

TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|\{\{|\}\}")
ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
OPENAPI_PARAMETER = re.compile(r"\{([^{}/]+)\}")
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # an HTTP method or header name
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PATH = re.compile(r"/[\x21-\x7e]*\Z")
MISSING = object()


class RequestsError(ValueError):
    """The requests (file, --header, --openapi-url) cannot be used; the message is one line."""


class Unfilled(Exception):
    """A placeholder no earlier answer (nor the schema) could fill; the message is the reason."""


@dataclass(frozen=True)
class PathParameter:
    name: str
    type: str = ""  # the schema's: "integer", "number", "string"; "" when it gives none
    examples: Tuple[Any, ...] = ()  # the schema's example(s), default and enum values, in that order
    enum: Tuple[Any, ...] = ()

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return False
        if self.enum and value not in self.enum:
            return False
        if self.type == "integer":
            return isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value) is not None)
        if self.type == "number":
            return isinstance(value, (int, float)) or (isinstance(value, str) and _is_number(value))
        return True


@dataclass
class RequestSpec:
    method: str
    path: str  # may hold {name}s: saved values (origin "file") or path parameters (origin "openapi")
    headers: Dict[str, str] = field(default_factory=dict)
    json: Any = None  # None: no JSON body
    form: Optional[Dict[str, Any]] = None
    save: Dict[str, str] = field(default_factory=dict)  # name -> key path into the 2xx JSON answer
    hangup: bool = True  # False: sent once (a registration sent twice is not comparable)
    origin: str = "file"
    parameters: Tuple[PathParameter, ...] = ()


@dataclass(frozen=True)
class PreparedRequest:
    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    spec: RequestSpec


@dataclass(frozen=True)
class NotExercised:
    method: str
    path: str
    reason: str


# --- the requests file and --header ---------------------------------------------------------------

def load(path: Path, environ: Mapping[str, str]) -> List[RequestSpec]:
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RequestsError(f"cannot read requests from {path}: {error}") from None
    if not isinstance(entries, list) or not entries:
        raise RequestsError(f"{path}: expected a non-empty JSON list of requests")
    specs: List[RequestSpec] = []
    saved: Set[str] = set()
    for n, entry in enumerate(entries, 1):
        try:
            spec = _spec(entry, environ, saved)
        except RequestsError as error:
            raise RequestsError(f"{path}: request {n}: {error}") from None
        saved.update(spec.save)
        specs.append(spec)
    return specs


def _spec(entry: Any, environ: Mapping[str, str], saved: Set[str]) -> RequestSpec:
    if not isinstance(entry, dict):
        raise RequestsError('expected an object with "method" and "path"')
    unknown = [key for key in entry if key not in KEYS]
    if unknown:
        raise RequestsError(f'unknown key "{unknown[0]}" (known: {", ".join(KEYS)})')
    method, path, headers = entry.get("method"), entry.get("path"), entry.get("headers", {})
    form, save, hangup = entry.get("form"), entry.get("save", {}), entry.get("hangup", True)
    if not (isinstance(method, str) and TOKEN.match(method)):
        raise RequestsError('needs "method", an HTTP method such as GET')
    if not (isinstance(path, str) and PATH.match(path)):
        raise RequestsError('needs a "path" starting with / (ASCII, no spaces: percent-encode the rest)')
    if not isinstance(headers, dict):
        raise RequestsError('"headers" must be an object')
    for name, value in headers.items():
        _check_header(name, value)
    if form is not None and entry.get("json") is not None:
        raise RequestsError('give "json" or "form", not both')
    if form is not None and not (isinstance(form, dict) and all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in form.values())):
        raise RequestsError('"form" must be an object of strings and numbers')
    if not (isinstance(save, dict) and all(isinstance(k, str) and NAME.match(k) and isinstance(v, str) and v
                                           for k, v in save.items())):
        raise RequestsError('"save" must map names (letters, digits, _) to key paths such as "access_token"'
                            ' or "data.items.0.id"')
    if not isinstance(hangup, bool):
        raise RequestsError('"hangup" must be true or false')
    for text in [path, *headers.values(), *(form or {}).values(), *_strings(entry.get("json"))]:
        if isinstance(text, str):
            _check_template(text, environ, saved)
    return RequestSpec(method.upper(), path, dict(headers), entry.get("json"), form, dict(save), hangup)


def _check_header(name: Any, value: Any) -> None:
    if not (isinstance(name, str) and isinstance(value, str) and _is_latin_1(name + value)):
        raise RequestsError("header names and values must be strings of Latin-1 characters (HTTP/1.1)")
    if not TOKEN.match(name) or "\r" in value or "\n" in value:
        raise RequestsError(f'header "{name}": a name is letters, digits and -; a value is one line')


def _check_template(text: str, environ: Mapping[str, str], saved: Set[str]) -> None:
    for match in TEMPLATE.finditer(text):
        variable, name = match.groups()
        if variable is not None and variable not in environ:
            raise RequestsError(f"${{{variable}}} is not set in the environment")
        if name is not None and name not in saved:
            raise RequestsError(f'{{{name}}} is not saved by an earlier request (add "save": {{"{name}": ...}} to one)')


def parse_header_options(options: Sequence[str], environ: Mapping[str, str]) -> List[Tuple[str, str]]:
    """`--header "Name: value"`, for every request; `${NAME}` in the value is read from the environment."""
    headers = []
    for n, option in enumerate(options, 1):
        name, colon, value = option.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not TOKEN.match(name):
            # The option is not echoed: its value may be a token.
            raise RequestsError(f'--header {n}: expected "Name: value"')
        try:
            _check_header(name, value)
            for variable in ENV.findall(value):
                if variable not in environ:
                    raise RequestsError(f"${{{variable}}} is not set in the environment")
        except RequestsError as error:
            raise RequestsError(f"--header {name}: {error}") from None
        headers.append((name, value))
    return headers


# --- one run: filling requests, remembering answers, redacting --------------------------------------

class Context:
    """The values earlier answers gave (saved names, seen ids) and every secret sent, for one doctor run."""

    def __init__(self, environ: Mapping[str, str], headers: Sequence[Tuple[str, str]] = ()) -> None:
        self.environ = environ
        self.saved: Dict[str, Any] = {}
        self.unsaved: Dict[str, str] = {}  # name -> why the request meant to save it did not
        self.seen = SeenIds()
        self._secrets: Set[str] = set()
        self._pattern: Optional["re.Pattern[str]"] = None
        self.headers: Dict[str, str] = {}  # --header, sent with every request
        for name, value in headers:
            try:
                self.headers[name] = ENV.sub(lambda match: self._env(match.group(1)), value)
            except Unfilled as why:
                raise RequestsError(f"--header {name}: {why}") from None
            self._secret_header(name, self.headers[name], always=True)

    @property
    def secrets(self) -> FrozenSet[str]:
        """Every value from ${NAME}, --header, an Authorization or Cookie header, a header that took a saved
        value, or a value saved under a credential's name (token, secret, key...)."""
        return frozenset(self._secrets)

    def render(self, spec: RequestSpec) -> Union[PreparedRequest, NotExercised]:
        try:
            if spec.origin == "openapi":
                path = fill_path(spec.path, spec.parameters, self.seen)
            else:
                path = self._fill(spec.path, in_path=True)
            headers = dict(self.headers)
            for name, value in spec.headers.items():  # the request's own header wins over --header
                _drop(headers, name)
                headers[name] = self._fill(value, secret=True)
            body = b""
            if spec.form is not None:
                body = urlencode({k: self._fill(v) if isinstance(v, str) else v for k, v in spec.form.items()}).encode()
                _set_default(headers, "Content-Type", "application/x-www-form-urlencoded")
            elif spec.json is not None:
                body = json.dumps(self._fill_json(spec.json)).encode()
                _set_default(headers, "Content-Type", "application/json")
        except Unfilled as why:
            return NotExercised(spec.method, spec.path, str(why))
        for name, value in headers.items():
            if not _is_latin_1(value) or "\r" in value or "\n" in value:
                return NotExercised(spec.method, spec.path, f"the header {name} would not be one line of Latin-1")
            self._secret_header(name, value, always=False)
        return PreparedRequest(spec.method, path, headers, body, spec)

    def remember(self, prepared: PreparedRequest, status: Optional[int], body: bytes) -> List[str]:
        """Notes the ids of a 2xx JSON answer and saves what the request asks; returns why a save failed."""
        spec, where = prepared.spec, f"{prepared.spec.method} {prepared.spec.path}"
        answered = status is not None and 200 <= status < 300
        document = _json(body) if answered else MISSING
        if document is not MISSING:
            self.seen.add(prepared.path, document)
        problems = []
        for name, key_path in spec.save.items():
            if not answered:
                why = f"{where} answered {status}" if status is not None else f"{where} got no answer"
            elif document is MISSING:
                why = f"{where} did not answer JSON"
            else:
                value = _lookup(document, key_path)
                if value is MISSING:
                    why = f"the answer to {where} has no {key_path}"
                elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    why = f"{key_path} in the answer to {where} is not a string or a number"
                else:
                    self.saved[name] = value
                    self.unsaved.pop(name, None)
                    # A saved id (a path's, a body's) is no secret, and blanking it would blank every path
                    # and figure that holds it; a credential is one by its name, or once a header carries it.
                    if isinstance(value, str) and SECRET_NAME.search(name):
                        self._add_secret(value)
                    continue
            self.unsaved[name] = why
            problems.append(f"could not save {name}: {why}")
        return problems

    def redact(self, text: str) -> str:
        if not self._secrets:
            return text
        if self._pattern is None:
            self._pattern = _secrets_pattern(self._secrets)
        return self._pattern.sub(REDACTED, text)

    def redact_all(self, value: Any) -> Any:
        """The document with every string (and key) redacted: for the JSON, the report and the page."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact_all(k): self.redact_all(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_all(v) for v in value]
        return value

    def _fill(self, text: str, in_path: bool = False, secret: bool = False) -> str:
        """`text` with its {name}s and ${VAR}s filled; with `secret` (a header), the saved values it took are secrets."""
        def one(match: "re.Match[str]") -> str:
            variable, name = match.groups()
            if variable is None and name is None:
                return match.group(0)[0]  # {{ or }}
            value = self._env(variable) if variable is not None else self._saved(name)
            if secret and variable is None:
                self._add_secret(str(value))
            return quote(str(value), safe="") if in_path else str(value)

        return TEMPLATE.sub(one, text)

    def _fill_json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._fill_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._fill_json(v) for v in value]
        if isinstance(value, str):
            whole = TEMPLATE.fullmatch(value)
            if whole is not None and whole.group(2) is not None:
                return self._saved(whole.group(2))  # "{user_id}" alone keeps a saved number a number
            return self._fill(value)
        return value

    def _env(self, variable: str) -> str:
        if variable not in self.environ:
            raise Unfilled(f"needs ${{{variable}}}, which is not set in the environment")
        self._add_secret(self.environ[variable])
        return self.environ[variable]

    def _saved(self, name: str) -> Any:
        if name not in self.saved:
            why = self.unsaved.get(name)
            raise Unfilled(f"needs {{{name}}}, which no earlier response gave" + (f" ({why})" if why else ""))
        return self.saved[name]

    def _secret_header(self, name: str, value: str, always: bool) -> None:
        if always or name.lower() in SECRET_HEADERS:
            self._add_secret(value)
            if name.lower() in SECRET_HEADERS:
                self._add_secret(value.partition(" ")[2])  # the credential after "Bearer " or "Basic "

    def _add_secret(self, value: str) -> None:
        # Under MIN_SECRET characters a value is no credential, and blanking it would blank the report's
        # own figures (a "7" in every "102.7 ms").
        if len(value) >= MIN_SECRET and value not in self._secrets:
            self._secrets.add(value)
            self._pattern = None


def _secrets_pattern(secrets: Set[str]) -> "re.Pattern[str]":
    # Each secret also as it appears in a URL, a form body and a JSON string.
    forms = {f for s in secrets for f in (s, quote(s, safe=""), quote_plus(s), json.dumps(s)[1:-1]) if f}
    alternatives = [re.escape(f) if len(f) >= MIN_SUBSTRING_SECRET else rf"(?<![A-Za-z0-9.]){re.escape(f)}(?![A-Za-z0-9.])"
                    for f in sorted(forms, key=lambda f: (-len(f), f))]  # longest first: no half-redacted secret
    return re.compile("|".join(alternatives))


# --- ids seen in answers, and the paths they fill ----------------------------------------------------

def _ids_in(document: Any) -> Dict[str, List[Any]]:
    ids: Dict[str, List[Any]] = {}
    queue: List[Tuple[Any, Optional[str]]] = [(document, None)]
    for value, parent in queue:  # breadth first: a list's own ids before the ids nested in its elements
        if isinstance(value, list):
            queue.extend((v, parent) for v in value)
        elif isinstance(value, dict):
            for key, v in value.items():
                if isinstance(v, (dict, list)):
                    queue.append((v, key))
                elif (key == "id" or key.endswith("_id")) and isinstance(v, (str, int)) and not isinstance(v, bool):
                    names = [key] + ([f"{parent[:-1] if parent.endswith('s') else parent}_id"]
                                     if key == "id" and parent else [])
                    for name in names:
                        if v not in ids.setdefault(name, []):
                            ids[name].append(v)
    return ids


class SeenIds:
    """The ids of every earlier 2xx JSON answer, by the path that answered."""

    def __init__(self) -> None:
        self.answers: List[Tuple[str, Dict[str, List[Any]]]] = []

    def add(self, path: str, document: Any) -> None:
        ids = _ids_in(document)
        if ids:
            self.answers.append((path.partition("?")[0].rstrip("/"), ids))

    def candidates(self, name: str, collection: str) -> List[Any]:
        """The ids listed at `collection` (GET /users/ for /users/{user_id}), then any value seen as `name`."""
        listed = [v for path, ids in self.answers if path == collection for v in ids.get("id", [])]
        named = [v for _, ids in self.answers for v in ids.get(name, [])] if name != "id" else []
        return listed + named


def fill_path(template: str, parameters: Sequence[PathParameter], seen: SeenIds) -> str:
    """The OpenAPI path with each {name} filled from seen ids, else from the schema's examples; raises Unfilled."""
    declared = {p.name: p for p in parameters}
    path, end = "", 0
    for match in OPENAPI_PARAMETER.finditer(template):
        path += template[end:match.start()]
        end = match.end()
        name = match.group(1)
        parameter = declared.get(name, PathParameter(name))
        collection = path.rstrip("/")
        candidates = seen.candidates(name, collection)
        value = next((v for v in candidates + list(parameter.examples) if parameter.accepts(v)), None)
        if value is None:
            if candidates:
                raise Unfilled(f"needs {name}: no {parameter.type or 'suitable'} value among the ids seen,"
                               " and the schema gives no example")
            raise Unfilled(f"needs {name}: no earlier response gave {name} or listed ids at {collection}/,"
                           " and the schema gives no example")
        path += quote(str(value), safe="")
    return path + template[end:]


# --- discovery -------------------------------------------------------------------------------------

def openapi_candidates(override: Optional[str], reported: Any = NOT_REPORTED) -> List[str]:
    """Where to ask for the schema, in order: --openapi-url; else the app's own openapi_url (serve.py's
    app_info event: a path, None when the app disables its schema, "unknown"); else the usual places."""
    if override is not None:
        if not PATH.match(override):
            raise RequestsError(f"--openapi-url must be a path starting with /, got {override!r}")
        return [override]
    if reported is None or reported == "":  # FastAPI serves no schema when openapi_url is falsy
        raise RequestsError("the app disables its OpenAPI (openapi_url=None): give --requests"
                            " (or --openapi-url, if it serves a schema elsewhere)")
    if isinstance(reported, str) and reported != NOT_REPORTED and PATH.match(reported):
        return [reported]
    return list(COMMON_OPENAPI_URLS)


def find_schema(candidates: Sequence[str],
                get: Callable[[str], Tuple[Optional[int], bytes]]) -> Tuple[str, Dict[str, Any]]:
    """The first candidate URL that answers an OpenAPI schema, and the schema; `get(url)` -> (status, body)."""
    tried = []
    for url in candidates:
        status, body = get(url)
        schema = _json(body) if status == 200 else MISSING
        if isinstance(schema, dict) and isinstance(schema.get("paths"), dict):
            return url, schema
        if status is None:
            tried.append(f"GET {url} gave no answer")
        else:
            tried.append(f"GET {url} answered {status}" + (" and no OpenAPI schema" if status == 200 else ""))
    raise RequestsError(f"no --requests given and no OpenAPI schema found ({'; '.join(tried)}):"
                        " give --requests, or --openapi-url")


def discover(schema: Mapping[str, Any]) -> Tuple[List[RequestSpec], List[NotExercised]]:
    """Every GET that needs no query, header or cookie parameter nor a body; the rest, with the reason."""
    specs: List[RequestSpec] = []
    skipped: List[NotExercised] = []
    for path, operations in schema.get("paths", {}).items():
        if not isinstance(operations, dict):
            continue
        for method, operation in operations.items():
            if method not in HTTP_METHODS or not isinstance(operation, dict):
                continue
            if method != "get":
                skipped.append(NotExercised(method.upper(), path, "not a GET: give it in --requests"))
                continue
            parameters = _parameters(schema, operations.get("parameters", []), operation.get("parameters", []))
            required = [p for p in parameters if p.get("required") and p.get("in") != "path"]
            if required:
                needs = ", ".join(f"the {p.get('in')} parameter {p['name']}" for p in required)
                skipped.append(NotExercised("GET", path, f"needs {needs}: give it in --requests"))
            elif _resolve(schema, operation.get("requestBody")).get("required"):
                skipped.append(NotExercised("GET", path, "needs a body: give it in --requests"))
            else:
                specs.append(RequestSpec("GET", path, origin="openapi", parameters=tuple(
                    _path_parameter(schema, p) for p in parameters if p.get("in") == "path")))
    # Fewest placeholders first: a collection is asked before its items, whose ids it lists.
    specs.sort(key=lambda spec: len(OPENAPI_PARAMETER.findall(spec.path)))
    return specs, skipped


def _parameters(schema: Mapping[str, Any], shared: Any, own: Any) -> List[Dict[str, Any]]:
    merged: Dict[Tuple[str, Any], Dict[str, Any]] = {}
    for parameter in list(shared or []) + list(own or []):  # the operation's own override the path's
        parameter = _resolve(schema, parameter)
        if isinstance(parameter.get("name"), str):
            merged[(parameter["name"], parameter.get("in"))] = parameter
    return list(merged.values())


def _path_parameter(schema: Mapping[str, Any], parameter: Dict[str, Any]) -> PathParameter:
    body = _resolve(schema, parameter.get("schema"))
    if "type" not in body and "enum" not in body:  # Optional[int]: anyOf [{"type": "integer"}, {"type": "null"}]
        alternatives = [_resolve(schema, a) for key in ("anyOf", "oneOf", "allOf") for a in body.get(key, [])]
        chosen = next((a for a in alternatives if a.get("type") != "null"), {})
        body = dict(chosen, **{k: v for k, v in body.items() if k not in ("anyOf", "oneOf", "allOf")})
    kind = body.get("type", "")
    if isinstance(kind, list):  # OpenAPI 3.1: ["integer", "null"]
        kind = next((k for k in kind if k != "null"), "")
    examples: List[Any] = []
    if "example" in parameter:
        examples.append(parameter["example"])
    named = parameter.get("examples")  # OpenAPI: {"name": {"value": ...}}
    if isinstance(named, dict):
        examples += [_resolve(schema, e)["value"] for e in named.values() if "value" in _resolve(schema, e)]
    if "example" in body:
        examples.append(body["example"])
    if isinstance(body.get("examples"), list):  # JSON Schema (OpenAPI 3.1)
        examples += body["examples"]
    if "default" in body:
        examples.append(body["default"])
    enum = tuple(body.get("enum") or ())
    return PathParameter(parameter["name"], kind if isinstance(kind, str) else "", tuple(examples) + enum, enum)


def _resolve(schema: Mapping[str, Any], value: Any) -> Dict[str, Any]:
    """`value` with its local $ref followed ({} when it is not an object or the reference leads nowhere)."""
    for _ in range(16):
        if not isinstance(value, dict):
            return {}
        reference = value.get("$ref")
        if not (isinstance(reference, str) and reference.startswith("#/")):
            return value
        value = schema
        for part in reference[2:].split("/"):
            value = value.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(value, dict) else None
    return {}


# --- small helpers -----------------------------------------------------------------------------------

def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return MISSING


def _lookup(document: Any, key_path: str) -> Any:
    for key in key_path.split("."):
        if isinstance(document, dict) and key in document:
            document = document[key]
        elif isinstance(document, list) and re.fullmatch(r"[0-9]+", key) and int(key) < len(document):
            document = document[int(key)]
        else:
            return MISSING
    return document


def _strings(value: Any) -> List[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _drop(headers: Dict[str, str], name: str) -> None:
    for existing in [k for k in headers if k.lower() == name.lower()]:
        del headers[existing]


def _set_default(headers: Dict[str, str], name: str, value: str) -> None:
    if not any(k.lower() == name.lower() for k in headers):
        headers[name] = value


def _is_latin_1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
