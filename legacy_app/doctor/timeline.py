"""The doctor's findings as one self-contained HTML page: a timeline per request, drawn in inline SVG.

Nothing is fetched from elsewhere (no script, font or stylesheet by URL), so the page opens offline
and can be attached to a bug report. Every text shown comes from the target app or its client
(paths, details) and is escaped.
"""
import json
from bisect import bisect_right
from html import escape
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

LABEL_WIDTH = 190
PLOT_WIDTH = 700
OPEN_TAIL = 50  # what never ended runs on past the last event, to the right edge
ROW_HEIGHT = 22
AXIS_HEIGHT = 58
# The time axis is half event order, half linear time: the few milliseconds in which a session closes
# stay readable next to a background task of seconds, and long gaps still look long.
ORDER_SHARE = 0.5

HAZARD_TEXT = {
    "session_used_after_close": "a closed session began a transaction or took a connection",
    "connection_leaked": "a connection was not back in the pool when the request had finished",
    "session_not_closed": "a session made for the request was never closed",
    "transaction_left_open": "a transaction was still open after the request (idle in transaction)",
    "leak_on_disconnect": "a hazard that appears only when the client disconnects",
}
MARKERS = (("response_start", "response start"), ("response_end", "last body message"), ("app_return", "app returned"))
NOT_REACHED = '<p class="muted not-reached">nothing recorded: the request never reached the app</p>'
ENDS = {"session_made": ("session_close",), "begin": ("commit", "rollback"), "checkout": ("checkin", "checkin_gc")}

BASE_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.6em 0 .3em}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left;vertical-align:top}
code{font:12px ui-monospace,monospace}.muted{color:#6e6e73}
.badge{display:inline-block;padding:0 6px;margin-right:4px;border-radius:3px;font-size:12px;background:#e3f4e6;color:#176c2c}
.badge.hazard{background:#fde2e1;color:#a1120b}
svg{display:block;margin:.4em 0}svg text{font:11px system-ui,sans-serif;fill:#333}
.lane-bg{fill:#f6f6f8}.tick{stroke:#ddd}
.open{fill-opacity:.45}.bar.hazard{fill:#d7261e;fill-opacity:1;stroke:#7a0c07;stroke-width:1}
.marker{stroke:#444;stroke-dasharray:3 3}.marker-label{font-size:10px}
.point{fill:#d7261e;stroke:#7a0c07}
.legend span{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
"""
COLOURS = {"request": "#8e8e93", "background": "#bf8f00", "session": "#2f6fdf", "transaction": "#7b4fd6",
           "checkout": "#1a9a6b", "hazard": "#d7261e"}
# Bars are filled, legend swatches painted, in the same colour; the hazard's red wins over the others.
STYLE = "".join(f".{name}{{fill:{colour}}}.legend span.{name}{{background:{colour}}}" for name, colour in COLOURS.items()) + BASE_STYLE


def render_html(document: Dict[str, Any]) -> str:
    requests = document.get("requests", [])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>doctor: {_e(document.get('target', ''))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Session lifecycle of <code>{_e(document.get('target', ''))}</code></h1>",
        f'<p class="muted">{_e(_versions(document.get("versions", {})))}</p>',
        _summary(document.get("hazards", {}), requests),
        _legend(),
    ]
    parts += [_request_section(number, request) for number, request in enumerate(requests, 1)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _versions(versions: Dict[str, Any]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def _summary(hazards: Dict[str, int], requests: List[Dict[str, Any]]) -> str:
    if not any(hazards.values()):
        return f'<p><span class="badge">no hazard</span> in {len(requests)} requests</p>'
    rows = "".join(
        f'<tr><td><span class="badge hazard">{_e(code)}</span></td><td>{_e(count)}</td>'
        f"<td>{_e(HAZARD_TEXT.get(code, ''))}</td></tr>"
        for code, count in sorted(hazards.items()) if count
    )
    return f'<table class="summary"><tr><th>hazard</th><th>requests</th><th>meaning</th></tr>{rows}</table>'


def _legend() -> str:
    items = [("request", "request"), ("background", "background tasks"), ("session", "session made → closed"),
             ("transaction", "transaction begin → commit/rollback"), ("checkout", "connection checkout → checkin"),
             ("hazard", "hazard (leak, use after close, never closed)")]
    spans = "".join(f'<span class="{css}"></span>{_e(text)}' for css, text in items)
    return (f'<p class="legend muted">{spans}; a bar that reaches the right edge never ended; dashed lines: '
            "response start, last body message, app returned; the time axis is stretched where events are close together</p>")


class Bar:
    """One interval on a lane; `end` None means it never ended (drawn to the right edge)."""

    def __init__(self, lane: str, css: str, start: float, end: Optional[float], title: str, hazard: str = "") -> None:
        self.lane, self.css, self.start, self.end, self.title, self.hazard = lane, css, start, end, title, hazard


def _request_section(number: int, request: Dict[str, Any]) -> str:
    events = sorted(request.get("events", []), key=lambda event: event["t"])
    hazards = request.get("hazards", [])
    badges = "".join(f'<span class="badge hazard">{_e(code)}</span>' for code in hazards) or '<span class="badge">clean</span>'
    disconnected = ' <span class="muted">client disconnected after sending</span>' if request.get("disconnected") else ""
    observations = "".join(f"<tr><td><code>{_e(key)}</code></td><td>{_e(json.dumps(value))}</td></tr>"
                           for key, value in request.get("observations", {}).items())
    heading = (f'<h2 id="request-{number}">{_e(request.get("method", ""))} <code>{_e(request.get("path", ""))}</code> '
               f'→ {_e(request.get("status") or "no response")}{disconnected}</h2>')
    return (
        f'<section class="request-timeline" data-request="{number}" data-hazards="{_e(" ".join(hazards))}">'
        f"{heading}<p>{badges}</p>{_svg(events) if events else NOT_REACHED}"
        f'<details><summary class="muted">observations</summary><table>{observations}</table></details></section>'
    )


def _svg(events: List[Dict[str, Any]]) -> str:
    lanes, bars, points = _layout(events)
    end = max([event["t"] for event in events] + [1.0])
    height = AXIS_HEIGHT + ROW_HEIGHT * len(lanes)
    x = _scale(sorted({event["t"] for event in events} | {0.0, end}), end)

    row = {lane: index for index, lane in enumerate(lanes)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_WIDTH + PLOT_WIDTH + OPEN_TAIL + 10}" height="{height + 4}" '
           f'role="img" aria-label="timeline">']
    for lane, index in row.items():
        y = AXIS_HEIGHT + index * ROW_HEIGHT
        out.append(f'<rect class="lane-bg" x="{LABEL_WIDTH}" y="{y + 2}" width="{PLOT_WIDTH + OPEN_TAIL}" height="{ROW_HEIGHT - 4}"/>')
        out.append(f'<text class="lane-label" data-lane="{_e(lane)}" x="4" y="{y + ROW_HEIGHT - 7}">{_e(lane)}</text>')
    last_label = -100.0
    for tick in _ticks(end):
        out.append(f'<line class="tick" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{AXIS_HEIGHT - 4}" y2="{height}"/>')
        if x(tick) - last_label > 45:  # the stretched axis puts some ticks close together
            out.append(f'<text x="{x(tick) + 2:.1f}" y="{AXIS_HEIGHT - 6}">{tick:g} ms</text>')
            last_label = x(tick)
    for bar in bars:
        y = AXIS_HEIGHT + row[bar.lane] * ROW_HEIGHT
        left = x(bar.start)
        right = x(bar.end) if bar.end is not None else LABEL_WIDTH + PLOT_WIDTH + OPEN_TAIL
        classes = " ".join(filter(None, ["bar", bar.css, "open" if bar.end is None else "", "hazard" if bar.hazard else ""]))
        out.append(
            f'<rect class="{classes}" data-lane="{_e(bar.lane)}" data-hazard="{_e(bar.hazard)}" x="{left:.1f}" '
            f'y="{y + 5}" width="{max(right - left, 2):.1f}" height="{ROW_HEIGHT - 10}"><title>{_e(bar.title)}</title></rect>'
        )
    for lane, t, hazard, title in points:
        y = AXIS_HEIGHT + row[lane] * ROW_HEIGHT + ROW_HEIGHT / 2
        out.append(f'<circle class="point hazard" data-hazard="{_e(hazard)}" cx="{x(t):.1f}" cy="{y}" r="4">'
                   f"<title>{_e(title)}</title></circle>")
    for line, (kind, text) in enumerate(MARKERS):  # one text line each, so close markers stay legible
        for event in (event for event in events if event["kind"] == kind):
            at = x(event["t"])
            out.append(f'<line class="marker" data-marker="{kind}" x1="{at:.1f}" x2="{at:.1f}" y1="{12 + 11 * line}" '
                       f'y2="{height}"><title>{_e(_describe(text, event))}</title></line>'
                       f'<text class="marker-label" {_anchor(at)} y="{10 + 11 * line}">{_e(text)} {event["t"]:.1f} ms</text>')
    out.append("</svg>")
    return "".join(out)


def _anchor(at: float) -> str:
    """A label left of its line near the right edge, right of it elsewhere."""
    if at > LABEL_WIDTH + PLOT_WIDTH - 150:
        return f'x="{at - 3:.1f}" text-anchor="end"'
    return f'x="{at + 3:.1f}"'


def _scale(times: List[float], end: float) -> Callable[[float], float]:
    """Piecewise linear through the event times, each placed by its rank and its time."""
    places = [LABEL_WIDTH + PLOT_WIDTH * (ORDER_SHARE * rank / (len(times) - 1) + (1 - ORDER_SHARE) * t / end)
              for rank, t in enumerate(times)]

    def x(t: float) -> float:
        index = min(max(bisect_right(times, t), 1), len(times) - 1)
        before, after = times[index - 1], times[index]
        share = (t - before) / (after - before) if after > before else 0.0
        return places[index - 1] + (places[index] - places[index - 1]) * min(max(share, 0.0), 1.0)

    return x


def _ticks(end: float) -> Iterable[float]:
    step = 10 ** len(str(int(end / 5))) / 10 if end >= 5 else 0.5
    for factor in (1, 2, 5, 10):
        if end / (step * factor) <= 8:
            step *= factor
            break
    tick = 0.0
    while tick <= end:
        yield round(tick, 3)
        tick += step


def _describe(what: str, event: Dict[str, Any]) -> str:
    detail = f" ({event['detail']})" if event.get("detail") else ""
    return f"{what} at {event['t']:.2f} ms on {event.get('thread', '?')}{detail}"


def _layout(events: List[Dict[str, Any]]) -> Tuple[List[str], List[Bar], List[Tuple[str, float, str, str]]]:
    """Lanes (top to bottom), the bars on them and the hazard points, from the request's events in time order."""
    lanes = ["request"]
    bars: List[Bar] = []
    points: List[Tuple[str, float, str, str]] = []
    first = {kind: next((e for e in events if e["kind"] == kind), None) for kind in ("request_start", "response_end", "app_return")}
    start = first["request_start"]["t"] if first["request_start"] else 0.0
    finish = first["app_return"]
    bars.append(Bar("request", "request", start, finish["t"] if finish else None,
                    "request" + (f" → app returned at {finish['t']:.2f} ms" if finish else ", the app never returned")))
    body_end = first["response_end"]
    if body_end and finish and finish["t"] > body_end["t"]:
        lanes.append("background tasks")
        bars.append(Bar("background tasks", "background", body_end["t"], finish["t"],
                        f"after the last body message until the app returned: {finish['t'] - body_end['t']:.2f} ms"))

    events = _checkouts_with_their_session(events)
    closed_at: Dict[int, float] = {}
    opened: Dict[Tuple[str, Any], Dict[str, Any]] = {}  # (kind, session or connection) -> the opening event

    def lane_for(kind: str, event: Dict[str, Any]) -> str:
        session = event.get("session")
        if kind == "session_made":
            name = f"session {session}"
        elif kind == "begin":
            name = f"session {session} transactions" if session is not None else "transactions (no session)"
        else:
            name = f"session {session} connections" if session is not None else f"connection {event.get('connection')}"
        if name not in lanes:
            lanes.append(name)
        return name

    def key(kind: str, event: Dict[str, Any]) -> Tuple[str, Any]:
        return (kind, event.get("connection") if kind == "checkout" else event.get("session"))

    for event in events:
        kind = event["kind"]
        if kind in ENDS:
            lane_for(kind, event)
            opened[key(kind, event)] = event
            session = event.get("session")
            if kind != "session_made" and session in closed_at and event["t"] >= closed_at[session]:
                points.append((lane_for(kind, event), event["t"], "session_used_after_close",
                               _describe(f"{kind} on session {session}, closed at {closed_at[session]:.2f} ms,", event)))
            continue
        opener = next((name for name, ends in ENDS.items() if kind in ends), None)
        if opener is None:
            continue
        if kind == "session_close":
            # close() ends the transaction too; SQLAlchemy fires no after_rollback for that rollback.
            transaction = opened.pop(("begin", event.get("session")), None)
            if transaction is not None:
                bars.append(_closed_bar(lane_for("begin", transaction), "begin", transaction, event, closed_at))
        begun = opened.pop(key(opener, event), None)
        if begun is None:
            continue
        if kind == "session_close":
            closed_at[event.get("session")] = event["t"]
        bars.append(_closed_bar(lane_for(opener, begun), opener, begun, event, closed_at))
    for (opener, _), begun in opened.items():
        bars.append(_open_bar(lane_for(opener, begun), opener, begun, closed_at))
    return _in_reading_order(lanes), bars, points


def _in_reading_order(lanes: List[str]) -> List[str]:
    """Each session's own lanes together: the session, its transactions, its connections."""
    def place(lane: str) -> Tuple[int, int]:
        for suffix, offset in ((" transactions", 1), (" connections", 2)):
            if lane.endswith(suffix) and lane[: -len(suffix)] in lanes:
                return lanes.index(lane[: -len(suffix)]), offset
        return lanes.index(lane), 0

    return sorted(lanes, key=place)


def _checkouts_with_their_session(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """A pool checkout knows no session: it belongs to the session whose next transaction began on that connection."""
    result = []
    for index, event in enumerate(events):
        if event["kind"] == "checkout" and event.get("session") is None:
            begin = next((later for later in events[index:] if later["kind"] == "begin"
                          and later.get("connection") == event.get("connection")), None)
            if begin is not None:
                event = dict(event, session=begin.get("session"))
        result.append(event)
    return result


NAMES = {"session_made": ("session", "session"), "begin": ("transaction", "transaction"), "checkout": ("checkout", "connection")}


def _used_after_close(begun: Dict[str, Any], closed_at: Dict[int, float]) -> bool:
    session = begun.get("session")
    return session in closed_at and begun["t"] >= closed_at[session]


def _closed_bar(lane: str, opener: str, begun: Dict[str, Any], ended: Dict[str, Any], closed_at: Dict[int, float]) -> Bar:
    css, noun = NAMES[opener]
    hazard = ""
    if ended["kind"] == "checkin_gc":
        hazard = "connection_leaked"
    elif opener != "session_made" and _used_after_close(begun, closed_at):
        hazard = "session_used_after_close"
    title = f"{noun} {_ident(opener, begun)}: {_describe(opener, begun)} → {_describe(ended['kind'], ended)}"
    if ended["kind"] == "checkin_gc":
        title += " — returned only by the garbage collector: a leak"
    return Bar(lane, css, begun["t"], ended["t"], title, hazard)


def _open_bar(lane: str, opener: str, begun: Dict[str, Any], closed_at: Dict[int, float]) -> Bar:
    css, noun = NAMES[opener]
    hazard, never = {"session_made": ("session_not_closed", "never closed"),
                     "begin": ("transaction_left_open", "never committed or rolled back"),
                     "checkout": ("connection_leaked", "never checked in")}[opener]
    return Bar(lane, css, begun["t"], None, f"{noun} {_ident(opener, begun)}: {_describe(opener, begun)}, {never}", hazard)


def _ident(opener: str, event: Dict[str, Any]) -> Any:
    return event.get("connection") if opener == "checkout" else event.get("session")
