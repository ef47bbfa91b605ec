"""The format checks of a notebook: each problem's self-check cell, the test cells and
what ``nbgrader validate`` (the Validate button) reports.

One small helper, defined once in the notebook's setup cell (collapsed in JupyterLab),
knows each answer's name, kind and shape (never its value): ``_pset_selfcheck(N)``
prints one line per answer of problem N; ``_pset_check(N, NAME)`` is a test cell's whole
code. In Jupyter a test cell is quiet (the self-check above it has spoken, and Run All
goes on past a blank answer); under ``nbgrader validate`` (``NBGRADER_EXECUTION`` is
``validate``) a format problem is that cell's error, shown as one line
(``_render_traceback_``), so a blank notebook's Validate gives one line per missing
answer. Under ``nbgrader autograde`` the hidden test after the call (source notebook
only) scores the answer. ``grade`` runs its own setup cell and skips these cells, so this
code never reaches grading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from convpset.notebooks.variants import Problem
from convpset.problems.base import Part

_CHECK = '''

# Format checks of your answers (names, shapes, types; never their values), used by each
# problem's self-check cell and by the Validate button. Nothing here knows the answers.
import os as _os


class AnswerFormatError(Exception):
    def _render_traceback_(self):
        return [str(self)]      # Validate shows this one line, not a traceback


_PSET_MSG = {messages!r}
_PSET_SPEC = {spec!r}


def _pset_format(name, kind, shape, integer):
    """What is wrong with the answer's format, or '' when nothing is."""
    import math
    import numpy as _np
    msg, ns = _PSET_MSG, globals()
    if name not in ns:
        return msg["missing"].format(name=name)
    v = ns[name]
    if v is Ellipsis:
        return msg["todo"].format(name=name)
    if hasattr(v, "detach") and hasattr(v, "numpy"):
        v = v.detach().cpu().numpy()
    if kind == "shapes":
        try:
            flat = [float(x) for row in v for x in row]
        except Exception:
            return msg["shapes"].format(name=name)
    else:
        try:
            a = _np.asarray(v, dtype=float)
        except Exception:
            rows = isinstance(v, (list, tuple)) and all(isinstance(r, (list, tuple)) for r in v)
            if rows and len({{len(r) for r in v}}) > 1:
                return msg["ragged"].format(name=name)
            return msg["type"].format(name=name, found=type(v).__name__)
        if kind in ("int", "float") and a.size != 1:
            return msg["shape"].format(name=name, want="()", got=tuple(a.shape))
        if (kind == "array" and tuple(a.shape) != tuple(shape)
                and _np.squeeze(a).shape != _np.squeeze(_np.zeros(shape)).shape):
            return msg["shape"].format(name=name, want=tuple(shape), got=tuple(a.shape))
        flat = [float(x) for x in a.ravel()]
    if not all(math.isfinite(x) for x in flat):
        return msg["finite"].format(name=name)
    if integer and any(x != round(x) for x in flat):
        return msg["int"].format(name=name)
    return ""


def _pset_selfcheck(number):
    """Problem `number`'s self-check: one line per answer."""
    bad = 0
    for name, kind, shape, integer in _PSET_SPEC.get(number, []):
        problem = _pset_format(name, kind, shape, integer)
        print(problem or _PSET_MSG["ok"].format(name=name))
        bad += bool(problem)
    print(_PSET_MSG["some"].format(number=number, count=bad) if bad
          else _PSET_MSG["all_ok"].format(number=number))


def _pset_check(number, name):
    """A test cell: quiet in Jupyter; under Validate a format problem is its error
    (`name` None: any answer of the problem)."""
    if _os.environ.get("NBGRADER_EXECUTION") != "validate":
        return None
    for answer, kind, shape, integer in _PSET_SPEC.get(number, []):
        mine = name is None or answer == name
        problem = _pset_format(answer, kind, shape, integer) if mine else ""
        if problem:
            raise AnswerFormatError(problem)
    return None'''

MESSAGE_KEYS = ("missing", "todo", "type", "ragged", "shape", "finite", "int", "shapes", "ok",
                "all_ok", "some")
Spec = dict[int, list[tuple[str, str, list[int] | None, bool]]]


def format_spec(problems: Sequence[Problem]) -> Spec:
    """Per problem number, each answer's (name, kind, shape, whole numbers): what the
    format check needs, and nothing of the key."""
    return {p.number: [(part.name, part.kind, list(part.shape) if part.shape else None,
                        part.dtype == "int") for part in p.parts()] for p in problems}


def setup_source(base: str, messages: Mapping[str, str], spec: Spec) -> str:
    """The notebook's setup cell: ``base`` plus the format checks."""
    return base + _CHECK.format(messages={k: messages[k] for k in MESSAGE_KEYS}, spec=spec)


def test_check(number: int, part: Part | None) -> str:
    """The line a test cell runs for one answer (every answer of the problem when
    ``part`` is None: a pooled problem's one cell): the same in every student's notebook
    and in the source notebook (so nbgrader's locked-cell checksum holds)."""
    return f"_pset_check({number}, {part.name if part else None!r})"


def selfcheck_call(number: int) -> str:
    """A problem's whole self-check cell (after its comment)."""
    return f"_pset_selfcheck({number})"
