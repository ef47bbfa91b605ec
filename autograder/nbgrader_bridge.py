"""Called by the hidden test cells when real ``nbgrader autograde`` runs a notebook.

nbgrader restores the same locked test cells for every student, so the test finds the
student's variant at run time: the kernel's working directory is
``autograded/STUDENT/ASSIGNMENT/``, the course config is found above it. The answer is
converted exactly as our sandbox converts it and judged by the same function, so both
graders give the same score. The return value (a float within the cell's points) is the
cell's last expression: nbgrader reads partial credit from that ``execute_result``. The
cell also prints the verdict ``grade`` writes into its autograded notebook (score, the
named mistake, in the course's language), wrapped, so formgrader and the feedback page
show the same words after ``nbgrader autograde`` (see
:mod:`convpset.integrations.nbgrader.autograde`).
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from convpset.notebooks.cells import TEMPLATE_STUDENT
from convpset.notebooks.course import Course, find_course_root, load_course
from convpset.notebooks.variants import Problem, problems_for
from convpset.problems.checking import Submitted
from convpset.problems.text import render

WRAP = 88      # verdict lines: nbgrader's pages show outputs in a box that does not wrap

NON_STUDENT_DIRS = {"source", "release"}
STUDENT_DIRS = {"autograded", "submitted"}


def submitted_from(ns: Mapping[str, Any], name: str) -> Submitted:
    """Convert a kernel variable exactly as the sandbox child does."""
    from convpset.autograder.sandbox.convert import to_plain

    if name not in ns:
        return Submitted(present=False)
    src, value, lengths, error = to_plain(ns[name])
    if lengths is not None:
        cuts = np.cumsum([0, *lengths])
        rows = tuple(np.asarray(value[a:b], dtype=float)
                     for a, b in zip(cuts[:-1], cuts[1:], strict=True))
        return Submitted(True, src, None, None, rows)
    return Submitted(True, src, None if value is None else np.array(value), error)


@cache
def _course(root: str) -> Course:
    return load_course(Path(root))


@cache
def _problems(root: str, assignment: str, student: str) -> tuple[Problem, ...]:
    course = _course(root)
    return tuple(problems_for(course, course.assignment(assignment), student))


def locate(cwd: Path) -> tuple[str, str, str]:
    """(course root, assignment, student) from ``.../STUDENT/ASSIGNMENT``."""
    root = find_course_root(cwd)
    assignment, student = cwd.name, cwd.parent.name
    under = cwd.resolve().relative_to(root).parts if cwd.resolve().is_relative_to(root) else ()
    if len(under) == 3 and under[0] in STUDENT_DIRS:
        return str(root), under[2], under[1]        # a student may be called "source"
    if cwd.parent.parent.name in NON_STUDENT_DIRS or student in NON_STUDENT_DIRS:
        student = TEMPLATE_STUDENT
    return str(root), assignment, student


def score(number: int, name: str, ns: Mapping[str, Any]) -> float:
    """Points earned by answer ``name`` of problem ``number`` (a plain float)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root, assignment, student = locate(Path.cwd())
        problem = _problems(root, assignment, student)[number - 1]
        course = _course(root)
        for result in problem.judge({name: submitted_from(ns, name)}):
            if result.part == name:
                print(verdict_text(course.language, result.part, result.score,
                                   result.max_score, result.message.get(course.language, "")))
                return float(result.score)
    raise KeyError(f"problem {number} has no answer {name!r}")


def score_problem(number: int, ns: Mapping[str, Any]) -> float:
    """Points earned by every answer of problem ``number`` (a pooled problem's one grade
    cell: the student's own alternative, whichever they drew, judged part by part as
    ``grade`` judges it, and summed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root, assignment, student = locate(Path.cwd())
        problem = _problems(root, assignment, student)[number - 1]
        lang = _course(root).language
        answers = {p.name: submitted_from(ns, p.name) for p in problem.parts()}
        results = problem.judge(answers)
        for result in results:       # the verdicts grade writes into this one cell
            print(verdict_text(lang, result.part, result.score, result.max_score,
                               result.message.get(lang, "")))
        return round(sum(float(r.score) for r in results), 2)


def wrapped(text: str, width: int = WRAP) -> str:
    """``text`` with every line folded at ``width`` (words kept whole; a longer word is
    cut): a verdict reads without scrolling sideways."""
    return "\n".join(textwrap.fill(line, width, break_long_words=True,
                                    break_on_hyphens=False) if line.strip() else line
                     for line in text.splitlines())


def verdict_text(lang: str, part: str, points: float, max_points: float, message: str,
                 notes: Sequence[str] = ()) -> str:
    """A test cell's printed verdict, the same under ``grade`` and ``nbgrader
    autograde``: "W_1: 2 / 3 — message", then the problem's notes, wrapped."""
    text = render(lang, "nbgrader.part_verdict", part=part, score=f"{points:g}",
                  max=f"{max_points:g}", message=message)
    return wrapped("\n".join([text, *notes]))
