"""``pset override`` and ``pset gradebook``: parse and call :mod:`convpset.autograder.term`,
:mod:`convpset.autograder.overrides` and :mod:`convpset.autograder.coursebook`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convpset.cli._style import data_table, show, warn
from convpset.cli.pset import _fail, _load_course, console, pset_app


# "-1" (take a point off) is the POINTS argument, not an unknown option
@pset_app.command(context_settings={"ignore_unknown_options": True})
def override(
    assignment: Annotated[str | None, typer.Argument(help="assignment", show_default=False)] = None,
    student: Annotated[str | None, typer.Argument(help="student id", show_default=False)] = None,
    part: Annotated[str | None, typer.Argument(help="answer part, e.g. W_1", show_default=False)] = None,
    points: Annotated[str | None, typer.Argument(help="points to set (2.5), or a change of the key's score (+0.5, -1)", show_default=False)] = None,
    reason: Annotated[str, typer.Option(help="why (the student sees it on the feedback page)")] = "",
    reason_ru: Annotated[str, typer.Option(help="the reason in Russian, for students reading in Russian")] = "",
    remove: Annotated[bool, typer.Option("--remove", help="end the override of ASSIGNMENT STUDENT PART")] = False,
    list_: Annotated[bool, typer.Option("--list", help="the overrides in force (of ASSIGNMENT, if given)")] = False,
    history: Annotated[bool, typer.Option("--history", help="every change: who, when, why")] = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="bulk overrides.csv: assignment, student, part, points, reason[, reason_ru]")] = None,
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
) -> None:
    """Set, adjust, list or remove an instructor's score for one answer part; it
    survives every later `grade`, `--regrade` and key change."""
    from convpset.autograder.overrides import OverrideError, OverrideStore
    from convpset.autograder.term import bulk_overrides, make_override
    from convpset.notebooks.course import CourseError
    from convpset.problems.text import render

    c = _load_course(course)
    store = OverrideStore(c.root)
    lang = "en"
    try:
        if list_ or history:
            _show_overrides(store, assignment, history)
            return
        if csv_file is not None:
            made = bulk_overrides(c, csv_file)
            store.add(made)
            show(render(lang, "term.csv_done", count=len(made), path=str(csv_file)))
            return
        if not (assignment and student and part):
            _fail("give ASSIGNMENT STUDENT PART POINTS --reason \"...\" (or --list, --csv FILE)")
        c.assignment(assignment)
        if remove:
            if not store.remove(assignment, student, part, " ".join(reason.split())[:500]):
                _fail(render(lang, "term.no_override", part=part, student=student,
                             assignment=assignment))
            show(render(lang, "term.removed", part=part, student=student, assignment=assignment))
            return
        if points is None:
            _fail("give the POINTS to set (2.5) or the change (+0.5)")
        o = make_override(c, assignment, student, part, points, reason, reason_ru)
        store.add([o])
        show(render(lang, "term.set", assignment=assignment, student=student, part=part,
                    points=o.shown(), reason=o.reason))
    except (CourseError, OverrideError) as err:
        _fail(str(err))


def _show_overrides(store, assignment: str | None, history: bool) -> None:
    from convpset.problems.text import render

    if history:
        rows = [(h.get("at", ""), h.get("by", ""), h.get("source", ""), h["action"],
                 h["assignment"], h["student"], h["part"],
                 "" if h["action"] == "remove" else f"{h['points']:g}", h.get("reason", ""))
                for h in store.history() if assignment in (None, h["assignment"])]
        console.print(data_table(["when", "by", "source", "action", "assignment", "student",
                                  "part", "points", "reason"], rows,
                                 render("en", "term.history_title", count=len(rows)),
                                 limit=2000))
        return
    active = store.active(assignment)
    if not active:
        show(render("en", "term.list_empty"))
        return
    rows = [(o.assignment, o.student, o.part, o.shown(), o.reason, o.by, o.at, o.source)
            for o in active.values()]
    console.print(data_table(["assignment", "student", "part", "points", "reason", "by",
                              "when", "source"], rows,
                             render("en", "term.list_title", count=len(rows),
                                    path=str(store.path)), limit=2000))


@pset_app.command()
def gradebook(
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for course.csv and course.html (default: COURSE/grades)")] = None,
    lang: Annotated[str | None, typer.Option(help="en or ru (default: the course's)")] = None,
) -> None:
    """The course gradebook: every student × every assignment (penalties and overrides
    applied), weighted totals, who is missing what: grades/course.csv and course.html."""
    from convpset.autograder.coursebook import write
    from convpset.notebooks.course import CourseError
    from convpset.problems.text import render

    c = _load_course(course)
    if lang not in (None, "en", "ru"):
        _fail(f"--lang must be en or ru, found {lang!r}")
    warn_stale(c, list(c.assignments))
    try:
        csv_path, html_path, book = write(c, lang or c.language, out)
    except CourseError as err:
        _fail(str(err))
    show(render("en", "term.gradebook_written", csv=str(csv_path), html=str(html_path),
                students=len(book.rows), assignments=len(book.assignments)))


def warn_stale(c, assignments: list[str]) -> None:
    """One line per assignment whose journal is behind the course's term files."""
    from convpset.autograder.outputs import JOURNAL, Journal
    from convpset.autograder.term import stale_students
    from convpset.problems.text import render

    for a in assignments:
        d = c.grades_dir(a)
        if not (d / JOURNAL).is_file():
            continue
        who = stale_students(c, a, Journal(d).load())
        if who:
            warn(render("en", "term.stale", assignment=a, count=len(who),
                        students=", ".join(who[:10]) + (" …" if len(who) > 10 else "")))
