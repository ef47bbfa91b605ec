"""What ``grade`` tells nbgrader: gradebook rows and autograded notebooks.

After ``grade``, formgrader (and ``NbGraderAPI.get_submissions``) must show what we
decided: every submitting student autograded, each grade cell's score with its max, no
manual grading pending for cells we scored, names and emails from the roster, the
submission time from nbgrader's collect (``submitted/SID/A/timestamp.txt``), and an
``autograded/SID/A/A.ipynb`` per student (see :mod:`.feedback`) so formgrader can open it
and ``nbgrader generate_feedback`` can build the student's page. That is exactly what
``nbgrader autograde`` leaves behind; we write it from our results instead of running
every notebook a second time.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from convpset.autograder.outputs import atomic_write, student_file_stem
from convpset.autograder.results import StudentResult
from convpset.autograder.untrusted import StudentFileError, read_bounded, terminal_text
from convpset.notebooks.cells import test_cell_id
from convpset.notebooks.course import Course, Student
from convpset.problems.text import render

GRADEBOOK = "gradebook.db"
COPIED = ("timestamp.txt", "submission_secret.txt")   # what autograde carries over
TIMESTAMP_BYTES = 1_000      # nbgrader writes one line, "2026-12-01 10:00:00.000000 UTC"


@dataclass(frozen=True)
class GradebookReport:
    grades: int = 0            # grade cells written
    submissions: int = 0       # students with a submission (autograded now)
    students: int = 0          # roster students kept in step (names, emails)
    skipped: int = 0           # graded students with nothing submitted
    problem: str = ""          # why nothing was written, when nothing was
    bad_timestamps: tuple[str, ...] = ()   # students whose timestamp.txt was not usable
    outsiders: tuple[str, ...] = ()        # graded, not on the roster: not in the gradebook
    stale_feedback: int = 0                # generated feedback removed (its grade changed)

    def message(self, lang: str, db: Path) -> str:
        if self.problem:
            return self.problem
        done = render(lang, "nbgrader.gradebook_written", grades=self.grades,
                      submissions=self.submissions, students=self.students, db=str(db))
        if self.outsiders:
            done += "\n" + render(lang, "nbgrader.not_on_roster_gradebook", count=len(self.outsiders),
                                  students=", ".join(terminal_text(s, 80)
                                                     for s in self.outsiders[:20]))
        if self.stale_feedback:
            done += "\n" + render(lang, "nbgrader.feedback_stale", count=self.stale_feedback)
        if not self.bad_timestamps:
            return done
        who = ", ".join(terminal_text(s, 80) for s in self.bad_timestamps[:20])
        more = len(self.bad_timestamps) - 20
        return done + "\n" + render(lang, "nbgrader.timestamp_skipped", students=who,
                                    more=max(0, more), cap=TIMESTAMP_BYTES)


def wants_gradebook(course: Course, explicit: bool | None) -> bool:
    """``--nbgrader``/``--no-nbgrader`` when given; else whenever the course has a
    gradebook (the course uses nbgrader)."""
    return explicit if explicit is not None else (course.root / GRADEBOOK).exists()


def sync_students(db_url: str, students: Iterable[Student]) -> int:
    """Create or update every roster student in the gradebook (id, names, email)."""
    from nbgrader.api import Gradebook

    n = 0
    with Gradebook(db_url) as gb:
        for s in students:
            gb.update_or_create_student(s.student_id, first_name=s.first_name or None,
                                        last_name=s.last_name or None, email=s.email or None)
            n += 1
    return n


def _timestamp(folder: Path) -> tuple[object, bool]:
    """(the submission time nbgrader's collect wrote or None, whether a timestamp.txt was
    there but not usable).

    ``timestamp.txt`` sits in the student's folder: it is read only when it is a regular
    file of at most TIMESTAMP_BYTES (never a FIFO that blocks the read forever, never a
    huge file, never through a link). Whatever is wrong with it costs only that
    student's submission time, and the instructor is told whose.
    """
    from nbgrader.utils import parse_utc

    try:
        text = read_bounded(folder / "timestamp.txt", TIMESTAMP_BYTES).decode("utf-8").strip()
    except StudentFileError as err:
        return None, err.reason != "missing"
    except UnicodeDecodeError:
        return None, True
    try:
        return (parse_utc(text), False) if text else (None, True)
    except (ValueError, OverflowError, TypeError, LookupError):
        return None, True


def write_gradebook(course: Course, assignment: str, results: list[StudentResult],
                    lang: str, reveal: bool) -> GradebookReport:
    """Scores into the gradebook and autograded notebooks beside it; see module doc."""
    with warnings.catch_warnings():
        # nbgrader's own add_submission trips SQLAlchemy 2's autoflush warnings (harmless,
        # printed by `nbgrader autograde` too); they would bury grade's summary
        warnings.filterwarnings("ignore", message=".*not in session.*")
        return _write_gradebook(course, assignment, results, lang, reveal)


def _write_gradebook(course: Course, assignment: str, results: list[StudentResult],
                     lang: str, reveal: bool) -> GradebookReport:
    from nbgrader.api import Gradebook, MissingEntry

    # here, not at the top: nbformat (its schema grammars take seconds to load) is paid
    # only by a course that writes the gradebook, never by a plain `grade`
    from convpset.integrations.nbgrader.feedback import (
        autograded_notebook,
        drop_stale_feedback,
        read_submitted,
    )
    from convpset.notebooks.build import dumps

    db = course.root / GRADEBOOK
    if not db.exists():
        return GradebookReport(problem=render(lang, "nbgrader.no_gradebook", db=str(db),
                                              assignment=assignment))
    roster = course.roster()
    display = {s.student_id: s.display for s in roster}
    synced = sync_students(f"sqlite:///{db}", roster)
    grades = submissions = skipped = 0
    bad_timestamps: list[str] = []
    outsiders: list[str] = []
    stale = 0
    with Gradebook(f"sqlite:///{db}") as gb:
        try:
            notebooks = [nb.name for nb in gb.find_assignment(assignment).notebooks]
        except MissingEntry:
            return GradebookReport(problem=render(lang, "nbgrader.no_assignment",
                                                  assignment=assignment))
        if assignment not in notebooks:
            return GradebookReport(problem=render(lang, "nbgrader.no_notebook",
                                                  assignment=assignment, found=", ".join(notebooks)))
        roster_ids = set(display)
        for r in results:
            if "no_submission" in r.flags or not r.path:
                skipped += 1
                continue
            if r.student_id not in roster_ids:     # never a gradebook student: listed
                outsiders.append(r.student_id)
                continue
            folder = Path(r.path).parent
            ts, bad = _timestamp(folder)
            if bad:
                bad_timestamps.append(r.student_id)
            gb.update_or_create_student(r.student_id)
            sub = (gb.update_or_create_submission(assignment, r.student_id, timestamp=ts) if ts
                   else gb.update_or_create_submission(assignment, r.student_id))
            scores = {test_cell_id(p.number, x.part): x.score for p in r.problems for x in p.parts}
            for nb in sub.notebooks:
                for g in nb.grades:
                    if g.name not in scores:
                        continue
                    g.auto_score = scores[g.name]
                    # as nbgrader's SaveAutoGrades: only a grader's own score needs review
                    g.needs_manual_grade = g.manual_score is not None
                    grades += 1
            gb.db.commit()
            submissions += 1
            # a safe folder name, never the raw id (student-chosen in a flat/folder layout)
            dest = course.root / "autograded" / student_file_stem(r.student_id) / assignment
            dest.mkdir(parents=True, exist_ok=True)
            nb_out = autograded_notebook(course, assignment, display.get(r.student_id, r.student_id),
                                         r, read_submitted(Path(r.path)), lang, reveal)
            # compact JSON through the C encoder: nbformat.write (schema check, indented
            # JSON) took a third of the time per student
            text = dumps(nb_out, compact=True)
            if _changed(dest / f"{assignment}.ipynb", text):
                stale += drop_stale_feedback(course.root, r.student_id, assignment)
            atomic_write(dest / f"{assignment}.ipynb", text, sync=False)
            for name in COPIED:         # small files of the student's folder: bounded
                try:
                    atomic_write(dest / name, read_bounded(folder / name, TIMESTAMP_BYTES)
                                 .decode("utf-8", "replace"), sync=False)
                except StudentFileError:     # that student's feedback alone is held back
                    (dest / name).unlink(missing_ok=True)
    return GradebookReport(grades, submissions, synced, skipped,
                           bad_timestamps=tuple(bad_timestamps), outsiders=tuple(outsiders),
                           stale_feedback=stale)


def _changed(path: Path, text: str) -> bool:
    """Whether the autograded notebook at ``path`` (ours, from an earlier run) differs
    from ``text``."""
    try:
        return path.read_text(encoding="utf-8") != text
    except (OSError, UnicodeDecodeError):
        return True


def after_grade(course: Course, assignment: str, results: list[StudentResult],
                explicit: bool | None, lang: str | None, reveal: bool) -> str | None:
    """``grade``'s nbgrader step: the line to print, or None when the course does not use
    nbgrader (and ``--nbgrader`` was not asked for)."""
    if not wants_gradebook(course, explicit):
        return None
    lang = lang or course.language
    report = write_gradebook(course, assignment, results, lang, reveal)
    return report.message(lang, course.root / GRADEBOOK)
