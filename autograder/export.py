"""``pset export``: the grades of one assignment in the import format of an LMS.

Every file is named after its system and holds one row (one entry) per roster student,
in roster order. Scores are the totals of the grading journal (the numbers in
``grades.csv``); a roster student with no journal entry gets an empty grade in the CSV
files (the LMS leaves the grade unchanged) and a zero entry in the Gradescope file.
Students who are not on the roster cannot be matched to an LMS account and are left out.

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
  Email address, <title>`` -- the same names as Moodle's own plain-text grade export, so
  Moodle pre-selects the mapping; ``ID number`` holds the roster's ``student_id``.
* ``gradescope.json`` -- Gradescope's autograder ``results.json`` schema per student,
  keyed by ``student_id``: ``score``, ``max_score``, ``output``, ``tests[]`` (``name``,
  ``score``, ``max_score``, ``status``, ``output``) and ``extra_data``, built by
  :func:`convpset.autograder.outputs.gradescope_json`; ``extra_data`` also carries the email.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convpset.autograder.outputs import Journal, atomic_write, gradescope_json
from convpset.autograder.results import StudentResult
from convpset.notebooks.course import Course
from convpset.notebooks.variants import problems_for

SYSTEMS = ("canvas", "moodle", "gradescope")
FILENAMES = {"canvas": "canvas.csv", "moodle": "moodle.csv", "gradescope": "gradescope.json"}
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_COLUMNS = ["First name", "Last name", "ID number", "Email address"]


def _score(r: StudentResult | None) -> str:
    return "" if r is None else f"{r.score:g}"


def _max_total(course: Course, assignment: str) -> float:
    return round(sum(p.max_score for p in problems_for(course, course.assignment(assignment),
                                                       "template")), 2)


def canvas_column(course: Course, assignment: str, canvas_id: str | None = None) -> str:
    return f"{course.assignment(assignment).title} ({canvas_id or assignment})"


def canvas_csv(course: Course, assignment: str, results: dict[str, StudentResult],
               canvas_id: str | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*CANVAS_COLUMNS, canvas_column(course, assignment, canvas_id)])
    w.writerow(["    Points Possible", "", "", "", "", f"{_max_total(course, assignment):g}"])
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


def gradescope_export(course: Course, assignment: str, results: dict[str, StudentResult],
                      lang: str | None = None) -> str:
    lang = lang or course.language
    out: dict[str, Any] = {}
    for s in course.roster():
        r = results.get(s.student_id)
        if r is None:
            entry = {"score": 0.0, "max_score": _max_total(course, assignment),
                     "output": "not graded", "tests": [],
                     "extra_data": {"student_id": s.student_id, "flags": ["not_graded"]}}
        else:
            entry = gradescope_json(r, lang)
        entry["extra_data"]["email"] = s.email
        out[s.student_id] = entry
    return json.dumps(out, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def export(course: Course, assignment: str, system: str, grades_dir: Path,
           out_dir: Path | None = None, canvas_id: str | None = None) -> Path:
    """Write ``system``'s import file from ``grades_dir/journal.jsonl``; returns its path."""
    if system not in SYSTEMS:
        raise ValueError(f"--to must be one of {', '.join(SYSTEMS)}, found {system!r}")
    course.assignment(assignment)
    journal = Journal(grades_dir)
    if not journal.path.exists():
        raise FileNotFoundError(f"{journal.path} not found; grade the submissions first "
                                f"(grade {course.root / 'submitted'})")
    results = journal.load()
    makers: dict[str, Callable[[], str]] = {
        "canvas": lambda: canvas_csv(course, assignment, results, canvas_id),
        "moodle": lambda: moodle_csv(course, assignment, results),
        "gradescope": lambda: gradescope_export(course, assignment, results),
    }
    path = (out_dir or grades_dir / "exports") / FILENAMES[system]
    atomic_write(path, makers[system]())
    return path


__all__ = ["SYSTEMS", "FILENAMES", "CANVAS_COLUMNS", "MOODLE_COLUMNS", "canvas_csv",
           "moodle_csv", "gradescope_export", "export"]
