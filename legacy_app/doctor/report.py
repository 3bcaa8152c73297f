"""The doctor's terminal report: every request and its status, the hazards and where they happened, the
errors the app raised, what was not exercised, the verdict, and the one-line fix of each hazard."""
from typing import Any, Dict, List

# One answer on background tasks everywhere (doctor, compare, README): a pure ASGI middleware closes
# the session after them, so they may use the request's session; anything that closes it earlier
# (@app.middleware, a yield dependency on FastAPI 0.106-0.117) needs the task to open its own.
MIDDLEWARE = "app.add_middleware(DBSessionMiddleware, session_factory=SessionLocal) (legacy_app.sessions)"
ASYNC_MIDDLEWARE = "app.add_middleware(AsyncDBSessionMiddleware, session_factory=async_session) (legacy_app.sessions)"
FIXES = {
    "session_used_after_close": "close the session after everything that uses it — the body and the background "
    f"tasks: {MIDDLEWARE}; with @app.middleware or a yield dependency, give a background task a session of its own",
    "connection_leaked": "end every session in a `finally` (or `with SessionLocal() as db:`) that runs after "
    "the body and the background tasks",
    "session_not_closed": "make the session before `try` and close it in `finally`",
    "transaction_left_open": "one session per request, committed or rolled back and closed when the request ends; "
    "no module-level or thread-local session shared between requests (a scoped_session: remove() it on the "
    "thread that used it)",
    "leak_on_disconnect": "put the close in `finally`: a client that hangs up must not skip it",
    "error_after_response_start": "the client got a success for a request that failed: do the work that can fail "
    "before the response starts (a streamed body needs the session open until it ends: " + MIDDLEWARE + "), and "
    "report a background task's failure where someone reads it",
    "response_before_commit": "commit before the response: in the route, or with Depends(get_db, scope=\"function\") "
    "on FastAPI 0.121+ (FastAPI 0.118+ and up to 0.105 run the code after `yield` after the response)",
}
ASYNC_FIXES = {
    "session_used_after_close": FIXES["session_used_after_close"].replace(MIDDLEWARE, ASYNC_MIDDLEWARE),
    "connection_leaked": "end every AsyncSession in a `finally` (or `async with async_session() as db:`) that runs "
    "after the body and the background tasks",
    "session_not_closed": "make the AsyncSession before `try` and `await db.close()` in `finally`",
    "error_after_response_start": FIXES["error_after_response_start"].replace(MIDDLEWARE, ASYNC_MIDDLEWARE),
}
ERROR_LINES = 6  # of a traceback, in the terminal: the raise site and the error


def fix_for(code: str, asynchronous: bool) -> str:
    return (ASYNC_FIXES.get(code) if asynchronous else None) or FIXES[code]


def render_table(document: Dict[str, Any]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in document["versions"].items())
    lines = [f"doctor {document['target']} ({versions})", ""]
    rows = [["request", "status", "hazards"]]
    for request in document["requests"]:
        route = f"{request['method']} {request['path']}" + (" (client hung up)" if request["disconnected"] else "")
        status = "-" if request["status"] is None else str(request["status"])
        rows.append([route, status, ", ".join(request["hazards"]) or "-"])
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines += [f"{route:{widths[0]}}  {status:{widths[1]}}  {hazards}" for route, status, hazards in rows]

    where = [(request, code, detail) for request in document["requests"]
             for code in request["hazards"]
             for detail in request["observations"].get("where", {}).get(code, ["only when the client hung up"])]
    if where:
        lines += ["", "where:"]
        lines += [f"  {_route(request)}: {code}: {detail}" for request, code, detail in where]
    errors = [request for request in document["requests"] if request.get("error")]
    if errors:
        lines += ["", "errors the app raised (the end of each traceback; the server's log has them whole):"]
        for request in errors:
            lines.append(f"  {_route(request)} -> {request['status'] if request['status'] is not None else '-'}:")
            lines += [f"      {line}" for line in request["error"][-ERROR_LINES:]]
    not_exercised = document.get("coverage", {}).get("not_exercised", [])
    if not_exercised:
        lines += ["", "not exercised:"]
        lines += [f"  {entry['method']} {entry['path']}: {entry['reason']}" for entry in not_exercised]
    lines += ["", _verdict(document)]
    if document["hazards"]:
        lines += ["", "fixes:"]
        for code, total in document["hazards"].items():
            lines.append(f"  {code} ({total} requests): {fix_for(code, document.get('asynchronous', False))}")
    if document.get("server_log"):
        lines += ["", f"the server's log: {document['server_log']}"]
    return "\n".join(lines)


def _route(request: Dict[str, Any]) -> str:
    return f"{request['method']} {request['path']}" + (" (client hung up)" if request["disconnected"] else "")


def _verdict(document: Dict[str, Any]) -> str:
    requests = document["requests"]
    sent = sum(1 for request in requests if not request["disconnected"])
    coverage = document.get("coverage", {})
    exercised = (f"{sent} requests sent, {len(requests) - sent} of them also hung up on; "
                 f"{coverage.get('used_a_session', 0)} of the {sent} used a database session")
    not_exercised = len(coverage.get("not_exercised", []))
    if not_exercised:
        exercised += f"; {not_exercised} not exercised (above)"
    if document["hazards"]:
        total = sum(1 for request in requests if request["hazards"])
        return f"verdict: a hazard in {total} of {len(requests)} runs ({exercised})"
    if document.get("verdict") == "inconclusive":
        reasons: List[str] = document.get("inconclusive", [])
        return (f"verdict: inconclusive — nothing shows the app is clean ({exercised}):\n"
                + "\n".join(f"  {r}" for r in reasons))
    return f"verdict: clean, in what was exercised ({exercised})"
