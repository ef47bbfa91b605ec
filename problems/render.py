"""Small pure helpers to show numbers to students: LaTeX matrices and Python literals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def num(v: float) -> str:
    """An integer-valued float prints as an int; others with up to 4 significant decimals."""
    f = float(v)
    if f == int(f):
        return str(int(f))
    return f"{f:.4g}"


def latex_matrix(a: Any) -> str:
    """A 2-D array as a LaTeX pmatrix; a 3-D array as a row of channel matrices."""
    arr = np.asarray(a)
    if arr.ndim == 0:
        return num(arr)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim == 2:
        rows = [" & ".join(num(v) for v in row) for row in arr]
        return "\\begin{pmatrix} " + " \\\\ ".join(rows) + " \\end{pmatrix}"
    return ",\\ ".join(latex_matrix(ch) for ch in arr)


def exact(v: float) -> str:
    """A number as Python source that reads back exactly (ints without ``.0``)."""
    f = float(v)
    return str(int(f)) if f == int(f) else repr(f)


def py_literal(a: Any) -> str:
    """Nested list literal of an array, exact, with integer-valued floats shown as ints."""
    arr = np.asarray(a)
    if arr.ndim == 0:
        return exact(arr)
    return "[" + ", ".join(py_literal(x) for x in arr) + "]"


def np_assign(name: str, a: Any) -> str:
    """``name = np.array([...], dtype=float)`` with one row per line for 2-D and up."""
    arr = np.asarray(a)
    if arr.ndim >= 2:
        inner = ",\n".join("    " + py_literal(x) for x in arr)
        return f"{name} = np.array([\n{inner},\n], dtype=float)"
    return f"{name} = np.array({py_literal(arr)}, dtype=float)"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


def pair_text(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, Sequence):
        a, b = v
        return str(a) if a == b else f"({a}, {b})"
    return str(v)
