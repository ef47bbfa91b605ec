"""Called by the hidden test cells when real ``nbgrader autograde`` runs a notebook.

nbgrader restores the same locked test cells for every student, so the test finds the
student's variant at run time: the kernel's working directory is
``autograded/STUDENT/ASSIGNMENT/``, the course config is found above it. The answer is
converted exactly as our sandbox converts it and judged by the same function, so both
graders give the same score. The return value (a float within the cell's points) is the
cell's last expression: nbgrader reads partial credit from that ``execute_result``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from convpset.notebooks.cells import TEMPLATE_STUDENT
from convpset.notebooks.course import Course, find_course_root, load_course
from convpset.notebooks.variants import Problem, problems_for
from convpset.problems.checking import Submitted

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
        for result in problem.judge({name: submitted_from(ns, name)}):
            if result.part == name:
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
        answers = {p.name: submitted_from(ns, p.name) for p in problem.parts()}
        return round(sum(float(r.score) for r in problem.judge(answers)), 2)
