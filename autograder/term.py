"""Running a term: each student's deadline (extensions included), when they submitted
(from where each workflow keeps it), and the overrides in force -- one
:class:`StudentTerm` per student -- and :func:`apply`, which turns the key's result into
the final one every output shows.

Where a submission time comes from, per layout (:func:`submission_time`):

* nbgrader (``submitted/SID/A/``): ``timestamp.txt``, written by ``nbgrader collect``
  from the student's submit (student-controlled: read bounded, parsed strictly);
* a folder per student or a flat folder of LMS downloads: the ``submitted_at`` column of
  ``SUBMISSIONS/submitted_at.csv`` (``student_id,submitted_at``) when that file exists,
  else the notebook's modification time (``mtime``: what an LMS zip or a copy kept);
* Gradescope: ``created_at`` of ``submission_metadata.json`` (:func:`gradescope_times`).

A time that is missing or unreadable is never "on time": the student is flagged
``late_unknown`` and keeps the raw score until the instructor decides (an override).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convpset.autograder.lateness import (
    Lateness,
    LatePolicy,
    PolicyError,
    assess,
    late_text,
    parse_due,
    parse_instant,
    penalty_points,
)
from convpset.autograder.overrides import Override, OverrideError, OverrideStore, parse_points
from convpset.autograder.results import ProblemResult, StudentResult
from convpset.autograder.untrusted import StudentFileError, read_bounded
from convpset.notebooks.course import Course, CourseError
from convpset.problems.base import PartResult
from convpset.problems.text import render, render_all

EXTENSIONS = "extensions.csv"
EXTENSION_COLUMNS = ("student", "assignment", "due", "reason")
ROSTER_DUE = "due_"            # roster column ``due_<assignment>``: that student's due time
SUBMITTED_AT = "submitted_at.csv"
TIMESTAMP_BYTES = 1_000
TABLE_BYTES = 5_000_000
UNKNOWN = "late_unknown"
LATE = "late"


@dataclass(frozen=True)
class Deadline:
    due: dt.datetime | None            # this student's (an extension's, if any)
    policy: LatePolicy
    base_due: dt.datetime | None = None   # the assignment's
    extension: str | None = None       # reason, when an extension applies

    @property
    def shift(self) -> dt.timedelta:
        if self.due is None or self.base_due is None:
            return dt.timedelta(0)
        return self.due - self.base_due


@dataclass(frozen=True)
class SubmittedAt:
    when: dt.datetime | None
    source: str                 # timestamp.txt | submitted_at.csv | mtime | gradescope | none
    problem: str = ""           # "", "missing", "unreadable"


@dataclass(frozen=True)
class StudentTerm:
    deadline: Deadline
    submitted: SubmittedAt
    overrides: tuple[Override, ...] = ()

    def digest(self) -> str:
        """Changes whenever the final result could: a new due time, policy, extension,
        submission time or override (``grade`` then rebuilds that student's row)."""
        d = self.deadline
        data = [None if d.due is None else d.due.isoformat(), d.policy.describe(), d.extension,
                None if self.submitted.when is None else self.submitted.when.isoformat(),
                self.submitted.source, self.submitted.problem,
                [(o.part, o.mode, o.points, o.reason, o.reason_ru, o.at) for o in self.overrides]]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- deadlines
def _course_say(key: str, **ctx: Any) -> str:
    return render("en", f"course.{key}", **ctx)


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]] | None:
    """(header, [(line, row)]) of an instructor's CSV file, or None when absent."""
    try:
        text = read_bounded(path, TABLE_BYTES).decode("utf-8-sig")
    except StudentFileError as err:
        if err.reason == "missing":
            return None
        raise CourseError(_course_say("table_unreadable", path=str(path), reason=err.reason)) from None
    except UnicodeDecodeError:
        raise CourseError(_course_say("table_unreadable", path=str(path), reason="not UTF-8")) from None
    reader = csv.DictReader(text.splitlines())
    rows = [(reader.line_num, {k: (v or "").strip() for k, v in r.items() if isinstance(k, str)})
            for r in reader]
    return list(reader.fieldnames or []), rows


def load_extensions(course: Course) -> dict[tuple[str, str], tuple[dt.datetime, str]]:
    """(assignment, student) -> (new due time, reason): ``extensions.csv`` of the course
    (student, assignment, due, reason) and the roster's ``due_<assignment>`` columns.
    Every bad row is a CourseError line (file, line, what); nothing is guessed."""
    out: dict[tuple[str, str], tuple[dt.datetime, str]] = {}
    errors: list[str] = []
    ids = {s.student_id for s in course.roster()}

    def put(path: Path, line: int, student: str, assignment: str, due: str, reason: str) -> None:
        if assignment not in course.assignments:
            errors.append(_course_say("extension_assignment", path=str(path), line=line,
                                      assignment=repr(assignment)[:80],
                                      known=", ".join(sorted(course.assignments))))
            return
        if student not in ids:
            errors.append(_course_say("extension_student", path=str(path), line=line,
                                      student=repr(student)[:80]))
            return
        try:
            when = parse_due(due)
        except PolicyError as err:
            errors.append(f"{path}: line {line}: {err}")
            return
        if (assignment, student) in out:
            errors.append(_course_say("extension_twice", path=str(path), line=line,
                                      student=student, assignment=assignment))
            return
        out[(assignment, student)] = (when, reason)

    ext = _csv_rows(course.root / EXTENSIONS)
    if ext is not None:
        header, rows = ext
        missing = [c for c in EXTENSION_COLUMNS[:3] if c not in header]
        if missing:
            raise CourseError(_course_say("extension_columns", path=str(course.root / EXTENSIONS),
                                          missing=", ".join(missing),
                                          columns=", ".join(EXTENSION_COLUMNS)))
        for line, row in rows:
            put(course.root / EXTENSIONS, line, row.get("student", ""), row.get("assignment", ""),
                row.get("due", ""), row.get("reason", ""))
    roster = _csv_rows(course.roster_path)
    if roster is not None:
        header, rows = roster
        id_col = "student_id" if "student_id" in header else "id"
        for col in (h for h in header if h.startswith(ROSTER_DUE)):
            for line, row in rows:
                if row.get(col):
                    put(course.roster_path, line, row.get(id_col, ""), col[len(ROSTER_DUE):],
                        row[col], "")
    if errors:
        raise CourseError("\n".join(errors))
    return out


def deadline(course: Course, assignment: str, student: str,
             extensions: Mapping[tuple[str, str], tuple[dt.datetime, str]]) -> Deadline:
    spec = course.assignment(assignment)
    policy = spec.late or LatePolicy()
    ext = extensions.get((assignment, student))
    if ext is None:
        return Deadline(spec.due, policy, spec.due)
    return Deadline(ext[0], policy, spec.due, ext[1] or "—")


# ----------------------------------------------------------------------------- submission times
def read_timestamp(path: Path) -> SubmittedAt:
    """nbgrader's ``timestamp.txt`` (``2026-12-01 10:00:00.000000 UTC`` or ISO 8601 with
    an offset): a regular file of at most TIMESTAMP_BYTES, one strict instant."""
    try:
        text = read_bounded(path, TIMESTAMP_BYTES).decode("utf-8")
    except StudentFileError as err:
        return SubmittedAt(None, "timestamp.txt", "missing" if err.reason == "missing" else "unreadable")
    except UnicodeDecodeError:
        return SubmittedAt(None, "timestamp.txt", "unreadable")
    when = parse_instant(text.strip())
    return SubmittedAt(when, "timestamp.txt", "" if when else "unreadable")


def times_table(folder: Path) -> dict[str, SubmittedAt]:
    """``submitted_at.csv`` of a submissions folder (student_id, submitted_at), if any."""
    got = _csv_rows(folder / SUBMITTED_AT)
    if got is None:
        return {}
    header, rows = got
    if "submitted_at" not in header or not ({"student_id", "student"} & set(header)):
        raise CourseError(_course_say("times_columns", path=str(folder / SUBMITTED_AT)))
    out = {}
    for _, row in rows:
        sid = row.get("student_id") or row.get("student") or ""
        when = parse_instant(row.get("submitted_at", ""))
        out[sid] = SubmittedAt(when, SUBMITTED_AT, "" if when else "unreadable")
    return out


def submission_time(sub: Any, table: Mapping[str, SubmittedAt]) -> SubmittedAt:
    """When ``sub`` (a :class:`~.submissions.Submission`) was handed in; see module doc."""
    if sub.path is None:
        return SubmittedAt(None, "none", "missing")
    if sub.layout == "nbgrader":
        return read_timestamp(Path(sub.path).parent / "timestamp.txt")
    if sub.student_id in table:
        return table[sub.student_id]
    try:
        st = os.lstat(sub.path)
        when = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
    except (OSError, ValueError, OverflowError):
        return SubmittedAt(None, "mtime", "unreadable")
    return SubmittedAt(when, "mtime")


def gradescope_times(metadata: Any) -> tuple[SubmittedAt, dt.datetime | None]:
    """(``created_at``, the submitting user's own due date if Gradescope gives one --
    an extension -- else the assignment's ``due_date``) from submission_metadata.json."""
    meta = metadata if isinstance(metadata, dict) else {}
    raw = meta.get("created_at")
    when = parse_instant(raw) if isinstance(raw, str) else None
    sub = SubmittedAt(when, "gradescope", "" if when else ("missing" if raw is None else "unreadable"))
    due = None
    users = meta.get("users") if isinstance(meta.get("users"), list) else []
    for u in users[:1]:
        a = u.get("assignment") if isinstance(u, dict) else None
        if isinstance(a, dict) and isinstance(a.get("due_date"), str):
            due = parse_instant(a["due_date"])
    if due is None:
        a = meta.get("assignment") if isinstance(meta.get("assignment"), dict) else {}
        due = parse_instant(a["due_date"]) if isinstance(a.get("due_date"), str) else None
    return sub, due


# ----------------------------------------------------------------------------- one batch
@dataclass(frozen=True)
class TermContext:
    """What a batch needs to build every student's :class:`StudentTerm` (read once)."""

    extensions: Mapping[tuple[str, str], tuple[dt.datetime, str]]
    times: Mapping[str, SubmittedAt]
    store: OverrideStore
    # (assignment, student) -> the overrides in force: the history is replayed once per
    # batch, not once per student
    overrides: Mapping[tuple[str, str], tuple[Override, ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, course: Course, folder: Path | None = None) -> TermContext:
        store = OverrideStore(course.root)
        try:
            active = store.active()
        except OverrideError as err:
            raise CourseError(str(err)) from None
        grouped: dict[tuple[str, str], list[Override]] = {}
        for (a, sid, _), o in sorted(active.items()):
            grouped.setdefault((a, sid), []).append(o)
        return cls(load_extensions(course), times_table(folder) if folder else {}, store,
                   {k: tuple(v) for k, v in grouped.items()})

    def for_submission(self, course: Course, assignment: str, sub: Any) -> StudentTerm:
        return StudentTerm(deadline(course, assignment, sub.student_id, self.extensions),
                           submission_time(sub, self.times),
                           self.overrides.get((assignment, sub.student_id), ()))


# ----------------------------------------------------------------------------- the final result
def _iso(when: dt.datetime | None) -> str:
    return "" if when is None else when.isoformat()


def _lateness_note(lang: str, t: StudentTerm, lat: Lateness | None, raw: float,
                   penalty: float) -> str:
    d = t.deadline
    days, hours, minutes = late_text(0 if lat is None else lat.late_s)
    pol = d.policy
    return render(lang, "term.late_note", rule=("unknown" if lat is None else lat.rule),
                  kind=pol.kind, due=_iso(d.due), submitted=_iso(t.submitted.when),
                  source=t.submitted.source, days=days, hours=hours, minutes=minutes,
                  penalty_share=round(pol.penalty * 100, 2), floor=round(pol.floor * 100, 2),
                  grace=round(pol.grace_s / 60, 2),
                  credit=round(100 * (1.0 if lat is None else lat.credit), 2),
                  raw=raw, lost=penalty, final=round(raw - penalty, 2),
                  extension=d.extension or "", periods=0 if lat is None else lat.periods)


def _override_parts(r: StudentResult, overrides: tuple[Override, ...]
                    ) -> tuple[tuple[ProblemResult, ...], dict[str, dict[str, Any]]]:
    by_part = {o.part: o for o in overrides}
    done: dict[str, dict[str, Any]] = {}
    problems = []
    for p in r.problems:
        parts = []
        for x in p.parts:
            o = by_part.get(x.part)
            if o is None:
                parts.append(x)
                continue
            value = o.value(x.score, x.max_score)
            msg = {lang: (f"{text}\n" if text else "") + render(
                       lang, "term.override_note", raw=x.score, value=value, max=x.max_score,
                       reason=o.reason_in(lang))
                   for lang, text in x.message.items()}
            parts.append(PartResult(x.part, value, x.max_score, x.status, msg, x.mistake))
            done[x.part] = {"raw": x.score, "score": value, "mode": o.mode, "points": o.points,
                            "reason": o.reason, "reason_ru": o.reason_ru, "by": o.by,
                            "at": o.at, "source": o.source}
        problems.append(replace(p, parts=tuple(parts)))
    return tuple(problems), done


def apply(r: StudentResult, t: StudentTerm) -> StudentResult:
    """The final result: overrides on their parts, then the late penalty on the total.

    The raw part scores stay in ``extra["term"]["overrides"]`` and the raw total in
    ``extra["term"]["raw_score"]``; ``penalty`` holds the points taken for lateness.
    A student who returned nothing (or whose files wait for the instructor) has no
    lateness; an override still applies to them.
    """
    problems, done = _override_parts(r, t.overrides)
    out = replace(r, problems=problems, penalty=0.0)
    raw = out.raw_score
    info: dict[str, Any] = {"digest": t.digest(), "raw_score": r.raw_score, "overrides": done,
                            "due": _iso(t.deadline.due), "base_due": _iso(t.deadline.base_due),
                            "extension": t.deadline.extension,
                            "submitted_at": _iso(t.submitted.when),
                            "time_source": t.submitted.source, "late": None}
    flags = list(out.flags)
    notes = list(out.notes)
    returned = r.path is not None and not {"no_submission", "owner_conflict",
                                           "owner_ambiguous"} & set(r.flags)
    penalty = 0.0
    if t.deadline.due is not None and returned:
        if t.submitted.when is None:
            flags.append(UNKNOWN)
            notes.insert(0, render_all("term.late_unknown", source=t.submitted.source,
                                       problem=t.submitted.problem or "missing",
                                       due=_iso(t.deadline.due)))
            info["late"] = {"rule": "unknown", "credit": None, "late_s": None}
        else:
            lat = assess(t.deadline.policy, t.deadline.due, t.submitted.when, t.deadline.shift)
            penalty = penalty_points(raw, lat)
            if lat.rule not in ("on_time", "grace"):
                flags.append(LATE)
            notes.insert(0, {lang: _lateness_note(lang, t, lat, raw, penalty)
                             for lang in ("en", "ru")})
            info["late"] = {"rule": lat.rule, "credit": lat.credit, "late_s": lat.late_s,
                            "periods": lat.periods, "policy": t.deadline.policy.describe()}
    if done:
        flags.append("override")
    extra = {**out.extra, "term": info}
    return replace(out, penalty=penalty, flags=tuple(dict.fromkeys(flags)), notes=tuple(notes),
                   extra=extra)


def term_digest(r: StudentResult) -> str | None:
    info = r.extra.get("term") if isinstance(r.extra, dict) else None
    return info.get("digest") if isinstance(info, dict) else None


def term_info(r: StudentResult) -> dict[str, Any]:
    info = r.extra.get("term") if isinstance(r.extra, dict) else None
    return info if isinstance(info, dict) else {}


# ----------------------------------------------------------------------------- overrides by hand
def make_override(course: Course, assignment: str, student: str, part: str, points: str,
                  reason: str, reason_ru: str = "", source: str = "cli",
                  by: str = "", at: str = "") -> Override:
    """An override checked against the course: a known assignment, a roster student, a
    part of that student's variant, points within [0, max] for ``set``. CourseError
    (one line) otherwise."""
    from convpset.autograder.overrides import check_reason
    from convpset.notebooks.variants import problems_for

    spec = course.assignment(assignment)
    if student not in {s.student_id for s in course.roster()}:
        raise CourseError(render("en", "term.not_on_roster", student=repr(student)[:80]))
    parts = {x.name: x.points for p in problems_for(course, spec, student) for x in p.parts()}
    if part not in parts:
        raise CourseError(render("en", "term.no_part", part=repr(part)[:80],
                                 assignment=assignment, known=", ".join(parts)))
    try:
        mode, value = parse_points(points)
        text = check_reason(reason)
    except OverrideError as err:
        raise CourseError(str(err)) from None
    if mode == "set" and not 0 <= value <= parts[part]:
        raise CourseError(render("en", "term.points_range", points=f"{value:g}",
                                 part=part, max=f"{parts[part]:g}"))
    return Override(assignment, student, part, mode, value, text,
                    " ".join(reason_ru.split())[:500], by, at, source)


def bulk_overrides(course: Course, path: Path) -> list[Override]:
    """Every row of a bulk ``overrides.csv`` as a checked override (source ``csv``); a
    bad row anywhere is a CourseError naming each bad line, and nothing is recorded."""
    from convpset.autograder.overrides import read_csv

    try:
        rows = read_csv(path)
    except OverrideError as err:
        raise CourseError(str(err)) from None
    made, errors = [], []
    for row in rows:
        try:
            made.append(make_override(course, row.get("assignment", ""), row.get("student", ""),
                                      row.get("part", ""), row.get("points", ""),
                                      row.get("reason", ""), row.get("reason_ru", ""), "csv"))
        except CourseError as err:
            errors.append(render("en", "term.csv_line", path=str(path), line=row["line"],
                                 error=str(err)))
    if errors:
        raise CourseError("\n".join(errors))
    return made


def report_context(results: Mapping[str, StudentResult], names: Mapping[str, str],
                   lang: str) -> dict[str, Any]:
    """The report's term section: who had an extension, who was late (and what it
    cost), every override in force -- student text left to the template to escape."""
    ext, late, over = [], [], []
    for sid, r in sorted(results.items()):
        info = term_info(r)
        if info.get("extension"):
            ext.append({"student": sid, "name": names.get(sid, ""), "due": info.get("due", ""),
                        "base_due": info.get("base_due", ""), "reason": info["extension"]})
        lat = info.get("late") if isinstance(info.get("late"), dict) else None
        if lat and lat.get("rule") not in (None, "on_time", "grace"):
            days, hours, minutes = late_text(lat.get("late_s") or 0)
            late.append({"student": sid, "name": names.get(sid, ""),
                         "submitted": info.get("submitted_at") or render(lang, "term.unknown_time"),
                         "late": "" if lat.get("late_s") is None else f"{days} d {hours} h {minutes} min",
                         "rule": lat.get("rule", ""),
                         "credit": "" if lat.get("credit") is None else f"{100 * lat['credit']:g}%",
                         "raw": f"{r.raw_score:g}", "penalty": f"{r.penalty:g}",
                         "final": f"{r.score:g}"})
        for part, o in sorted((info.get("overrides") or {}).items()):
            over.append({"student": sid, "name": names.get(sid, ""), "part": part,
                         "raw": f"{o.get('raw')}", "score": f"{o.get('score')}",
                         "reason": o.get("reason_ru") if lang == "ru" and o.get("reason_ru")
                         else o.get("reason", ""), "by": o.get("by", ""), "at": o.get("at", ""),
                         "source": o.get("source", "")})
    return {"extensions": ext, "late": late, "overrides": over}


def stale_students(course: Course, assignment: str,
                   results: Mapping[str, StudentResult]) -> list[str]:
    """Students whose recorded result no longer matches the course's term files: an
    override or an extension added, changed or removed (or a due time edited) since the
    last ``grade``. Commands that only read the journal (report, gradebook, exports) name
    them, so a grade is never silently out of date."""
    try:
        ctx = TermContext.load(course)
    except CourseError:
        return []
    out = []
    for sid, r in sorted(results.items()):
        info = term_info(r)
        d = deadline(course, assignment, sid, ctx.extensions)
        want = {o.part: (o.mode, o.points) for o in ctx.overrides.get((assignment, sid), ())}
        have = {p: (v.get("mode"), v.get("points"))
                for p, v in (info.get("overrides") or {}).items() if isinstance(v, dict)}
        if not info:
            if want or d.due is not None:
                out.append(sid)
            continue
        if want != have or info.get("due", "") != _iso(d.due) \
                or info.get("extension") != d.extension:
            out.append(sid)
    return out
