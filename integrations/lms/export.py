"""``pset export``: an assignment's grades for the systems a course uses.

``--to canvas|moodle`` without ``--template`` writes an import file built from our roster
alone (below); with ``--template EXPORT.csv`` the instructor's own gradebook export is
filled instead (:mod:`.canvas`, :mod:`.moodle`) -- the better choice, since the LMS's own
ids and column titles are then kept. ``--to results-archive`` keeps every student's
detailed results (one JSON file), ``--to gradescope-autograder`` writes the Gradescope
autograder bundle (:mod:`convpset.integrations.gradescope.bundle`; it needs no grades).

Template-less files hold one row per roster student the LMS can match to that student
and no one else, in roster order; every student left out is listed with the reason.
Scores are the totals of the grading journal (the numbers in ``grades.csv``); a roster
student with no journal entry is left out of the CSV files (an empty cell would clear the
LMS's grade) and gets a zero entry in the archive. Students who are not on the roster
cannot be matched to an LMS account and are left out. Text cells we write go through
:func:`~convpset.autograder.untrusted.csv_text` (no spreadsheet formula).

* ``canvas.csv`` -- Canvas *Gradebook → Import*. Canvas's importer
  (``app/models/gradebook_importer.rb``, ``process_student``) attaches a row to the user
  whose Canvas id is in ``ID``; failing that, by SIS User ID, SIS Login ID, and at last by
  *name*, which is how two students called Anna Ivanova, or a dropped student and a
  namesake, swap grades. So a row is written only for a roster student whose
  ``lms_user_id`` (Canvas's numeric user id) is known, with ``ID`` = that id and every
  other identity cell, the name included, empty: Canvas can attach it to that user or to
  nobody. Roster students without an ``lms_user_id``, or without a grade (an empty cell
  would clear a Canvas grade), are left out and listed. The assignment column is
  ``<title> (<canvas id>)`` with ``--canvas-id`` (Canvas then fills that assignment),
  else the bare title (Canvas fills the assignment of exactly that title, or creates
  one). The second row is Canvas's ``Points Possible`` row, so the points of a newly
  created assignment are right.
* ``moodle.csv`` -- Moodle *Grades → Import → CSV file*, columns ``First name, Last name,
  ID number, Email address, <title>``; ``ID number`` holds the roster's ``student_id``.
  Choose "Identify user by: Email address → Email address" (or "ID number → ID
  number") and map the grade column to the grade item. Moodle refuses the whole file
  when one row names a user it does not know, and puts a row whose mapping cell is empty
  onto the previous row's user: so only graded students with both an id and an email are
  written (the rest are listed). Scores are points out of our maximum, or scaled to
  ``--moodle-max`` (the grade item's maximum; Moodle's default is 100).
* ``results-archive.json`` -- every roster student's detailed result, keyed by
  ``student_id``: ``score``, ``max_score``, ``output``, ``tests[]`` (``name``, ``score``,
  ``max_score``, ``status``, ``output``) and ``extra_data`` (flags, email), built by
  :func:`convpset.autograder.outputs.gradescope_json`. No LMS imports it: it is an
  archive of what each student was told, for the course's records.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convpset.autograder.guards import say
from convpset.autograder.outputs import JOURNAL, Journal, atomic_write, gradescope_json
from convpset.autograder.results import StudentResult
from convpset.autograder.submissions import HELD
from convpset.autograder.untrusted import csv_text, json_text
from convpset.integrations.lms.gradebook import Filled, moodle_max_warnings, points
from convpset.notebooks.course import Course, CourseError
from convpset.notebooks.variants import problems_for
from convpset.problems.text import render

SYSTEMS = ("canvas", "moodle", "results-archive", "gradescope-autograder")
FILENAMES = {"canvas": "canvas.csv", "moodle": "moodle.csv",
             "results-archive": "results-archive.json",
             "gradescope-autograder": "autograder.zip"}
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_COLUMNS = ["First name", "Last name", "ID number", "Email address"]


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def max_total(course: Course, assignment: str) -> float:
    return round(sum(p.max_score for p in problems_for(course, course.assignment(assignment),
                                                       "template")), 2)


def canvas_column(course: Course, assignment: str, canvas_id: str | None = None) -> str:
    """``Title (12345)`` with a Canvas assignment id, else the bare title: Canvas reads a
    non-numeric parenthesis as part of the title and would create a new assignment."""
    title = course.assignment(assignment).title
    return f"{title} ({canvas_id})" if canvas_id else title


def is_canvas_id(value: str) -> bool:
    """Canvas ids are positive integers (the importer reads them with ``to_i``)."""
    return bool(re.fullmatch(r"[1-9][0-9]{0,17}", value))


def _writer(buf: io.StringIO) -> Any:
    return csv.writer(buf, lineterminator="\n")


def canvas_csv(course: Course, assignment: str, results: dict[str, StudentResult],
               canvas_id: str | None = None, out: Path | None = None,
               lang: str | None = None) -> tuple[str, Filled]:
    """The template-less Canvas file and what it holds (students left out, and why)."""
    lang = lang or course.language
    column = canvas_column(course, assignment, canvas_id)
    report = Filled(out or Path(FILENAMES["canvas"]), column)
    buf = io.StringIO()
    w = _writer(buf)
    w.writerow([*CANVAS_COLUMNS, csv_text(column)])
    w.writerow(["    Points Possible", "", "", "", "", f"{max_total(course, assignment):g}"])
    for s in course.roster():
        r = results.get(s.student_id)
        reason = ("lms.no_lms_user_id" if not is_canvas_id(s.lms_user_id.strip())
                  else "lms.not_graded" if r is None else "")
        if reason:
            report.left_out.append(render(lang, reason, student=s.student_id))
            continue
        report.rows += 1
        w.writerow(["", s.lms_user_id.strip(), "", "", "",
                    points(r.score, r.max_score, None)])
        report.filled += 1
        report.matched_by[s.student_id] = "ID"
    if not canvas_id:
        report.warnings.append(render(lang, "lms.canvas_bare_title", title=column))
    return buf.getvalue(), report.finish(results)


def moodle_csv(course: Course, assignment: str, results: dict[str, StudentResult],
               moodle_max: float | None = None, out: Path | None = None,
               lang: str | None = None) -> tuple[str, Filled]:
    """The template-less Moodle file and what it holds (students left out, and why)."""
    lang = lang or course.language
    title = course.assignment(assignment).title
    report = Filled(out or Path(FILENAMES["moodle"]), title)
    buf = io.StringIO()
    w = _writer(buf)
    w.writerow([*MOODLE_COLUMNS, csv_text(title)])
    for s in course.roster():
        r = results.get(s.student_id)
        email = s.email.strip()
        reason = ("lms.not_graded" if r is None
                  else "lms.no_email" if not email or csv_text(email) != email else "")
        if reason:
            report.left_out.append(render(lang, reason, student=s.student_id))
            continue
        report.rows += 1
        w.writerow([csv_text(s.first_name), csv_text(s.last_name), s.student_id, email,
                    points(r.score, r.max_score, moodle_max)])
        report.filled += 1
        report.matched_by[s.student_id] = "ID number / email"
    report.mapping = render(lang, "lms.moodle_mapping_either")
    report.warnings.extend(moodle_max_warnings(moodle_max, lang))
    if moodle_max is None:
        report.warnings.append(render(lang, "lms.moodle_points",
                                      max=f"{max_total(course, assignment):g}"))
    return buf.getvalue(), report.finish(results)


def results_archive(course: Course, assignment: str, results: dict[str, StudentResult],
                      lang: str | None = None) -> str:
    lang = lang or course.language
    out: dict[str, Any] = {}
    for s in course.roster():
        r = results.get(s.student_id)
        if r is None:
            entry = {"score": 0.0, "max_score": max_total(course, assignment),
                     "output": "not graded", "tests": [],
                     "extra_data": {"student_id": s.student_id, "flags": ["not_graded"]}}
        else:
            entry = gradescope_json(r, lang)
        entry["extra_data"]["email"] = s.email
        out[s.student_id] = entry
    return json_text(out, indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True)
class ExportRequest:
    """What ``pset export`` was asked for (the CLI's options, checked by :func:`export`)."""

    system: str
    grades_dir: Path
    out_dir: Path | None = None
    canvas_id: str | None = None
    template: Path | None = None
    column: str | None = None
    moodle_max: float | None = None


@dataclass(frozen=True)
class ExportResult:
    path: Path
    filled: Filled | None = None       # what a Canvas / Moodle file holds (and left out)
    template: bool = False


def _load_results(course: Course, grades_dir: Path) -> dict[str, StudentResult]:
    journal = grades_dir / JOURNAL
    if not journal.exists():
        raise FileNotFoundError(f"{journal} not found; grade the submissions first "
                                f"(grade {course.root / 'submitted'})")
    return Journal(grades_dir).load()


def _check(req: ExportRequest) -> None:
    if req.system not in SYSTEMS:
        raise CourseError(say("export_to", choices=", ".join(SYSTEMS), found=repr(req.system)))
    if req.template is not None and req.system not in ("canvas", "moodle"):
        raise CourseError(say("template_system", system=req.system))
    if req.column is not None and req.template is None:
        raise CourseError(say("column_needs_template"))
    if req.moodle_max is not None and req.system != "moodle":
        raise CourseError(say("moodle_max_system"))
    if req.canvas_id is not None and (req.system != "canvas" or req.template is not None):
        raise CourseError(say("canvas_id_system"))
    if req.canvas_id is not None and not is_canvas_id(req.canvas_id):
        raise CourseError(say("canvas_id_number", found=repr(req.canvas_id)))
    if req.moodle_max is not None and not req.moodle_max > 0:
        raise CourseError(say("moodle_max_positive", found=f"{req.moodle_max:g}"))
    if req.template is not None and not req.template.is_file():
        raise CourseError(say("template_missing", template=req.template))


def export(course: Course, assignment: str, req: ExportRequest) -> ExportResult:
    """Write what ``req`` asks for; returns the path written (and the fill report)."""
    _check(req)
    course.assignment(assignment)
    out_dir = req.out_dir or req.grades_dir / "exports"
    if req.system == "gradescope-autograder":
        from convpset.integrations.gradescope.bundle import build_bundle

        return ExportResult(build_bundle(course, assignment, out_dir))
    results = _load_results(course, req.grades_dir)
    path = out_dir / FILENAMES[req.system]
    if req.system in ("canvas", "moodle"):
        results, off = _on_roster(results, course)
        results, held = _without_held(results)
        done = _with_held(_export_lms(course, assignment, req, results, path), held,
                          course.language)
        if done.filled is not None:
            done.filled.left_out.extend(render(course.language, "lms.not_on_roster",
                                               student=sid) for sid in off)
            _note_overrides(done.filled, results, course.language)
        return done
    atomic_write(path, results_archive(course, assignment, results))
    return ExportResult(path)


def _note_overrides(filled: Filled, results: dict[str, StudentResult], lang: str) -> None:
    """Name the students whose exported score holds an instructor override (the LMS
    column has no room for it; the instructor sees it here, the student on the page)."""
    who = sorted(sid for sid, r in results.items() if "override" in r.flags
                 and sid in filled.matched_by)
    if who:
        filled.warnings.append(render(lang, "term.export_overrides", students=", ".join(who)))


@dataclass(frozen=True)
class ColumnFilled:
    assignment: str
    result: ExportResult | None     # None: the assignment has no grades yet
    problem: str = ""


def export_all(course: Course, req: ExportRequest) -> list[ColumnFilled]:
    """Every assignment's column of one Canvas / Moodle gradebook export at once: the
    template is filled for the first assignment, that file for the next, and so on --
    each column with exactly the rules of a single ``pset export`` (its title, the
    roster's identities, held and off-roster students left out). ``req.grades_dir`` is
    ignored: each assignment's own grades folder is read."""
    if req.system not in ("canvas", "moodle") or req.template is None:
        raise CourseError(render(course.language, "term.export_all_template"))
    if req.column is not None:
        raise CourseError(say("column_needs_template"))
    out_dir = req.out_dir or course.root / "grades" / "exports"
    path = out_dir / FILENAMES[req.system]
    current = req.template
    done = []
    for name in course.assignments:
        grades = course.grades_dir(name)
        if not (grades / JOURNAL).is_file():
            done.append(ColumnFilled(name, None, str(grades / JOURNAL)))
            continue
        one = ExportRequest(req.system, grades, out_dir, None, current, None, req.moodle_max)
        result = export(course, name, one)
        done.append(ColumnFilled(name, result))
        current = path          # the next assignment fills the file this one wrote
    return done


def _on_roster(results: dict[str, StudentResult],
               course: Course) -> tuple[dict[str, StudentResult], list[str]]:
    """Results of roster students, and the ids of the rest: a journal entry left from
    before the roster changed (a student removed) or of a folder naming nobody on it. Off
    the roster an id is vouched for by nothing, and may since name someone else in the
    LMS, so no LMS row receives its grade."""
    ids = {s.student_id for s in course.roster()}
    return ({sid: r for sid, r in results.items() if sid in ids},
            sorted(sid for sid in results if sid not in ids))


def _without_held(results: dict[str, StudentResult]) -> tuple[dict[str, StudentResult], list[str]]:
    """Results an LMS may receive, and the students whose files wait for the instructor
    (two files claim them, or a name could be theirs or a classmate's): their 0 is no grade,
    so no cell of theirs is written and an existing one stays as the LMS has it."""
    held = sorted(sid for sid, r in results.items() if set(HELD) & set(r.flags))
    return {sid: r for sid, r in results.items() if sid not in held}, held


def _with_held(result: ExportResult, held: list[str], lang: str) -> ExportResult:
    if result.filled is not None and held:
        plain = {render(lang, "lms.not_graded", student=sid) for sid in held}
        kept = [line for line in result.filled.left_out if line not in plain]
        result.filled.left_out[:] = [*kept, *(render(lang, "lms.held", student=sid)
                                             for sid in held)]
    return result


def _export_lms(course: Course, assignment: str, req: ExportRequest,
                results: dict[str, StudentResult], path: Path) -> ExportResult:
    if req.template is not None:
        if req.system == "canvas":
            from convpset.integrations.lms.canvas import fill_canvas

            filled = fill_canvas(course, assignment, results, req.template, path, req.column)
        else:
            from convpset.integrations.lms.moodle import fill_moodle

            filled = fill_moodle(course, assignment, results, req.template, path, req.column,
                                 req.moodle_max)
        return ExportResult(path, filled, template=True)
    makers: dict[str, Callable[[], tuple[str, Filled]]] = {
        "canvas": lambda: canvas_csv(course, assignment, results, req.canvas_id, path),
        "moodle": lambda: moodle_csv(course, assignment, results, req.moodle_max, path),
    }
    text, report = makers[req.system]()
    atomic_write(path, text)
    return ExportResult(path, report)


__all__ = ["SYSTEMS", "FILENAMES", "CANVAS_COLUMNS", "MOODLE_COLUMNS", "ExportRequest",
           "ExportResult", "canvas_csv", "moodle_csv", "results_archive", "export", "max_total"]
