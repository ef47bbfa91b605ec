"""What a built notebook and the grader agree on: cell roles, grade ids, markers.

Kept apart from :mod:`convpset.notebooks.build` so that the grading path never imports
nbformat (whose schema validator pulls in grammars that take seconds to load, once per
grading process).
"""

from __future__ import annotations

ROLE_KEY = "pset_role"            # cell metadata: setup, statement, data, answer, test, ...
TEMPLATE_STUDENT = "template"     # the student id of the nbgrader source notebook
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"


def answer_cell_id(number: int) -> str:
    return f"answer_{number}"


def test_cell_id(number: int, part_name: str) -> str:
    return f"test_{number}_{part_name}"


def pool_cell_id(number: int) -> str:
    """The one grade cell of a problem drawn from a pool: the same id and points for
    every student whatever they drew (their parts differ), so nbgrader's source notebook,
    gradebook and formgrader have one meaningful cell per pooled number."""
    return f"test_{number}_pool"


def grade_cell_of(number: int, part_name: str, pooled: bool) -> str:
    """The nbgrader grade cell that holds part ``part_name`` of problem ``number``."""
    return pool_cell_id(number) if pooled else test_cell_id(number, part_name)


NOTICE_KEY = "pset_notice"        # notebook metadata of a fetch's "why nothing" page


def is_notice(nb: object) -> bool:
    """Whether a notebook (parsed JSON) is the page a fetch delivered instead of a
    personal notebook: never a student's work."""
    meta = nb.get("metadata") if isinstance(nb, dict) else None
    return isinstance(meta, dict) and isinstance(meta.get(NOTICE_KEY), dict)
