"""The comparison as a readable table, with one line per difference saying why it happens."""
from typing import Any, Dict, List

# Why a figure differs between strategies. A line is printed only when the measured values differ.
WHY = {
    ("normal_request", "closed_after_response"): (
        "BaseHTTPMiddleware's call_next() returns when the response *starts*, so the decorator form "
        "closes before the body is sent; a pure ASGI middleware closes after the app returned; a yield "
        "dependency's exit runs after the response on FastAPI <= 0.105 and >= 0.118, before it in between."
    ),
    ("normal_request", "close_thread"): (
        "Middleware close on the event loop (in a worker only when a transaction is still open); "
        "a sync yield dependency's exit code runs in a worker thread."
    ),
    ("no_db_route", "sessions_created"): (
        "A middleware creates a Session for every request, DB-less routes, /docs and 404s included; "
        "a dependency runs only for routes that declare it. A Session takes a connection only at its first query."
    ),
    ("error_after_flush", "status"): "Unhandled errors become a 500 in every strategy; see the server log.",
    ("background_task", "session_usable"): (
        "Background tasks run after the response is sent: the decorator form has closed the session by "
        "then (and refuses reuse), the others close it after the tasks ran."
    ),
    ("background_task", "leaked_connections"): (
        "A closed Session that is used again silently checks out a connection that nobody returns "
        "unless it refuses reuse (close_resets_only=False, or get_bind refusing on SQLAlchemy 1.4)."
    ),
    ("streaming_response", "session_usable"): (
        "A streaming body is produced after call_next() returned, i.e. after the decorator form closed the session."
    ),
    ("streaming_response", "body_complete"): (
        "A generator that fails mid-stream truncates the body; behind BaseHTTPMiddleware the client may "
        "still see a clean end of response, under pure ASGI the connection is aborted."
    ),
    ("factory_failure", "no_db_route_status"): (
        "A middleware calls SessionLocal() for every request, so a failing factory fails /health too; "
        "a dependency is only called for routes that use it."
    ),
    ("factory_failure", "error_type"): "Which exception reaches the server depends on where the factory is called.",
    ("contextvars", "set_in_middleware_visible_in_endpoint"): (
        "A contextvar set where the session is created is visible to the endpoint when a middleware set it "
        "(the endpoint runs in a copy of its context); a sync yield dependency sets it in its own copy, in a worker thread."
    ),
    ("pool_exhaustion", "status_counts"): (
        "With more concurrent requests than pool connections, requests that hold a connection while "
        "waiting for a thread slot stall the pool until pool_timeout; the details vary by version."
    ),
}


def _cell(value: Any) -> str:
    if isinstance(value, list):  # the doctor's hazard codes
        return ", ".join(value) or "none"
    if isinstance(value, dict):
        return " ".join(f"{key}:{count}" for key, count in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def render_table(document: Dict[str, Any]) -> str:
    results = document["results"]
    strategies = list(results)
    scenarios: List[str] = []
    for by_scenario in results.values():
        scenarios.extend(name for name in by_scenario if name not in scenarios)
    rows = [["scenario / figure"] + strategies]
    differences = []
    for scenario in scenarios:
        metrics: List[str] = []
        for strategy in strategies:
            metrics.extend(m for m in results[strategy].get(scenario, {}) if m not in metrics)
        for metric in metrics:
            values = [results[strategy].get(scenario, {}).get(metric) for strategy in strategies]
            rows.append([f"{scenario}.{metric}"] + [_cell(value) for value in values])
            if len({repr(value) for value in values}) > 1 and (scenario, metric) in WHY:
                differences.append(f"- {scenario}.{metric}: {WHY[(scenario, metric)]}")
    if "overhead" in scenarios and len(strategies) > 1:
        baseline = strategies[-1]
        for metric in ("db_route_median_us", "no_db_route_median_us"):
            base = results[baseline]["overhead"][metric]
            ratios = ", ".join(f"{s} {results[s]['overhead'][metric] / base:.2f}x" for s in strategies)
            differences.append(f"- overhead.{metric} relative to {baseline}: {ratios}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    versions = ", ".join(f"{name} {version}" for name, version in document["versions"].items())
    header = [f"Versions: {versions}", f"Database: {document['database']}", ""]
    footer = ["", "Why they differ:"] + (differences or ["- no differences measured"])
    return "\n".join(header + lines + footer)
