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
from convpset.notebooks.cells import grade_cell_of, pool_cell_id
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
    from convpset.autograder.overrides import OverrideStore

    removed = OverrideStore(course.root).removed(assignment)
    grades = submissions = skipped = 0
    bad_timestamps: list[str] = []
    pooled = set(course.assignment(assignment).pooled_numbers())
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
            scores, manual = cell_scores(r, pooled, removed)
            for nb in sub.notebooks:
                for g in nb.grades:
                    if g.name not in scores:
                        continue
                    g.auto_score = scores[g.name]
                    # an override (ours, or a formgrader manual score read back into the
                    # same store before grading) is the cell's manual score; a removed
                    # one of ours is cleared. Nothing we scored waits for manual grading.
                    if g.name in manual:
                        g.manual_score = manual[g.name]
                    g.needs_manual_grade = False
                    grades += 1
                # nbgrader's own column for late work (its CSV export subtracts it)
                nb.late_submission_penalty = r.penalty or None
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


def cell_scores(r: StudentResult, pooled: set[int], removed: dict | None = None
                ) -> tuple[dict[str, float], dict[str, float | None]]:
    """(grade cell -> the key's score, grade cell -> manual score to write) of one student.

    One cell per part, or per pooled problem number the sum of the student's parts
    (whichever alternative they drew). A cell holding an overridden part gets a manual
    score: the override (summed with the cell's other parts for a pooled cell); a part
    whose override of ours was removed gets None (cleared) when the gradebook still holds
    our value."""
    from convpset.autograder.term import term_info

    over = term_info(r).get("overrides") or {}
    removed = removed or {}
    auto: dict[str, float] = {}
    final: dict[str, float] = {}
    held: set[str] = set()          # cells with an overridden part
    cleared: set[str] = set()       # cells with a part whose override was removed
    for p in r.problems:
        for x in p.parts:
            cell = grade_cell_of(p.number, x.part, p.number in pooled)
            o = over.get(x.part)
            auto[cell] = round(auto.get(cell, 0.0) + (float(o["raw"]) if isinstance(o, dict)
                                                      else x.score), 2)
            final[cell] = round(final.get(cell, 0.0) + x.score, 2)
            if isinstance(o, dict):
                held.add(cell)
            elif (r.student_id, x.part) in removed:
                cleared.add(cell)
    manual: dict[str, float | None] = {cell: None for cell in cleared - held}
    manual.update({cell: final[cell] for cell in held})
    return auto, manual


def manual_scores(course: Course, assignment: str) -> list[tuple[str, str, float]]:
    """(student, part, manual score) of every grade cell of ours that has a manual score
    in nbgrader's gradebook -- set in formgrader (its PUT /formgrader/api/grade) or by
    us from an override. Empty when the course has no gradebook or no such assignment."""
    from nbgrader.api import Gradebook, MissingEntry

    db = course.root / GRADEBOOK
    if not db.exists():
        return []
    out = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not in session.*")
        with Gradebook(f"sqlite:///{db}") as gb:
            try:
                subs = gb.assignment_submissions(assignment)
            except MissingEntry:
                return []
            for sub in subs:
                for nb in sub.notebooks:
                    for g in nb.grades:
                        part = _part_of(g.name)
                        if g.manual_score is not None and part:
                            out.append((sub.student.id, part, float(g.manual_score)))
    return out


def _part_of(name: str) -> str:
    """``test_3_W_1`` -> ``W_1`` (our grade cell names: :func:`test_cell_id`)."""
    head, _, rest = name.partition("_")
    number, _, part = rest.partition("_")
    if head != "test" or not number.isdigit() or not part or name == pool_cell_id(int(number)):
        return ""           # a pooled problem's one cell holds several parts: not one part
    return part


def import_manual_scores(course: Course, assignment: str,
                         previous: dict[str, StudentResult]) -> int:
    """Record every formgrader manual score that is not already an override of ours
    into the course's override store (source ``formgrader``): from then on ``grade``
    keeps it, counts it everywhere and never writes over it. Returns how many were new.

    ``previous``: the journal's rows (the key's raw part scores, to know what an
    ``adjust`` override of ours gives)."""
    from convpset.autograder.overrides import Override, OverrideStore
    from convpset.autograder.term import term_info

    items = manual_scores(course, assignment)
    if not items:
        return 0
    store = OverrideStore(course.root)
    active = store.active(assignment)
    removed = store.removed(assignment)
    new = []
    for sid, part, m in items:
        r = previous.get(sid)
        parts = {x.part: x for p in r.problems for x in p.parts} if r is not None else {}
        over = term_info(r).get("overrides") or {} if r is not None else {}
        x = parts.get(part)
        raw = float(over[part]["raw"]) if part in over else (x.score if x else 0.0)
        top = x.max_score if x else float("inf")
        mine = active.get((assignment, sid, part))
        if mine is not None and abs(mine.value(raw, top) - m) < 1e-9:
            continue
        gone = removed.get((sid, part))
        if mine is None and gone is not None and abs(gone.value(raw, top) - m) < 1e-9:
            continue            # what we wrote before the override was removed
        new.append(Override(assignment, sid, part, "set", m,
                            render("en", "term.formgrader_reason"),
                            render("ru", "term.formgrader_reason"), by="formgrader",
                            source="formgrader"))
    store.add(new)
    return len(new)


def after_grade(course: Course, assignment: str, results: list[StudentResult],
                explicit: bool | None, lang: str | None, reveal: bool) -> str | None:
    """``grade``'s nbgrader step: the line to print, or None when the course does not use
    nbgrader (and ``--nbgrader`` was not asked for)."""
    if not wants_gradebook(course, explicit):
        return None
    lang = lang or course.language
    report = write_gradebook(course, assignment, results, lang, reveal)
    return report.message(lang, course.root / GRADEBOOK)
