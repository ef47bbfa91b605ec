"""Answer conversion: a student's variable -> plain bool/int64/float64 arrays.

Shared by the sandboxed child (after the cells ran) and by the nbgrader bridge (inside a
real Jupyter kernel), so that both graders judge identical data. This module must stay
importable without the rest of the sandbox: it imports only numpy (and looks torch up in
``sys.modules``, never imports it).

Every function and type it uses is bound here at import time -- in the sandbox that is in
the template, before any student code ran -- so monkeypatching numpy or builtins in a cell
does not change how answers are read. Only exact built-in and numpy types are accepted;
a student's class never gets a method called except through torch's own conversion.
"""

from __future__ import annotations

import sys

import numpy as np

_np = np
_ndarray = np.ndarray
_generic = np.generic
_asarray = np.asarray
_ascontig = np.ascontiguousarray
_isinstance = isinstance
_type = type
_len = len
_str = str
_issubclass = issubclass
_getattr = getattr
# numpy's own scalar types, exactly (a student's subclass may forge ``__module__``)
_NP_SCALARS = frozenset(t for t in set(np.sctypeDict.values())
                        if issubclass(t, (np.number, np.bool_)))

MAX_NAME = 200


def clean_text(s: str, n: int) -> str:
    """At most ``n`` characters of valid UTF-8 text (lone surrogates become '?')."""
    return _str.encode(s[:n], "utf-8", "replace").decode("utf-8")


def safe_str(x, n: int) -> str:
    """``str(x)`` cut to ``n`` characters and made valid UTF-8, whatever ``x`` does."""
    try:
        s = _str(x)
        if _type(s) is not _str:
            s = "<unprintable>"
    except BaseException:
        s = "<unprintable>"
    return clean_text(s, n)


def type_name(v) -> str:
    t = _type(v)
    try:
        mod = _type.__dict__["__module__"].__get__(t)
        qn = _type.__dict__["__qualname__"].__get__(t)
        if _type(mod) is not _str or _type(qn) is not _str:
            return "<unknown>"
    except BaseException:
        return "<unknown>"
    if mod in ("builtins", "__main__"):
        return clean_text(qn, MAX_NAME)
    if mod.startswith("numpy"):
        mod = "numpy"
    if mod.startswith("torch") and qn in ("Tensor", "Parameter"):
        mod = "torch" if qn == "Tensor" else mod
    return clean_text(mod + "." + qn, MAX_NAME)


class NotConvertible(Exception):
    pass


_SCALARS = (int, float, bool)
_HEAPTYPE = 1 << 9                        # Py_TPFLAGS_HEAPTYPE: a class made by Python code
_flags_of = _type.__dict__["__flags__"].__get__


def _is_seq(t) -> bool:
    """A list, a tuple, or a tuple type defined in C (``torch.Size``, what ``y.shape``
    gives): a C type is never a student's, and it iterates as a plain tuple. A class
    written in Python (``_HEAPTYPE``) could run code, so it is never read."""
    if t is list or t is tuple:
        return True
    return _issubclass(t, tuple) and not _flags_of(t) & _HEAPTYPE


def _walk(v, depth: int, budget: list) -> None:
    """Check a nested list/tuple contains only plain numbers (no student code runs)."""
    t = _type(v)
    budget[0] -= 1
    if budget[0] < 0:
        raise NotConvertible("nested list too large")
    if t in _SCALARS:
        return
    if _is_seq(t):
        if depth > 32:
            raise NotConvertible("nested list too deep")
        for x in v:
            _walk(x, depth + 1, budget)
        return
    if t is _ndarray:                     # a list of numpy arrays (one per channel, say)
        budget[0] -= v.size
        if budget[0] < 0:
            raise NotConvertible("nested list too large")
        if v.dtype.kind not in "biuf":
            raise NotConvertible(f"element of type {type_name(v)} in nested list")
        return
    if t is complex:
        raise NotConvertible("complex values")
    if t is _str or t is bytes:
        raise NotConvertible("strings in nested list")
    if v is None:
        raise NotConvertible("None in nested list")
    if _issubclass(t, _generic):
        if t in _NP_SCALARS:
            return
        raise NotConvertible(f"element of type {type_name(v)}")
    raise NotConvertible(f"element of type {type_name(v)} in nested list")


def _normalize(a):
    if _type(a) is not _ndarray:
        a = _ndarray.view(a, _ndarray)
    k = a.dtype.kind
    if k == "b":
        a = a.astype(_np.bool_)
    elif k == "i":
        a = a.astype(_np.int64)
    elif k == "u":
        if a.size and a.max() > _np.iinfo(_np.int64).max:
            raise NotConvertible("unsigned values too large for int64")
        a = a.astype(_np.int64)
    elif k == "f":
        a = a.astype(_np.float64)
    elif k == "O":
        raise NotConvertible("object dtype")
    elif k == "c":
        raise NotConvertible("complex values")
    elif k in "US":
        raise NotConvertible(f"strings (dtype {a.dtype.str})")
    else:
        raise NotConvertible(f"unsupported dtype {a.dtype.str}")
    return _ascontig(a)


class Rows:
    """A ragged list of number rows, e.g. layer shapes [(6, 24, 24), (256,)]."""

    def __init__(self, lengths, flat):
        self.lengths = lengths
        self.flat = flat


def _ragged_rows(v):
    """Rows of plain numbers of different lengths, or None (checked by _walk already)."""
    lengths = []
    values = []
    for row in v:
        if not _is_seq(_type(row)):
            return None
        for x in row:
            if _is_seq(_type(x)) or _type(x) is _ndarray:
                return None
            values.append(x)
        lengths.append(_len(row))
    return Rows(lengths, _normalize(_asarray(values, dtype=_np.float64)))


def convert(v):
    t = _type(v)
    if v is None:
        raise NotConvertible("value is None")
    if t in _SCALARS:
        return _normalize(_asarray(v))
    if t is complex:
        raise NotConvertible("complex values")
    if t is _str or t is bytes:
        raise NotConvertible("a string, not numbers")
    if _is_seq(t):
        _walk(v, 0, [10_000_000])
        try:
            a = _asarray(v)
        except ValueError as e:
            a = None
            why = safe_str(e, 200)
        else:
            why = ""
        if a is None or a.dtype.kind == "O":
            rows = _ragged_rows(v)
            if rows is not None:
                return rows
            raise NotConvertible(f"object dtype: ragged nested list {why}".strip()) from None
        return _normalize(a)
    if t is _ndarray and v.dtype.kind == "O" and v.ndim == 1 and v.size <= 100_000:
        # a ragged object array, np.array([(6, 24, 24), (256,)], dtype=object): its items
        # are read as a list (references only, no method called), then checked as one
        try:
            return convert(_ndarray.tolist(v))
        except NotConvertible:
            raise NotConvertible("object dtype") from None
    if _issubclass(t, _ndarray):
        return _normalize(_ndarray.view(v, _ndarray).copy())
    if _issubclass(t, _generic):
        if t not in _NP_SCALARS:
            raise NotConvertible(f"numpy scalar subclass {type_name(v)}")
        return _normalize(_asarray(v))
    torch = sys.modules.get("torch")
    tb = _getattr(_getattr(torch, "_C", None), "TensorBase", None) if torch is not None else None
    if _isinstance(tb, _type) and _issubclass(t, tb):
        try:
            x = tb.detach(v)
            if x.is_complex():
                raise NotConvertible("complex values")
            x = tb.cpu(x)
            if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
                x = x.to(torch.float64)
            a = tb.numpy(x)
        except NotConvertible:
            raise
        except Exception as e:
            raise NotConvertible(f"tensor conversion failed: {safe_str(e, 300)}") from None
        return _normalize(_ndarray.view(a, _ndarray).copy())
    raise NotConvertible(f"a {type_name(v)} object, not numbers")


def to_plain(v):
    """(source_type, array or None, ragged row lengths or None, error or None) for one value.

    The same conversion runs in the sandbox child and, for ``nbgrader autograde``, inside
    the notebook kernel, so that both graders judge identical data.
    """
    src = type_name(v)
    try:
        a = convert(v)
    except NotConvertible as e:
        return src, None, None, safe_str(e.args[0], 500)
    if _type(a) is Rows:
        return src, a.flat, a.lengths, None
    return src, a, None, None
