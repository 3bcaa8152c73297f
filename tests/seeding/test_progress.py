"""Seeding's progress: a line every interval off a terminal, tqdm's bar on one, and the time left
worked out at the rate of the users that wrote something."""
import io
import re

from legacy_app.seeding.progress import Progress

from ..support.live_server import wait_until


# --- progress ------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_is_a_plain_line_every_interval_and_one_at_the_end():
    out = io.StringIO()
    with Progress(10, file=out, interval=0.05) as progress:
        for done in range(10):
            progress.update()
            if done == 4:  # half-way, the interval's line comes with no further update
                wait_until(lambda: "seeding: 5/10" in out.getvalue(), message="a line at the interval")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) >= 2  # the interval's lines, and the last
    assert all(re.fullmatch(r"seeding: \d+/10 users \(\d+ %\), [\d.]+ users/s, \d\d:\d\d elapsed(, \d\d:\d\d left)?", line)
               for line in lines), lines
    assert lines[-1].startswith("seeding: 10/10 users (100 %), ")


def test_progress_keeps_reporting_while_one_step_holds_the_caller():
    out = io.StringIO()
    with Progress(1, file=out, interval=0.05):  # e.g. one batch insert: no update() meanwhile
        wait_until(lambda: out.getvalue().count("seeding: 0/1 users") >= 3, message="three lines with no update")


def test_progress_on_a_terminal_is_tqdms_bar():
    out = Terminal()
    with Progress(4, file=out) as progress:
        progress.update(4)
    assert "\r" in out.getvalue() and "4/4" in out.getvalue() and "|" in out.getvalue()


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_left_after_skipped_users_is_at_the_rate_of_the_users_written():
    clock = Clock()
    with Progress(1500, file=io.StringIO(), interval=3600, clock=clock) as progress:
        clock.now = 1.0
        progress.update(1200, unchanged=1200)  # a rerun: 1200 users there already, 1200 a second
        clock.now = 4.0
        progress.update(30)  # then 30 new users in 3 s: 10 a second, for the 270 left
        assert progress.time_left() == (27.0, False)
        assert progress.line() == (
            "seeding: 1230/1500 users (82 %), 1200 already there, 307.5 users/s, 00:04 elapsed, 00:27 left"
        )
        clock.now = 5.0
        progress.update(100, unchanged=100)  # more that were there: the rate of the writing ones stands
        assert progress.time_left() == (17.0, False)


def test_time_left_before_anything_was_written_is_only_a_floor():
    clock = Clock()
    with Progress(1000, file=io.StringIO(), interval=3600, clock=clock) as progress:
        assert progress.time_left() is None
        clock.now = 2.0
        progress.update(500, unchanged=500)
        assert progress.time_left() == (2.0, True)
        assert progress.line().endswith(", 00:02 elapsed, at least 00:02 left")


def test_the_bar_on_a_terminal_shows_the_time_left_at_the_rate_of_the_users_written():
    clock, out = Clock(), Terminal()
    with Progress(1500, file=out, clock=clock) as progress:
        clock.now = 1.0
        progress.update(1200, unchanged=1200)
        clock.now = 4.0
        progress.update(30)
    assert "00:27 left" in out.getvalue().rsplit("\r", 1)[-1]
