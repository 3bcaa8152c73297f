"""The doctor's HTML timeline: self-contained, escaped, and drawn as intended in a real browser."""
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from legacy_app.doctor.timeline import render_html

CHROMIUM = shutil.which("chromium")
SAMPLE = Path(__file__).parents[1] / "data" / "doctor_sample.json"
HAZARD_RED = (0xD7, 0x26, 0x1E)


def event(t: float, kind: str, session: Optional[int] = None, connection: Optional[int] = None, thread: str = "event-loop") -> dict:
    return {"t": t, "kind": kind, "session": session, "connection": connection, "thread": thread}


def handmade_document() -> Dict[str, Any]:
    """The decorator middleware's background-task leak, then a clean request; paths carry markup."""
    leaky = [
        event(0, "request_start"), event(0.3, "session_made", 1), event(1.2, "begin", 1, thread="worker"),
        event(1.3, "checkout", 1, 7, thread="worker"), event(2.9, "session_close", 1), event(3.0, "rollback", 1),
        event(3.1, "checkin", 1, 7), event(3.2, "response_start"), event(3.6, "response_end"),
        event(4.0, "begin", 1, thread="worker"), event(4.1, "checkout", 1, 8, thread="worker"), event(306.0, "app_return"),
    ]
    clean = [
        event(0, "request_start"), event(0.2, "session_made", 2), event(0.9, "begin", 2, thread="worker"),
        event(1.0, "checkout", 2, 9, thread="worker"), event(2.5, "response_start"), event(2.8, "response_end"),
        event(2.9, "session_close", 2), event(2.95, "rollback", 2), event(2.97, "checkin", 2, 9), event(3.0, "app_return"),
    ]
    return {
        "target": "alt_main:app<img src=x>",
        "versions": {"fastapi": "0.165.0", "sqlalchemy": "2.1.9"},
        "requests": [
            {"method": "GET", "path": "/users/<script>alert(1)</script>", "status": 200, "disconnected": False,
             "hazards": ["session_used_after_close", "connection_leaked"], "observations": {"sessions": 1}, "events": leaky},
            {"method": "GET", "path": "/items/", "status": 200, "disconnected": True, "hazards": [],
             "observations": {"sessions": 1}, "events": clean},
        ],
        "hazards": {"session_used_after_close": 1, "connection_leaked": 1},
    }


class References(HTMLParser):
    """Every attribute that could make a browser fetch something, and every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.references: List[Tuple[str, str]] = []
        self.tags: List[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        self.references += [(name, value) for name, value in attrs if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data")]


def test_page_names_nothing_to_fetch():
    html = render_html(handmade_document())
    parser = References()
    parser.feed(html)
    assert parser.references == []
    assert "link" not in parser.tags and "script" not in parser.tags
    assert "url(" not in html and "@import" not in html
    # The only address in the page is the SVG namespace, which a browser never fetches.
    assert set(re.findall(r"[a-z]+://[^\"' ]+", html)) == {"http://www.w3.org/2000/svg"}


def test_text_from_the_target_is_escaped():
    html = render_html(handmade_document())
    assert "<script>" not in html and "<img" not in html
    assert "/users/&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "alt_main:app&lt;img src=x&gt;" in html


def test_a_document_without_hazards_says_so():
    document = handmade_document()
    document["requests"] = document["requests"][1:]
    document["hazards"] = {}
    html = render_html(document)
    assert "no hazard" in html and 'class="bar' in html and "hazard\"" not in html.split("<section", 1)[1]



def test_a_request_that_never_reached_the_app_is_said_so_not_drawn():
    document = handmade_document()
    document["requests"].append({"method": "GET", "path": "/slow", "status": None, "disconnected": True, "events": [],
                                 "hazards": [], "observations": {"reached_app": False}})
    section = render_html(document).split('data-request="3"', 1)[1]
    assert "→ no response" in section and "the request never reached the app" in section and "<svg" not in section


# Appended by the test only: reads back from the laid-out page what each lane shows, in pixels.
MEASURE = """<script>
const sections = [...document.querySelectorAll("section.request-timeline")].map(section => {
  const box = el => { const b = el.getBoundingClientRect(); return {left: b.left, right: b.right, width: b.width, height: b.height}; };
  return {
    hazards: section.dataset.hazards,
    lanes: [...section.querySelectorAll("text.lane-label")].map(t => t.textContent),
    bars: [...section.querySelectorAll("rect.bar")].map(r => ({lane: r.dataset.lane, classes: r.getAttribute("class"),
           hazard: r.dataset.hazard, title: r.querySelector("title").textContent, ...box(r)})),
    markers: Object.fromEntries([...section.querySelectorAll("line.marker")].map(l => [l.dataset.marker, box(l).left])),
    points: [...section.querySelectorAll("circle.point")].map(c => ({hazard: c.dataset.hazard, ...box(c)})),
  };
});
const out = document.createElement("pre"); out.id = "measured"; out.textContent = JSON.stringify(sections);
document.body.appendChild(out);
</script>"""


def chromium(*arguments: str, scratch: Path) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt install chromium; .ci/run installs it)")
    completed = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={scratch / 'profile'}",
         "--host-resolver-rules=MAP * ~NOTFOUND", *arguments],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


def drawn(document: Dict[str, Any], scratch: Path) -> List[Dict[str, Any]]:
    page = scratch / "timeline.html"
    page.write_text(render_html(document).replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = chromium("--dump-dom", page.as_uri(), scratch=scratch).stdout
    measured = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert measured, dom[-2000:]
    return json.loads(measured.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"'))


@pytest.mark.browser
def test_chromium_draws_a_lane_per_session_and_the_leak_in_red(tmp_path):
    leaky, clean = drawn(handmade_document(), tmp_path)
    assert leaky["lanes"] == ["request", "background tasks", "session 1", "session 1 transactions", "session 1 connections"]
    assert all(bar["width"] >= 2 and bar["height"] > 0 for bar in leaky["bars"])
    session = next(bar for bar in leaky["bars"] if bar["lane"] == "session 1")
    # What closed when: the session's bar ends before the response starts.
    assert session["right"] <= leaky["markers"]["response_start"]
    leaks = [bar for bar in leaky["bars"] if bar["hazard"] == "connection_leaked"]
    assert [bar["lane"] for bar in leaks] == ["session 1 connections"]
    assert "never checked in" in leaks[0]["title"]
    assert leaks[0]["right"] == max(bar["right"] for bar in leaky["bars"])  # runs on to the right edge
    assert leaks[0]["left"] > leaky["markers"]["response_end"]  # taken in the background task
    assert {point["hazard"] for point in leaky["points"]} == {"session_used_after_close"}
    assert len(leaky["points"]) == 2  # the transaction and the checkout after close

    assert clean["lanes"] == ["request", "background tasks", "session 2", "session 2 transactions", "session 2 connections"]
    assert not [bar for bar in clean["bars"] if bar["hazard"]] and clean["points"] == []
    session = next(bar for bar in clean["bars"] if bar["lane"] == "session 2")
    assert leaky["markers"]["response_end"] < session["right"] <= clean["markers"]["app_return"] + 1


@pytest.mark.browser
def test_chromium_draws_the_missing_close_and_the_open_transaction_as_hazards(tmp_path):
    document = handmade_document()
    events = [event(0, "request_start"), event(0.1, "session_made", 3), event(0.5, "begin", 3, thread="worker"),
              event(0.6, "checkout", 3, 4, thread="worker"), event(1.0, "response_start"), event(1.2, "response_end"),
              event(1.3, "app_return"), event(40.0, "checkin_gc", 3, 4)]
    document["requests"] = [{"method": "POST", "path": "/users/", "status": 200, "disconnected": False, "events": events,
                             "hazards": ["session_not_closed", "transaction_left_open", "connection_leaked"], "observations": {}}]
    (request,) = drawn(document, tmp_path)
    hazards = {bar["lane"]: bar["hazard"] for bar in request["bars"] if bar["hazard"]}
    assert hazards == {"session 3": "session_not_closed", "session 3 transactions": "transaction_left_open",
                       "session 3 connections": "connection_leaked"}
    gc_checkin = next(bar for bar in request["bars"] if bar["lane"] == "session 3 connections")
    assert "garbage collector" in gc_checkin["title"]


@pytest.mark.browser
def test_close_ends_the_sessions_transaction(tmp_path):
    """SQLAlchemy fires no after_rollback for the rollback close() does: the transaction ends at the close."""
    document = handmade_document()
    events = [event(0, "request_start"), event(0.1, "session_made", 5), event(0.4, "checkout", None, 6, thread="worker"),
              event(0.5, "begin", 5, 6, thread="worker"), event(1.0, "session_close", 5), event(1.1, "checkin", None, 6),
              event(1.2, "response_start"), event(1.3, "response_end"), event(1.4, "app_return")]
    document["requests"] = [{"method": "GET", "path": "/", "status": 200, "events": events, "hazards": [], "observations": {}}]
    (request,) = drawn(document, tmp_path)
    assert request["lanes"] == ["request", "background tasks", "session 5", "session 5 transactions", "session 5 connections"]
    assert not [bar for bar in request["bars"] if bar["hazard"] or "open" in bar["classes"].split()]
    transaction = next(bar for bar in request["bars"] if bar["lane"] == "session 5 transactions")
    session = next(bar for bar in request["bars"] if bar["lane"] == "session 5")
    assert abs(transaction["right"] - session["right"]) < 0.5


def png_pixels(data: bytes) -> Tuple[int, int, List[bytes]]:
    """Width, height and the unfiltered rows of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunk = data[position + 8:position + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    step = 4 if colour == 6 else 3
    raw, stride, rows, previous = zlib.decompress(idat), width * step, [], bytes(width * step)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                nearest = min((abs(p - left), 0, left), (abs(p - up), 1, up), (abs(p - corner), 2, corner))[2]
                line[i] = (line[i] + nearest) & 255
        rows.append(bytes(b for x in range(width) for b in line[x * step:x * step + 3]))
        previous = bytes(line)
    return width, height, rows


def screenshot(html: str, scratch: Path, size: str = "1000,560") -> bytes:
    page, picture = scratch / "shot.html", scratch / "shot.png"
    page.write_text(html, encoding="utf-8")
    chromium(f"--screenshot={picture}", f"--window-size={size}", "--hide-scrollbars", page.as_uri(), scratch=scratch)
    return picture.read_bytes()


@pytest.mark.browser
def test_screenshot_shows_the_timeline_with_its_hazards_in_red(tmp_path):
    width, height, rows = png_pixels(screenshot(render_html(handmade_document()), tmp_path))
    pixels = [tuple(row[i:i + 3]) for row in rows for i in range(0, len(row), 3)]
    assert (width, height) == (1000, 560)
    assert sum(pixel != (255, 255, 255) for pixel in pixels) > len(pixels) // 20  # not a blank page
    assert sum(pixel == HAZARD_RED for pixel in pixels) > 2000  # the leak's bars



def plain_runs(document: Dict[str, Any]) -> Dict[str, Any]:
    """The sample's requests as sent (its disconnected runs left out), for a picture that fits a screen."""
    requests = [request for request in document["requests"] if not request["disconnected"]]
    hazards: Dict[str, int] = {}
    for request in requests:
        for code in request["hazards"]:
            hazards[code] = hazards.get(code, 0) + 1
    return dict(document, requests=requests, hazards=hazards)


@pytest.mark.browser
def test_chromium_draws_the_doctor_sample_as_measured(tmp_path):
    """The doctor's own document for the old tutorial's decorator middleware: what closed when, and the leak."""
    document = json.loads(SAMPLE.read_text())
    timelines = drawn(document, tmp_path)
    assert [t["hazards"] for t in timelines] == [" ".join(request["hazards"]) for request in document["requests"]]
    for timeline, request in zip(timelines, document["requests"]):
        sessions = {event["session"] for event in request["events"] if event["kind"] == "session_made"}
        assert {f"session {session}" for session in sessions} <= set(timeline["lanes"])
        session_bars = [bar for bar in timeline["bars"] if bar["lane"].startswith("session") and " " not in bar["lane"][8:]]
        # The decorator middleware closes its session before the response starts, on every route.
        assert all(bar["right"] <= timeline["markers"]["response_start"] for bar in session_bars)
        red = [bar for bar in timeline["bars"] if bar["hazard"]]
        if request["hazards"]:
            assert red and all(bar["left"] > timeline["markers"]["response_end"] for bar in red)  # in the background task
        else:
            assert not red


def test_docs_picture(tmp_path):
    """docs/doctor-timeline.png: the sample's plain runs; DOCTOR_PICTURE=1 rewrites it from the current code."""
    picture = Path(__file__).parents[2] / "docs" / "doctor-timeline.png"
    if os.environ.get("DOCTOR_PICTURE") == "1":
        picture.write_bytes(screenshot(render_html(plain_runs(json.loads(SAMPLE.read_text()))), tmp_path, size="1000,930"))
    width, height, rows = png_pixels(picture.read_bytes())
    assert (width, height) == (1000, 930)
    assert sum(row.count(bytes(HAZARD_RED)) for row in rows) > 500
