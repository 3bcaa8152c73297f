"""One request's events → its hazards and observations.

Ownership: a request owns the sessions made while its context variable was set, the transactions
begun and the connections checked out while it was set (whatever session they belong to), wherever
the work ran (event loop, worker thread, background task). What happened to those objects afterwards
is followed through every later event up to the moment of judgment, whichever request was current then.

Hazards (exact codes):
- session_used_after_close: a session began a transaction (and so checked out a connection) after
  close(), and that use was left open or came after its request had finished. A session closed and
  used again later, the later use ended within its own request, is not one: SQLAlchemy allows it,
  and a thread-local scoped_session does exactly that;
- connection_leaked: a connection checked out for the request was not checked in by the time of
  judgment, or was checked in only by the garbage collector (instrument.returned_by_garbage_collector);
- session_not_closed: a session made for the request was never closed;
- transaction_left_open: a transaction begun during the request had no commit, rollback or close;
- leak_on_disconnect: added by the runner to a disconnected run that has a hazard its plain run has not;
- error_after_response_start: the app raised after the response began (a body cut short, a
  background task that failed): the status the client got does not describe the outcome;
- response_before_commit: a transaction begun before the response's last body message, that
  wrote, committed after it: the client had its answer before the write was durable (and a commit
  failing then is a success for a write that never happened).
"""
from typing import Any, Dict, List, Optional, Set

HAZARDS = (
    "session_used_after_close",
    "connection_leaked",
    "session_not_closed",
    "transaction_left_open",
    "leak_on_disconnect",
    "error_after_response_start",
    "response_before_commit",
)
ASGI_KINDS = ("request_start", "response_start", "response_end", "app_return")
MILESTONES = (("response_start", "response_start"), ("response_end", "response_end"), ("app_return", "app_return"))


class Ids:
    """Small integers per document for the raw id()s of one kind of object, renumbered when one is made anew."""

    def __init__(self) -> None:
        self.numbers: Dict[int, int] = {}
        self.count = 0

    def new(self, raw: int) -> int:
        self.count += 1
        self.numbers[raw] = self.count
        return self.count

    def of(self, raw: Optional[int]) -> Optional[int]:
        if raw is None:
            return None
        return self.numbers.get(raw) or self.new(raw)


def analyse(number: int, events: List[Dict[str, Any]], sessions: Ids, connections: Ids,
            callers_sessions: Optional[Set[int]] = None) -> Dict[str, Any]:
    """Hazards, observations and the timeline (document ids, ms since the request's start) of request `number`.

    `callers_sessions` (raw ids): sessions that are not the app's to manage — a test fixture's — whose
    transactions and connections are left out of the request's account.
    """
    callers_sessions = callers_sessions or set()
    start = next(i for i, e in enumerate(events) if e["kind"] == "request_start" and e["request"] == number)
    origin = events[start]["t"]
    own_sessions, own_transactions, own_checkouts = set(), [], []
    related: List[Dict[str, Any]] = []
    closed: Dict[int, bool] = {}  # raw session id -> closed now (sessions made before this request included)
    for e in events[:start]:
        if e["kind"] == "session_made":
            closed[e["session"]] = False
        elif e["kind"] == "session_close":
            closed[e["session"]] = True
    hazards: Dict[str, List[str]] = {}
    milestones: Dict[str, float] = {}
    open_transactions: Dict[int, List[Dict[str, Any]]] = {}  # raw session id -> its open begins of this request
    checked_out: Dict[int, Dict[str, Any]] = {}  # raw connection id -> this request's checkout still out
    session_closes: Dict[int, float] = {}
    status = 0  # the response's, once it started
    reused: Dict[int, str] = {}  # raw session id -> where a use after close() began, until that use ends in time
    wrote: Set[int] = set()  # raw session ids whose open transaction wrote
    connection_session: Dict[int, int] = {}  # raw connection id -> the session whose transaction it serves

    def note(code: str, where: str) -> None:
        hazards.setdefault(code, []).append(where)

    for e in events[start:]:
        kind, mine = e["kind"], e["request"] == number
        ms = round((e["t"] - origin) * 1000, 3)
        session, connection = e["session"], e["connection"]
        if kind == "session_made":
            sessions.new(session)  # a new object may reuse a freed one's id()
            closed[session] = False
            if mine:
                own_sessions.add(session)
        if kind == "session_close" and not (session in own_sessions or session in open_transactions):
            closed[session] = True  # not this request's, but a later begin on it is a use after close
        if session in callers_sessions and kind in ("begin", "commit", "rollback", "session_close"):
            if kind == "begin":  # its checkout, just before, was the caller's too
                checked_out.pop(connection, None)
            continue
        if not _concerns(e, mine, own_sessions, open_transactions, checked_out):
            continue
        if kind in ASGI_KINDS:
            milestones.setdefault(kind, ms)
        related.append(_timeline_event(e, ms, sessions, connections))
        returned = "app_return" in milestones and not (kind == "app_return")
        if kind == "response_start":
            status = int(e["detail"])
        # A 5xx already says the request failed (Starlette's error middleware sends its 500, then re-raises).
        if kind == "app_return" and e.get("traceback") and "response_start" in milestones and status < 500:
            note("error_after_response_start", f"the app raised at {ms:.1f} ms, after the response began "
                 f"({e['detail']}): {e['traceback'][-1]}")
        if kind == "session_close":
            closed[session] = True
            _end_use(session, open_transactions, reused, wrote, returned)
            open_transactions.pop(session, None)
            if session in own_sessions:
                session_closes.setdefault(session, ms)
        elif kind == "begin":
            if closed.get(session):
                where = f"session {sessions.of(session)} began a transaction at {ms:.1f} ms after close() ({e['thread']})"
                if returned:
                    note("session_used_after_close", where + ", after its request had finished")
                else:
                    reused[session] = where
            open_transactions.setdefault(session, []).append(dict(e, ms=ms))
            own_transactions.append(e)
            connection_session[connection] = session
        elif kind == "write":
            if connection in connection_session:
                wrote.add(connection_session[connection])
        elif kind in ("commit", "rollback"):
            begins = open_transactions.get(session) or []
            if (kind == "commit" and session in wrote and "response_end" in milestones and begins
                    and begins[0]["ms"] < milestones["response_end"]):
                note("response_before_commit", f"session {sessions.of(session)}'s transaction begun at "
                     f"{begins[0]['ms']:.1f} ms wrote, and committed at {ms:.1f} ms, after the response ended at "
                     f"{milestones['response_end']:.1f} ms")
            _end_use(session, open_transactions, reused, wrote, returned)
            open_transactions.pop(session, None)
        elif kind == "checkout":
            checked_out[connection] = dict(e, ms=ms)
            own_checkouts.append(e)
        elif kind == "checkin":
            checked_out.pop(connection, None)
        elif kind == "checkin_gc":
            out = checked_out.pop(connection)
            note("connection_leaked", f"connection {connections.of(connection)} checked out at {out['ms']:.1f} ms "
                 f"came back only through the garbage collector at {ms:.1f} ms")
    for connection, out in checked_out.items():
        note("connection_leaked", f"connection {connections.of(connection)} checked out at {out['ms']:.1f} ms "
             f"({out['thread']}) was never checked in")
    for session in own_sessions:
        if session not in session_closes:
            note("session_not_closed", f"session {sessions.of(session)} was never closed")
    for where in reused.values():  # used after close() and not ended within its request
        note("session_used_after_close", where + ", and that use was never ended")
    for session, begins in open_transactions.items():
        note("transaction_left_open", f"session {sessions.of(session)}'s transaction begun at {begins[0]['ms']:.1f} ms "
             f"({begins[0]['thread']}) was still open")
    observations: Dict[str, Any] = {
        "sessions": len(own_sessions),
        "transactions": len(own_transactions),
        "checkouts": len(own_checkouts),
        "app_returned": "app_return" in milestones,
        "session_lifecycle": [_closed_against(sessions.of(s), session_closes.get(s), milestones) for s in
                              sorted(own_sessions, key=lambda raw: sessions.of(raw) or 0)],
        "where": hazards,
    }
    returned = [e for e in related if e["kind"] == "app_return"]
    return {
        "hazards": [code for code in HAZARDS if code in hazards],
        "observations": observations,
        "events": related,
        "status": _status(related),
        "error": returned[0].get("traceback") if returned else None,
    }


def _end_use(session: int, open_transactions: Dict[int, Any], reused: Dict[int, str], wrote: Set[int],
             returned: bool) -> None:
    """A transaction of `session` ended: a use after close() that ended before its request finished is allowed."""
    wrote.discard(session)
    if session in reused and not returned:
        del reused[session]


def _concerns(e: Dict[str, Any], mine: bool, own_sessions: set, open_transactions: Dict[int, Any],
              checked_out: Dict[int, Any]) -> bool:
    kind = e["kind"]
    if kind in ASGI_KINDS or kind in ("session_made", "checkout"):
        return mine
    if kind == "write":
        return e["connection"] in checked_out or mine
    if kind == "begin":
        return mine or e["session"] in own_sessions
    if kind in ("commit", "rollback", "session_close"):
        return e["session"] in own_sessions or e["session"] in open_transactions
    return e["connection"] in checked_out  # checkin, checkin_gc


def _closed_against(session: Optional[int], closed_ms: Optional[float], milestones: Dict[str, float]) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"session": session, "closed_ms": closed_ms}
    for name, kind in MILESTONES:
        at = milestones.get(kind)
        entry[f"closed_before_{name}"] = None if closed_ms is None or at is None else closed_ms <= at
    return entry


def _status(events: List[Dict[str, Any]]) -> Optional[int]:
    for e in events:
        if e["kind"] == "response_start":
            return int(e["detail"])
    return None


def _timeline_event(e: Dict[str, Any], ms: float, sessions: Ids, connections: Ids) -> Dict[str, Any]:
    event = {
        "t": ms,
        "kind": e["kind"],
        "session": sessions.of(e["session"]),
        "connection": connections.of(e["connection"]),
        "thread": e["thread"],
    }
    if e.get("detail"):
        event["detail"] = e["detail"]
    if e.get("traceback"):
        event["traceback"] = e["traceback"]
    return event


def count(requests: List[Dict[str, Any]]) -> Dict[str, int]:
    """{code: number of requests that showed it}, for the codes any request showed."""
    totals = {code: sum(code in r["hazards"] for r in requests) for code in HAZARDS}
    return {code: n for code, n in totals.items() if n}
