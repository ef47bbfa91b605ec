"""What ``nbgrader validate`` (the Validate button) checks in a personal notebook.

nbgrader validate runs the notebook and fails on every grade cell whose output is an
error. A personal notebook's test cells hold no hidden test (those stay in the source
notebook: ``nbgrader autograde`` restores them, ``grade`` leaves test cells out), so
they run a format check instead: the answer exists, is not ``...``, has the stated
shape, is finite, whole where it must be. It raises :class:`AnswerFormatError` with an
en/ru message naming the answer; never a word about correctness. The check is defined
once in the notebook's setup cell (``grade`` runs its own setup cell, so this code never
reaches grading).
"""

from __future__ import annotations

from collections.abc import Mapping

from convpset.problems.base import Part

_CHECK = '''

# Format checks behind the Validate button and the test cells below: names, shapes and
# types of your answers only, never their values.
class AnswerFormatError(Exception):
    pass


_PSET_MSG = {messages!r}


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
    return ""'''

MESSAGE_KEYS = ("missing", "todo", "type", "shape", "finite", "int", "shapes")


def setup_source(base: str, messages: Mapping[str, str]) -> str:
    """The personal notebook's setup cell: ``base`` plus the format check."""
    return base + _CHECK.format(messages={k: messages[k] for k in MESSAGE_KEYS})


def test_check(part: Part) -> str:
    """The lines a personal test cell runs for one answer part (raising in the cell itself
    keeps the Validate report to this cell and the message)."""
    shape = list(part.shape) if part.shape else None
    return (f"_pset_problem = _pset_format({part.name!r}, {part.kind!r}, {shape!r}, "
            f"{part.dtype == 'int'!r})\n"
            "if _pset_problem:\n"
            "    raise AnswerFormatError(_pset_problem)")
