"""Deadlines and late policies: pure functions over aware datetimes.

A deadline is an instant (ISO 8601 *with* an offset: a naive time means a different
instant in every time zone, so it is refused). A late policy says how much of the
score a submission keeps when it arrives after that instant:

* ``none``     -- late work keeps nothing (credit 0);
* ``per_day``  -- ``penalty`` (a share of the score) per *started* day after the due
  time, never below ``floor`` (the lowest credit kept);
* ``per_hour`` -- the same per started hour;
* ``schedule`` -- PrairieLearn-style credit by date: a list of ``(limit, credit)``; a
  submission at or before a limit keeps that credit (the first limit it meets), after
  the last one it keeps nothing.

``grace`` (seconds) makes submissions up to that long after the due time count as on
time; past the grace period lateness is counted from the due time itself (a submission
one minute after a 15-minute grace is 16 minutes, one started hour, late).

Exactly at the due time is on time; one microsecond after is late. Nothing here reads
a clock, a file or a configuration: callers pass the instants (see :mod:`.term`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("none", "per_day", "per_hour", "schedule")
POLICY_KEYS = ("policy", "penalty", "floor", "grace_minutes", "schedule")
SCHEDULE_KEYS = ("until", "days", "credit")
MAX_TIME_CHARS = 64          # an instant is ~32 characters; anything longer is garbage
YEARS = (1970, 2200)         # instants outside are garbage, not far-future deadlines
PERIOD = {"per_day": dt.timedelta(days=1), "per_hour": dt.timedelta(hours=1)}

# ISO 8601 as pset.toml, CSV files and nbgrader write it: date, time to the second or
# finer, and an offset (Z, +03:00, -0530) -- or nbgrader's " UTC" suffix.
_INSTANT = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
    r"\s*(?P<zone>Z|UTC|[+-]\d{2}:?\d{2})", re.ASCII)


class PolicyError(ValueError):
    """A deadline or late policy that cannot be used; the message (English, from the
    ``course`` text table) says what was found and what is accepted."""


def _say(key: str, **ctx: Any) -> str:
    from convpset.problems.text import render

    return render("en", f"course.{key}", **ctx)


def parse_instant(text: str) -> dt.datetime | None:
    """An aware datetime from ``text``, or None when it is not a strict ISO 8601 instant
    with an offset (naive, a zone name other than UTC, too long, out of range, garbage).

    Timestamps can come from a student's folder: the text is bounded and matched whole
    before any conversion, so no input makes this slow or raise.
    """
    if not isinstance(text, str) or len(text) > MAX_TIME_CHARS:
        return None
    m = _INSTANT.fullmatch(text.strip())
    if m is None:
        return None
    zone = m["zone"]
    zone = "+00:00" if zone in ("Z", "UTC") else zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        when = dt.datetime.fromisoformat(f"{m['date']}T{m['time']}{zone}")
    except ValueError:
        return None
    if when.utcoffset() is None or abs(when.utcoffset()) > dt.timedelta(hours=14):
        return None
    if not YEARS[0] <= when.year < YEARS[1]:
        return None
    return when


def parse_due(raw: Any) -> dt.datetime:
    """A deadline from pset.toml (a TOML offset datetime, or a string): aware, or
    PolicyError (a naive time is refused: it would mean another instant per zone)."""
    if isinstance(raw, dt.datetime):
        if raw.tzinfo is None or raw.utcoffset() is None:
            raise PolicyError(_say("due_naive", found=raw.isoformat()))
        return raw
    if isinstance(raw, str):
        when = parse_instant(raw)
        if when is not None:
            return when
        if _naive(raw):
            raise PolicyError(_say("due_naive", found=raw))
    raise PolicyError(_say("due_format", found=repr(raw)[:80]))


def _naive(text: str) -> bool:
    try:
        return dt.datetime.fromisoformat(text.strip()).tzinfo is None
    except ValueError:
        return False


@dataclass(frozen=True)
class Limit:
    """One step of a credit schedule: until ``until`` (absolute), or ``days`` after
    the due time, the submission keeps ``credit``."""

    credit: float
    until: dt.datetime | None = None
    days: float | None = None

    def instant(self, due: dt.datetime, shift: dt.timedelta) -> dt.datetime:
        if self.until is not None:
            return self.until + shift
        return due + dt.timedelta(days=float(self.days or 0.0))


@dataclass(frozen=True)
class LatePolicy:
    kind: str = "none"
    penalty: float = 0.0            # per started period (per_day, per_hour)
    floor: float = 0.0              # lowest credit share kept (per_day, per_hour)
    schedule: tuple[Limit, ...] = ()
    grace_s: float = 0.0

    def describe(self) -> dict[str, Any]:
        """What the rule is, as plain data (grades, pages, the report)."""
        return {"policy": self.kind, "penalty": self.penalty, "floor": self.floor,
                "grace_minutes": self.grace_s / 60,
                "schedule": [{"credit": s.credit,
                              **({"until": s.until.isoformat()} if s.until else {"days": s.days})}
                             for s in self.schedule]}


@dataclass(frozen=True)
class Lateness:
    """How late a submission is and what it keeps.

    ``rule``: ``on_time``, ``grace`` (late within the grace period: full credit), or the
    policy's kind that decided the credit. ``periods``: started days/hours late.
    """

    late_s: float
    credit: float
    rule: str
    periods: int = 0

    @property
    def late(self) -> bool:
        return self.late_s > 0


def _share(raw: Any, key: str, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 1:
        raise PolicyError(f"{where}: " + _say("late_share", setting=key, found=repr(raw)[:80]))
    return float(raw)


def _unknown(raw: Mapping[str, Any], allowed: tuple[str, ...], table: str) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise PolicyError(_say("unknown_table_key", name=repr(unknown[0]), table=table,
                               allowed=", ".join(allowed)))


def parse_policy(raw: Any, table: str, base: LatePolicy | None = None) -> LatePolicy:
    """A late policy from a pset.toml table (``[late]`` or ``[assignments.X.late]``);
    keys left out come from ``base`` (the course-wide policy). PolicyError names the key
    and ``table``."""
    if not isinstance(raw, Mapping):
        raise PolicyError(_say("late_table", table=table))
    _unknown(raw, POLICY_KEYS, table)
    base = base or LatePolicy()
    kind = raw.get("policy", base.kind)
    if kind not in KINDS:
        raise PolicyError(f"[{table}]: " + _say("late_kind", kinds=", ".join(KINDS),
                                                found=repr(kind)[:80]))
    penalty = _share(raw["penalty"], "penalty", f"[{table}]") if "penalty" in raw else base.penalty
    floor = _share(raw["floor"], "floor", f"[{table}]") if "floor" in raw else base.floor
    grace = raw.get("grace_minutes", base.grace_s / 60)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace <= 60 * 24 * 30:
        raise PolicyError(f"[{table}]: " + _say("late_grace", found=repr(grace)[:80]))
    schedule = base.schedule
    if "schedule" in raw:
        schedule = tuple(_limit(x, f"{table}.schedule[{i}]") for i, x in enumerate(raw["schedule"])) \
            if isinstance(raw["schedule"], list) else ()
        if not schedule:
            raise PolicyError(f"[{table}]: " + _say("late_schedule_empty"))
    if kind in PERIOD and penalty <= 0:
        raise PolicyError(f"[{table}]: " + _say("late_penalty_needed", kind=kind))
    if kind == "schedule" and not schedule:
        raise PolicyError(f"[{table}]: " + _say("late_schedule_empty"))
    return LatePolicy(kind, penalty, floor, schedule, float(grace) * 60)


def _limit(raw: Any, table: str) -> Limit:
    if not isinstance(raw, Mapping):
        raise PolicyError(_say("late_schedule_entry", table=table))
    _unknown(raw, SCHEDULE_KEYS, table)
    if ("until" in raw) == ("days" in raw) or "credit" not in raw:
        raise PolicyError(_say("late_schedule_entry", table=table))
    credit = _share(raw["credit"], "credit", f"[{table}]")
    if "until" in raw:
        try:
            return Limit(credit, until=parse_due(raw["until"]))
        except PolicyError as err:
            raise PolicyError(f"[{table}] until: {err}") from None
    days = raw["days"]
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 366:
        raise PolicyError(f"[{table}]: " + _say("late_days", found=repr(days)[:80]))
    return Limit(credit, days=float(days))


def _ceil_periods(late: dt.timedelta, period: dt.timedelta) -> int:
    """Started periods: exact integer arithmetic on microseconds (no float rounding at
    a boundary: exactly 1 day late is 1 started day, 1 day and 1 µs is 2)."""
    us = late // dt.timedelta(microseconds=1)
    per = period // dt.timedelta(microseconds=1)
    return -(-us // per)


def assess(policy: LatePolicy, due: dt.datetime, submitted: dt.datetime,
           shift: dt.timedelta = dt.timedelta(0)) -> Lateness:
    """What ``submitted`` keeps under ``policy`` for a deadline ``due``.

    ``shift``: how far this student's deadline was moved by an extension; an absolute
    schedule moves with it (a week's extension keeps every step a week later).
    """
    late = submitted - due
    late_s = late.total_seconds()
    if late <= dt.timedelta(0):
        return Lateness(late_s, 1.0, "on_time")
    if late <= dt.timedelta(seconds=policy.grace_s):
        return Lateness(late_s, 1.0, "grace")
    if policy.kind == "none":
        return Lateness(late_s, 0.0, "none")
    if policy.kind in PERIOD:
        n = _ceil_periods(late, PERIOD[policy.kind])
        credit = max(policy.floor, 1.0 - n * policy.penalty)
        return Lateness(late_s, round(max(0.0, credit), 9), policy.kind, n)
    steps = sorted(((s.instant(due, shift), s.credit) for s in policy.schedule),
                   key=lambda x: x[0])
    for limit, credit in steps:
        if submitted <= limit:
            return Lateness(late_s, credit, "schedule")
    return Lateness(late_s, 0.0, "schedule")


def penalty_points(raw_score: float, lateness: Lateness) -> float:
    """Points taken for lateness: the lost share of the score, to the cent, never more
    than the score (a negative raw score does not exist; guard anyway)."""
    if raw_score <= 0 or lateness.credit >= 1:
        return 0.0
    return round(min(raw_score, raw_score * (1.0 - lateness.credit)), 2)


def late_text(late_s: float) -> tuple[int, int, int]:
    """(days, hours, minutes) of a lateness, minutes rounded up (a second late shows as
    a minute: never "0 minutes late")."""
    minutes = math.ceil(max(0.0, late_s) / 60)
    return minutes // (24 * 60), minutes // 60 % 24, minutes % 60
