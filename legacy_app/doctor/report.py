"""The doctor's terminal report: by route, each hazard, where it happened, and the one-line fix."""
from typing import Any, Dict, List

FIXES = {
    "session_used_after_close": "close the session after everything that uses it: a pure ASGI middleware or a "
    "yield dependency (not @app.middleware), and give background tasks their own session",
    "connection_leaked": "end every session in a `finally` (or `with SessionLocal() as db:`) that runs after "
    "the body and the background tasks",
    "session_not_closed": "make the session before `try` and close it in `finally`",
    "transaction_left_open": "one session per request, committed or rolled back and closed when the request ends; "
    "no module-level or thread-local session shared between requests",
    "leak_on_disconnect": "put the close in `finally`: a client that hangs up must not skip it",
}


def render_table(document: Dict[str, Any]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in document["versions"].items())
    lines = [f"doctor {document['target']} ({versions})", ""]
    rows: List[List[str]] = []
    for request in document["requests"]:
        route = f"{request['method']} {request['path']}" + (" (client hung up)" if request["disconnected"] else "")
        where = request["observations"].get("where", {})
        for code in request["hazards"]:
            detail = "; ".join(where.get(code, [])) or "only when the client hung up"
            rows.append([route, code, detail])
    if not rows:
        lines.append(f"no hazard in {len(document['requests'])} requests "
                     f"({len(document['requests']) // 2} routes, each also with the client hanging up)")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows + [["route", "hazard", ""]]) for i in range(2)]
    lines.append(f"{'route':{widths[0]}}  {'hazard':{widths[1]}}  where")
    for route, code, detail in rows:
        lines.append(f"{route:{widths[0]}}  {code:{widths[1]}}  {detail}")
    lines += ["", "fixes:"]
    for code, total in document["hazards"].items():
        lines.append(f"  {code} ({total} requests): {FIXES[code]}")
    return "\n".join(lines)
