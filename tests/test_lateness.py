"""Late policies against hand-computed credit at the boundaries (issue 21 §1): exactly at
the due time, one second after, the end of the grace period, whole days, the floor, a
credit schedule, time zones and fixed (DST-free) offsets; strict parsing of times a
student can write; and the pset.toml tables that hold them (unknown keys: exit 2)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convpset.autograder.lateness import (
    LatePolicy,
    Limit,
    PolicyError,
    assess,
    parse_due,
    parse_instant,
    parse_policy,
    penalty_points,
)
from convpset.autograder.term import gradescope_times, read_timestamp

MSK = dt.timezone(dt.timedelta(hours=3))
DUE = dt.datetime(2026, 10, 1, 23, 59, 0, tzinfo=MSK)      # 20:59:00 UTC
S = dt.timedelta(seconds=1)
PER_DAY = LatePolicy("per_day", penalty=0.1, floor=0.5)
PER_HOUR = LatePolicy("per_hour", penalty=0.05, floor=0.0)


def at(**delta: float) -> dt.datetime:
    return DUE + dt.timedelta(**delta)


@pytest.mark.parametrize(("policy", "when", "credit", "rule"), [
    # exactly at the due time: on time
    (PER_DAY, at(seconds=0), 1.0, "on_time"),
    # one second after: one started day, 1 - 0.1
    (PER_DAY, at(seconds=1), 0.9, "per_day"),
    # one microsecond after is late too
    (PER_DAY, at(microseconds=1), 0.9, "per_day"),
    # exactly 24 h late is still one started day; a second more is the second day
    (PER_DAY, at(days=1), 0.9, "per_day"),
    (PER_DAY, at(days=1, seconds=1), 0.8, "per_day"),
    # 4 days 1 s: 5 started days, 1 - 0.5 = 0.5 (= the floor)
    (PER_DAY, at(days=4, seconds=1), 0.5, "per_day"),
    # ten days: the floor holds
    (PER_DAY, at(days=10), 0.5, "per_day"),
    # per hour: 2 h 0 min 1 s = 3 started hours, 1 - 0.15
    (PER_HOUR, at(hours=2, seconds=1), 0.85, "per_hour"),
    (PER_HOUR, at(hours=19, seconds=59), 0.0, "per_hour"),   # 20 started hours: 1 - 1.0
    # none: one second late keeps nothing
    (LatePolicy("none"), at(seconds=1), 0.0, "none"),
    (LatePolicy("none"), at(seconds=0), 1.0, "on_time"),
    # before the due time
    (PER_DAY, at(days=-3), 1.0, "on_time"),
])
def test_hand_computed_credit(policy, when, credit, rule):
    got = assess(policy, DUE, when)
    assert got.credit == pytest.approx(credit, abs=1e-12)
    assert got.rule == rule


def test_grace_period_boundaries():
    """15 minutes' grace: 15:00 late is full credit, 15:01 is one started day (counted
    from the due time, not from the end of the grace)."""
    p = LatePolicy("per_day", penalty=0.1, floor=0.5, grace_s=15 * 60)
    assert assess(p, DUE, at(minutes=15)).credit == 1.0
    assert assess(p, DUE, at(minutes=15)).rule == "grace"
    assert assess(p, DUE, at(minutes=15, seconds=1)).credit == pytest.approx(0.9)
    assert assess(p, DUE, at(minutes=15, seconds=1)).periods == 1
    # one day and one second late: 2 started days even with grace
    assert assess(p, DUE, at(days=1, seconds=1)).credit == pytest.approx(0.8)
    # the grace of a "none" policy: 15:00 still accepted, 15:01 refused
    n = LatePolicy("none", grace_s=15 * 60)
    assert (assess(n, DUE, at(minutes=15)).credit, assess(n, DUE, at(minutes=15, seconds=1)).credit) == (1.0, 0.0)


def test_credit_schedule_prairielearn_style():
    """100% until the due time, 50% until a week after (absolute date), 25% until two
    weeks after (relative), nothing later; each limit inclusive."""
    week = DUE + dt.timedelta(days=7)
    p = LatePolicy("schedule", schedule=(Limit(0.5, until=week), Limit(0.25, days=14)))
    assert assess(p, DUE, DUE).credit == 1.0
    assert assess(p, DUE, DUE + S).credit == 0.5
    assert assess(p, DUE, week).credit == 0.5
    assert assess(p, DUE, week + S).credit == 0.25
    assert assess(p, DUE, DUE + dt.timedelta(days=14)).credit == 0.25
    assert assess(p, DUE, DUE + dt.timedelta(days=14) + S).credit == 0.0
    # an extension of 3 days moves the absolute step with it
    new_due = DUE + dt.timedelta(days=3)
    assert assess(p, new_due, week + S, shift=dt.timedelta(days=3)).credit == 0.5


@pytest.mark.parametrize("offset", [dt.timedelta(0), dt.timedelta(hours=5, minutes=30),
                                    dt.timedelta(hours=-7), dt.timedelta(hours=14),
                                    dt.timedelta(hours=-12), dt.timedelta(hours=5, minutes=45)])
def test_time_zones_are_instants(offset):
    """One instant written in any fixed offset (no DST rules involved) gives the same
    lateness: the due time in +03:00, the submission in another zone."""
    tz = dt.timezone(offset)
    for delta, credit in ((dt.timedelta(0), 1.0), (S, 0.9), (dt.timedelta(days=2), 0.8)):
        when = (DUE + delta).astimezone(tz)
        assert assess(PER_DAY, DUE, when).credit == pytest.approx(credit)
        text = when.isoformat()
        assert parse_instant(text) == DUE + delta, text


def test_penalty_points_hand_computed():
    assert penalty_points(11.12, assess(PER_DAY, DUE, at(days=2, minutes=17))) == 3.34  # 0.3 × 11.12
    assert penalty_points(21, assess(PER_DAY, DUE, at(seconds=1))) == 2.1
    assert penalty_points(0, assess(PER_DAY, DUE, at(days=9))) == 0.0
    assert penalty_points(7, assess(LatePolicy("none"), DUE, at(seconds=1))) == 7.0


@settings(max_examples=300, deadline=None)
@given(a=st.integers(-10**7, 10**7), b=st.integers(-10**7, 10**7),
       penalty=st.floats(0.01, 1), floor=st.floats(0, 1), grace=st.integers(0, 3600))
def test_credit_never_rises_with_lateness(a, b, penalty, floor, grace):
    """Later is never better; credit stays in [floor, 1]; on time iff within grace."""
    p = LatePolicy("per_hour", penalty=penalty, floor=floor, grace_s=grace)
    early, late = sorted((a, b))
    ca = assess(p, DUE, DUE + dt.timedelta(seconds=early)).credit
    cb = assess(p, DUE, DUE + dt.timedelta(seconds=late)).credit
    assert cb <= ca
    assert min(floor, 1) - 1e-9 <= cb <= 1
    assert (assess(p, DUE, DUE + dt.timedelta(seconds=late)).credit == 1) >= (late <= grace)


@pytest.mark.parametrize("text", [
    "2026-10-01T23:59:00", "2026-10-01 23:59", "yesterday", "", "2026-10-01T23:59:00+25:00",
    "2026-13-01T00:00:00Z", "9999-01-01T00:00:00Z", "2026-10-01T23:59:00 MSK",
    "2026-10-01T23:59:00Z" + " " * 100, "٢٠٢٦-10-01T23:59:00Z", "2026-10-01T23:59:00+03:00\n1",
])
def test_garbage_times_are_not_instants(text):
    assert parse_instant(text) is None


def test_nbgrader_and_iso_times():
    assert parse_instant("2026-10-01 20:59:00.000000 UTC") == DUE
    assert parse_instant("2026-10-01T20:59:00Z") == DUE
    assert parse_instant("2026-10-01T23:59:00.000+0300") == DUE
    assert parse_instant("  2026-10-01T17:29:00-03:30\n") == DUE


def test_naive_due_time_refused_in_one_line():
    with pytest.raises(PolicyError) as err:
        parse_due(dt.datetime(2026, 10, 1, 23, 59))
    assert "\n" not in str(err.value) and "time zone" in str(err.value)
    with pytest.raises(PolicyError):
        parse_due("2026-10-01T23:59:00")
    assert parse_due("2026-10-01T23:59:00+03:00") == DUE


@pytest.mark.parametrize(("raw", "word"), [
    ({"policy": "per_week"}, "policy"), ({"policy": "per_day"}, "penalty"),
    ({"policy": "per_day", "penalty": 1.5}, "penalty"), ({"grace": 5}, "grace"),
    ({"policy": "schedule"}, "schedule"), ({"policy": "schedule", "schedule": [{"credit": 1}]}, "until"),
    ({"policy": "schedule", "schedule": [{"days": 3, "credit": 0.5, "extra": 1}]}, "extra"),
    ({"grace_minutes": -1}, "grace_minutes"),
])
def test_bad_policies_name_the_key(raw, word):
    with pytest.raises(PolicyError) as err:
        parse_policy(raw, "late")
    assert word in str(err.value) and "\n" not in str(err.value)


def test_timestamp_files_are_bounded_and_strict(tmp_path):
    """timestamp.txt is the student's: garbage, a huge file, a FIFO or a link is an
    unreadable time (a flag), never on time; nbgrader's own format reads."""
    import os

    d = tmp_path
    (d / "ok").mkdir()
    (d / "ok" / "timestamp.txt").write_text("2026-10-01 20:59:00.000000 UTC\n")
    assert read_timestamp(d / "ok" / "timestamp.txt").when == DUE
    cases = {"garbage": b"\xff\xfe" * 10, "huge": b"2026-10-01 20:59:00 UTC" + b" " * 10**6,
             "naive": b"2026-10-01 20:59:00", "empty": b""}
    for name, data in cases.items():
        (d / name).mkdir()
        (d / name / "timestamp.txt").write_bytes(data)
        got = read_timestamp(d / name / "timestamp.txt")
        assert got.when is None and got.problem == "unreadable", name
    (d / "fifo").mkdir()
    os.mkfifo(d / "fifo" / "timestamp.txt")
    assert read_timestamp(d / "fifo" / "timestamp.txt").problem == "unreadable"
    (d / "link").mkdir()
    (d / "link" / "timestamp.txt").symlink_to(d / "ok" / "timestamp.txt")
    assert read_timestamp(d / "link" / "timestamp.txt").when is None
    assert read_timestamp(d / "none.txt").problem == "missing"


def test_gradescope_metadata_times():
    """created_at is the submission time; a user's own assignment.due_date (an extension)
    wins over the assignment's due_date (Gradescope's submission_metadata.json)."""
    meta = {"created_at": "2026-10-01T13:59:01.000000-07:00",
            "assignment": {"due_date": "2026-10-01T13:59:00.000000-07:00",
                           "late_due_date": "2026-10-05T13:59:00.000000-07:00"},
            "users": [{"email": "a@example.edu", "assignment": {
                "due_date": "2026-10-03T13:59:00.000000-07:00"}}]}
    sub, due = gradescope_times(meta)
    assert sub.when == DUE + S and sub.source == "gradescope"
    assert due == DUE + dt.timedelta(days=2)
    meta["users"] = [{"email": "a@example.edu"}]
    assert gradescope_times(meta)[1] == DUE
    assert gradescope_times({"created_at": "soon"})[0].problem == "unreadable"
    assert gradescope_times({})[0].problem == "missing"


def test_lateness_note_in_russian_and_override_text_is_inert():
    """The student's note exists in both languages; an override reason is plain text in
    the CSV (no formula) and on the page (escaped by the templates' autoescape)."""
    import datetime as dt

    from convpset.autograder.lateness import LatePolicy
    from convpset.autograder.outputs import grades_csv
    from convpset.autograder.overrides import Override
    from convpset.autograder.results import ProblemResult, StudentResult
    from convpset.autograder.term import Deadline, StudentTerm, SubmittedAt, apply
    from convpset.problems.base import PartResult

    due = dt.datetime(2026, 10, 1, 20, 59, tzinfo=dt.UTC)
    part = PartResult("W_1", 1.0, 4.0, "wrong", {"en": "no", "ru": "нет"})
    r = StudentResult("s001", "conv1", "/x/s001.ipynb", "", (ProblemResult(1, "f", 1, (part,)),))
    hostile = '=HYPERLINK("http://evil","x") <script>alert(1)</script>'
    t = StudentTerm(Deadline(due, LatePolicy("per_hour", penalty=0.25), due),
                    SubmittedAt(due + dt.timedelta(hours=1, seconds=1), "timestamp.txt"),
                    (Override("conv1", "s001", "W_1", "set", 3.0, hostile, "причина"),))
    out = apply(r, t)
    # 2 started hours: 50 %; the override first (3 of 4), then the penalty
    assert out.raw_score == 3.0 and out.penalty == 1.5 and out.score == 1.5
    late = out.notes[0]
    assert "опоздание 0 д 1 ч 1 мин" in late["ru"] and "50%" in late["ru"]
    assert "per started hour" in late["en"]
    assert "причина" in out.problems[0].parts[0].message["ru"]
    cells = grades_csv([out], ["W_1"]).splitlines()[1]
    assert "=HYPERLINK" not in cells.split(",")[0] and ",=" not in cells


