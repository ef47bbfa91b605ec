"""Instructor overrides of a part's score that survive every later ``grade``.

One store per course: ``COURSE/overrides.jsonl``, an append-only history (one JSON
object per change: who, when, why, from where). The active overrides are what the
history adds up to: the last ``set``/``adjust`` of a (assignment, student, part) wins,
a ``remove`` ends it. Nothing is ever rewritten, so the file *is* the audit trail.

Two forms, both applied to the score the key gave (the raw score), so that a regrade or
a key change never undoes them and never applies them twice:

* ``set``    -- the part scores ``points`` whatever the key says;
* ``adjust`` -- the part scores raw + ``points`` (``+0.5``, ``-1``), within [0, max].

Three sources reach the same store: ``pset override`` (``cli``), a bulk
``overrides.csv`` (``csv``), and a formgrader manual score read back from nbgrader's
gradebook (``formgrader``, see :mod:`convpset.integrations.nbgrader.gradebook`).
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOG = "overrides.jsonl"
SOURCES = ("cli", "csv", "formgrader")
MODES = ("set", "adjust")
MAX_REASON = 500
CSV_COLUMNS = ("assignment", "student", "part", "points", "reason")
_POINTS = re.compile(r"\s*(?P<sign>[+-])?\s*(?P<num>\d+(?:\.\d+)?|\.\d+)\s*")


def _say(key: str, **ctx: Any) -> str:
    from convpset.problems.text import render

    return render("en", f"term.{key}", **ctx)


class OverrideError(ValueError):
    """A bad override request or store line (the message names it)."""


@dataclass(frozen=True)
class Override:
    assignment: str
    student: str
    part: str
    mode: str                 # "set" | "adjust"
    points: float
    reason: str
    reason_ru: str = ""
    by: str = ""
    at: str = ""              # UTC, ISO 8601
    source: str = "cli"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.assignment, self.student, self.part

    def value(self, raw: float, max_score: float) -> float:
        """The part's score under this override, within [0, max]."""
        x = self.points if self.mode == "set" else raw + self.points
        return round(min(max(x, 0.0), max_score), 4)

    def reason_in(self, lang: str) -> str:
        return self.reason_ru if lang == "ru" and self.reason_ru else self.reason

    def shown(self) -> str:
        """``3`` or ``+0.5``: the points as the instructor typed them."""
        return f"{self.points:+g}" if self.mode == "adjust" else f"{self.points:g}"


def parse_points(text: str) -> tuple[str, float]:
    """``"2"`` -> ("set", 2.0); ``"+0.5"``/``"-1"`` -> ("adjust", ±x). OverrideError
    for anything else (no NaN, no inf, no exponent)."""
    m = _POINTS.fullmatch(str(text))
    if m is None:
        raise OverrideError(_say("bad_points", found=repr(str(text))[:60]))
    value = float(m["num"])
    if m["sign"]:
        return "adjust", value if m["sign"] == "+" else -value
    return "set", value


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def who() -> str:
    """The instructor's login, for the history (never a secret; "unknown" if unset)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


class OverrideStore:
    """The history file of a course and what it adds up to."""

    def __init__(self, course_root: Path) -> None:
        self.path = Path(course_root) / LOG

    def history(self) -> list[dict[str, Any]]:
        """Every change, oldest first. A line that is not ours (a hand edit gone wrong)
        is an OverrideError naming the line: an override is never silently dropped."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                if not isinstance(raw, dict) or raw.get("action") not in (*MODES, "remove"):
                    raise ValueError
                for k in ("assignment", "student", "part"):
                    if not isinstance(raw.get(k), str):
                        raise ValueError
                if raw["action"] != "remove":
                    pts = raw.get("points")
                    if isinstance(pts, bool) or not isinstance(pts, int | float) \
                            or not math.isfinite(pts):
                        raise ValueError
            except ValueError:
                raise OverrideError(_say("bad_store_line", path=str(self.path), line=i)) from None
            out.append(raw)
        return out

    @staticmethod
    def _override(raw: dict[str, Any]) -> Override:
        return Override(raw["assignment"], raw["student"], raw["part"], raw["action"],
                        float(raw["points"]), str(raw.get("reason", "")),
                        str(raw.get("reason_ru", "")), str(raw.get("by", "")),
                        str(raw.get("at", "")), str(raw.get("source", "cli")))

    def _replay(self) -> tuple[dict[tuple[str, str, str], Override],
                               dict[tuple[str, str, str], Override]]:
        active: dict[tuple[str, str, str], Override] = {}
        removed: dict[tuple[str, str, str], Override] = {}
        for raw in self.history():
            key = (raw["assignment"], raw["student"], raw["part"])
            if raw["action"] == "remove":
                if key in active:
                    removed[key] = active.pop(key)
            else:
                active[key] = self._override(raw)
                removed.pop(key, None)
        return active, removed

    def active(self, assignment: str | None = None) -> dict[tuple[str, str, str], Override]:
        """The overrides in force (of one assignment, or all), by (assignment, student, part)."""
        act = self._replay()[0]
        return {k: v for k, v in act.items() if assignment is None or k[0] == assignment}

    def removed(self, assignment: str) -> dict[tuple[str, str], Override]:
        """The last override of each part that was removed and not set again: what
        ``grade`` clears from nbgrader's gradebook (it wrote it there)."""
        return {(k[1], k[2]): v for k, v in self._replay()[1].items() if k[0] == assignment}

    def for_student(self, assignment: str, student: str) -> tuple[Override, ...]:
        return tuple(v for k, v in sorted(self.active(assignment).items()) if k[1] == student)

    def _append(self, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        if not text:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def add(self, overrides: Iterable[Override]) -> None:
        rows = []
        for o in overrides:
            d = asdict(o)
            d["action"] = d.pop("mode")
            d["at"] = d["at"] or now_utc()
            d["by"] = d["by"] or who()
            rows.append(d)
        self._append(rows)

    def remove(self, assignment: str, student: str, part: str, reason: str = "",
               by: str = "", source: str = "cli") -> bool:
        """End an override; False when there is none to end."""
        if (assignment, student, part) not in self.active(assignment):
            return False
        self._append([{"action": "remove", "assignment": assignment, "student": student,
                       "part": part, "reason": reason, "by": by or who(), "at": now_utc(),
                       "source": source}])
        return True


def check_reason(reason: str) -> str:
    """An override needs a reason (the student sees it): one line, bounded."""
    text = " ".join(str(reason or "").split())
    if not text:
        raise OverrideError(_say("reason_needed"))
    return text[:MAX_REASON]


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a bulk ``overrides.csv`` (columns assignment, student, part, points,
    reason; optional reason_ru), each with its line number; OverrideError names a
    missing column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise OverrideError(_say("csv_unreadable", path=str(path), error=err.strerror or "")) from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise OverrideError(_say("csv_columns", path=str(path), missing=", ".join(missing),
                                 columns=", ".join(CSV_COLUMNS)))
    rows = []
    for row in reader:
        clean = {k: (v or "").strip() for k, v in row.items() if isinstance(k, str)}
        clean["line"] = str(reader.line_num)
        rows.append(clean)
    return rows
