"""Build the notebooks of an assignment: nbgrader source, personal, personal solutions.

All three come from one cell factory so that the nbgrader cells (answer cells and the
locked autograder tests, matched by ``grade_id``) are the same everywhere. Personal
numbers live only in cells nbgrader does not lock (statement, data, self-check), so
``nbgrader autograde`` can restore its locked cells without erasing them; the hidden
tests find the student's variant at run time from the working directory.
Cell ids are deterministic, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import nbformat
import numpy as np
from nbformat import NotebookNode

from convpset.autograder.untrusted import markdown_text
from convpset.notebooks.cells import (  # noqa: F401  (re-exported for callers of build)
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    ROLE_KEY,
    TEMPLATE_STUDENT,
    answer_cell_id,
    pool_cell_id,
    test_cell_id,
)
from convpset.notebooks.check_cell import call_lines, check_cell_for, helper_source
from convpset.notebooks.course import Course
from convpset.notebooks.format_check import (
    MESSAGE_KEYS,
    format_spec,
    selfcheck_call,
    setup_source,
    test_check,
)
from convpset.notebooks.variants import STAMP_KEY, Problem, make_stamp
from convpset.problems.base import Part
from convpset.problems.checking import solved
from convpset.problems.render import py_literal
from convpset.problems.text import render

Mode = Literal["source", "personal", "solution"]
SETUP = "import numpy as np"


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool,
              points: float | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"grade": grade, "grade_id": grade_id, "locked": locked,
                            "schema_version": 3, "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _md(cell_id: str, source: str, role: str, number: int | None = None) -> NotebookNode:
    meta: dict[str, Any] = {ROLE_KEY: role}
    if number is not None:
        meta["pset_problem"] = number
    if role in ("statement", "header"):
        meta.update({"editable": False, "deletable": False})
    # Built directly (not nbformat.v4.new_markdown_cell) to skip per-cell schema
    # validation: generating a thousand notebooks must take seconds. Tests validate.
    return NotebookNode(cell_type="markdown", id=cell_id, metadata=meta, source=source)


def _code(cell_id: str, source: str, role: str, number: int | None = None,
          nbgrader: dict[str, Any] | None = None) -> NotebookNode:
    meta: dict[str, Any] = {ROLE_KEY: role}
    if number is not None:
        meta["pset_problem"] = number
    if role == "data":
        meta.update({"editable": False, "deletable": False})
    if nbgrader is not None:
        meta["nbgrader"] = nbgrader
        if nbgrader.get("locked"):
            meta.update({"editable": False, "deletable": False})
    return NotebookNode(cell_type="code", id=cell_id, metadata=meta, source=source,
                        execution_count=None, outputs=[])


def literal(part: Part, value: Any) -> str:
    """Python source for a reference value, as a student would type it."""
    if part.kind == "shapes":
        return repr([tuple(int(v) for v in row) for row in value])
    arr = np.asarray(value, dtype=float)
    if part.kind == "int":
        return str(int(round(float(arr))))
    if part.kind == "float":
        return repr(float(arr))
    return f"np.array({py_literal(arr)})"


def answer_source(problem: Problem, lang: str, mode: Mode,
                  values: dict[str, Any] | None = None) -> str:
    parts = problem.parts()
    head = render(lang, "notebook.answer_header", number=problem.number,
                  names=", ".join(p.name for p in parts))
    hints = [render(lang, "notebook.answer_hint", name=p.name, contract=p.contract(lang))
             for p in parts]
    if mode == "personal":
        return "\n".join([head, *hints, "", *(f"{p.name} = ..." for p in parts)])
    key = solved(problem.fam, problem.variant) if values is None else values
    lines = [f"{p.name} = {literal(p, key[problem.base_name(p.name)])}" for p in parts]
    if mode == "source":
        lines = [BEGIN_SOLUTION, *lines, END_SOLUTION]
    return "\n".join([head, *hints, "", *lines])


def pool_test_source(problem: Problem, lang: str, mode: Mode) -> str:
    """The one grade cell of a pooled problem. Its released part is the same for every
    student whatever they drew (so nbgrader's locked-cell checksum holds): a check of the
    format of every answer of the problem (what Validate runs), then, in the source, the
    hidden call that scores them all (it finds the student's own draw)."""
    comment = render(lang, "notebook.pool_test_comment", number=problem.number)
    if mode == "solution":
        return comment
    check = test_check(problem.number, None)
    if mode == "personal":
        return f"{comment}\n{check}"
    return "\n".join([
        comment, BEGIN_HIDDEN,
        '_pset_check = globals().get("_pset_check") or (lambda number, name: None)',
        END_HIDDEN, check, BEGIN_HIDDEN,
        "from convpset.autograder.nbgrader_bridge import score_problem as _pset_score_problem",
        f"_pset_score_problem({problem.number}, globals())",
        END_HIDDEN])


def pool_note(course: Course, assignment: str, problem: Problem, lang: str) -> str:
    """The source notebook's line above a pooled problem: what the pool holds."""
    pool = course.assignment(assignment).problems[problem.pool or 0]
    alts = ", ".join(pool.label(j) for j in range(len(pool.alternatives)))   # type: ignore[union-attr]
    return render(lang, "notebook.pool_note", choose=pool.count, alternatives=alts,
                  points=pool.points, shown=f"{problem.family} L{problem.level}")


def test_source(problem: Problem, part: Part, lang: str, mode: Mode) -> str:
    comment = render(lang, "notebook.test_comment", name=part.name)
    if mode == "solution":
        return comment
    check = test_check(problem.number, part)
    if mode == "personal":      # what Validate runs: the answer's format only
        return f"{comment}\n{check}"
    # the source notebook: the same check between hidden tests (nbgrader removes them from
    # what it releases, so the personal cell is exactly the released one). The first makes
    # the check a no-op in a notebook handed out before the check existed.
    return "\n".join([
        comment, BEGIN_HIDDEN,
        '_pset_check = globals().get("_pset_check") or (lambda number, name: None)',
        END_HIDDEN, check, BEGIN_HIDDEN,
        "from convpset.autograder.nbgrader_bridge import score as _pset_score",
        f"_pset_score({problem.number}, {part.name!r}, globals())",
        END_HIDDEN])


@lru_cache(maxsize=8)
def _selfcheck_messages(lang: str) -> dict[str, str]:
    return {k: render(lang, f"notebook.selfcheck_{k}") for k in MESSAGE_KEYS}


def selfcheck_source(problem: Problem, lang: str) -> str:
    """A problem's self-check cell: one call into the setup cell's helper."""
    return render(lang, "notebook.selfcheck_comment") + "\n" + selfcheck_call(problem.number)


def build_notebook(course: Course, assignment: str, title: str, problems: Sequence[Problem],
                   student_id: str, student_display: str, lang: str, mode: Mode) -> NotebookNode:
    """One notebook for one student (or the template) in one mode."""
    checking = check_cell_for(course, assignment, student_id) if mode == "personal" else None
    setup = setup_source(SETUP, _selfcheck_messages(lang), format_spec(problems))
    if checking is not None:
        setup += helper_source(checking, list(problems), student_id, lang)
    cells = [_md("header", "\n\n".join([
        render(lang, "notebook.title", title=title),
        # a roster name is the student's text: literal in markdown (nbconvert,
        # nbgrader's feedback page)
        render(lang, "notebook.intro", student=markdown_text(student_display),
               course=course.name),
        *([render(lang, "notebook.template_note")] if mode == "source" else [])]), "header"),
        _code("setup", setup, "setup")]
    cells[-1].metadata["jupyter"] = {"source_hidden": True}   # collapsed in JupyterLab
    for prob in problems:
        n = prob.number
        statement = prob.statement(lang)
        if mode == "source" and prob.pooled:
            statement = pool_note(course, assignment, prob, lang) + "\n\n" + statement
        cells.append(_md(f"statement_{n}", statement, "statement", n))
        cells.append(_code(f"data_{n}", prob.data_code(), "data", n))
        cells.append(_code(answer_cell_id(n), answer_source(prob, lang, mode), "answer", n,
                           _nbgrader(answer_cell_id(n), grade=False, solution=True, locked=False)))
        if mode == "solution":
            cells.append(_md(f"worked_{n}", render(lang, "notebook.worked") + "\n\n"
                             + prob.explain(lang), "worked", n))
        # the self-check before the test cells: it runs first on Run All
        selfcheck = selfcheck_source(prob, lang)
        if checking is not None:
            selfcheck += call_lines(n, lang)
        cells.append(_code(f"selfcheck_{n}", selfcheck, "selfcheck", n))
        if prob.pooled:
            cells.append(_code(pool_cell_id(n), pool_test_source(prob, lang, mode), "test", n,
                               _nbgrader(pool_cell_id(n), grade=True, solution=False,
                                         locked=True, points=prob.max_score)))
        for part in [] if prob.pooled else prob.parts():
            cells.append(_code(test_cell_id(n, part.name), test_source(prob, part, lang, mode),
                               "test", n, _nbgrader(test_cell_id(n, part.name), grade=True,
                                                    solution=False, locked=True,
                                                    points=part.points)))
    nb = NotebookNode(nbformat=4, nbformat_minor=5, cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
        STAMP_KEY: make_stamp(course, assignment, student_id, list(problems)),
    })
    return nb


def _split(source: str) -> list[str]:
    return source.splitlines(keepends=True)


def dumps(nb: NotebookNode, compact: bool = False) -> str:
    """Serialized notebook, deterministic for equal notebooks.

    The default is nbformat's own style (sorted keys, indent 1, sources as line lists);
    ``compact`` writes the same JSON without indentation, which Python's C encoder makes
    several times faster -- used for the thousand personal notebooks of a class.
    """
    if not compact:
        return nbformat.v4.nbjson.writes(nb) + "\n"
    cells = [{**c, "source": _split(c["source"])} for c in nb["cells"]]
    data = {**nb, "cells": cells}
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
