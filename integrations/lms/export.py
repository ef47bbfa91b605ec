"""``pset export``: an assignment's grades for the systems a course uses.

``--to canvas|moodle`` without ``--template`` writes an import file built from our roster
alone (below); with ``--template EXPORT.csv`` the instructor's own gradebook export is
filled instead (:mod:`.canvas`, :mod:`.moodle`) -- the better choice, since the LMS's own
ids and column titles are then kept. ``--to results-archive`` keeps every student's
detailed results (one JSON file), ``--to gradescope-autograder`` writes the Gradescope
autograder bundle (:mod:`convpset.integrations.gradescope.bundle`; it needs no grades).

Template-less files hold one row per roster student, in roster order. Scores are the
totals of the grading journal (the numbers in ``grades.csv``); a roster student with no
journal entry gets an empty grade in the CSV files (the LMS leaves the grade unchanged)
and a zero entry in the archive. Students who are not on the roster cannot be matched
to an LMS account and are left out.

* ``canvas.csv`` -- Canvas *Gradebook → Import*. Canvas's documented gradebook CSV has the
  columns ``Student, ID, SIS User ID, SIS Login ID, Section`` followed by one column per
  assignment, titled ``<Assignment name> (<Canvas assignment id>)``; a title without a
  numeric id makes Canvas create a new assignment of that name on import. We write
  ``Student`` = "Last, First" (Canvas's sortable name), ``ID`` empty (the Canvas user id is
  unknown outside Canvas; Canvas then matches on the SIS columns), ``SIS User ID`` = the
  roster's ``student_id``, ``SIS Login ID`` = the roster's ``email``, ``Section`` empty, and
  the assignment column ``<title> (<canvas id or assignment name>)``. The second row is
  Canvas's ``Points Possible`` row (as in Canvas's own export), so the points of a newly
  created assignment are right.
* ``moodle.csv`` -- Moodle *Grades → Import → CSV file*. The import maps columns by hand:
  choose "Identify user by: Email address → email" (or "ID number → idnumber") and map
  the grade column to the grade item. Columns: ``First name, Last name, ID number,
  Email address, <title>``; ``ID number`` holds the roster's ``student_id``.
* ``results-archive.json`` -- every roster student's detailed result, keyed by
  ``student_id``: ``score``, ``max_score``, ``output``, ``tests[]`` (``name``, ``score``,
  ``max_score``, ``status``, ``output``) and ``extra_data`` (flags, email), built by
  :func:`convpset.autograder.outputs.gradescope_json`. No LMS imports it: it is an
  archive of what each student was told, for the course's records.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convpset.autograder.guards import say
from convpset.autograder.outputs import JOURNAL, Journal, atomic_write, gradescope_json
from convpset.autograder.results import StudentResult
from convpset.integrations.lms.gradebook import Filled
from convpset.notebooks.course import Course, CourseError
from convpset.notebooks.variants import problems_for

SYSTEMS = ("canvas", "moodle", "results-archive", "gradescope-autograder")
FILENAMES = {"canvas": "canvas.csv", "moodle": "moodle.csv",
             "results-archive": "results-archive.json",
             "gradescope-autograder": "autograder.zip"}
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_COLUMNS = ["First name", "Last name", "ID number", "Email address"]


def _score(r: StudentResult | None) -> str:
    return "" if r is None else f"{r.score:g}"


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def max_total(course: Course, assignment: str) -> float:
    return round(sum(p.max_score for p in problems_for(course, course.assignment(assignment),
                                                       "template")), 2)


def canvas_column(course: Course, assignment: str, canvas_id: str | None = None) -> str:
    return f"{course.assignment(assignment).title} ({canvas_id or assignment})"


def canvas_csv(course: Course, assignment: str, results: dict[str, StudentResult],
               canvas_id: str | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CANVAS_COLUMNS, canvas_column(course, assignment, canvas_id)])
    w.writerow(["    Points Possible", "", "", "", "", f"{max_total(course, assignment):g}"])
    for s in course.roster():
        name = ", ".join(x for x in (s.last_name, s.first_name) if x) or s.student_id
        w.writerow([name, "", s.student_id, s.email, "", _score(results.get(s.student_id))])
    return buf.getvalue()


def moodle_csv(course: Course, assignment: str, results: dict[str, StudentResult]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*MOODLE_COLUMNS, course.assignment(assignment).title])
    for s in course.roster():
        w.writerow([s.first_name, s.last_name, s.student_id, s.email,
                    _score(results.get(s.student_id))])
    return buf.getvalue()


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
    return json.dumps(out, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


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
    filled: Filled | None = None       # set when a template was filled


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
    if req.moodle_max is not None and (req.system != "moodle" or req.template is None):
        raise CourseError(say("moodle_max_system"))
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
    if req.template is not None:
        if req.system == "canvas":
            from convpset.integrations.lms.canvas import fill_canvas

            filled = fill_canvas(course, assignment, results, req.template, path, req.column)
        else:
            from convpset.integrations.lms.moodle import fill_moodle

            filled = fill_moodle(course, assignment, results, req.template, path, req.column,
                                 req.moodle_max)
        return ExportResult(path, filled)
    makers: dict[str, Callable[[], str]] = {
        "canvas": lambda: canvas_csv(course, assignment, results, req.canvas_id),
        "moodle": lambda: moodle_csv(course, assignment, results),
        "results-archive": lambda: results_archive(course, assignment, results),
    }
    atomic_write(path, makers[req.system]())
    return ExportResult(path)


__all__ = ["SYSTEMS", "FILENAMES", "CANVAS_COLUMNS", "MOODLE_COLUMNS", "ExportRequest",
           "ExportResult", "canvas_csv", "moodle_csv", "results_archive", "export", "max_total"]
