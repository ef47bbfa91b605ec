"""Solve one problem given as plain JSON parameters (what ``pset solve`` exposes).

Each solver validates its fields and raises :class:`SpecError` naming the field, so the
command line can print one line and exit 2 instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import network, numpy_ref
from .network import SpecError

#: caps on what ``pset solve`` computes (README, "Commands"): hand-sized problems are far
#: below them, and a typo such as a 1×150×150 input must fail in one line, not allocate
#: gigabytes (its W would have 22500² entries)
MAX_ENTRIES = 10_000          # entries of any one input array (x, kernel, grad_y)
MAX_MATRIX_ENTRIES = 1_000_000  # entries of the convolution matrix W
MAX_SIDE = 10_000             # any one size, stride, padding or group count


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _array(params: Mapping[str, Any], field: str, ndim: int) -> np.ndarray:
    if field not in params:
        raise SpecError(field, "is required")
    what = f"must be a nested list of numbers with {ndim} dimensions"
    if not _numbers_only(params[field]):
        raise SpecError(field, what)
    try:
        arr = np.asarray(params[field], dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise SpecError(field, what) from None
    if arr.size > MAX_ENTRIES:
        raise SpecError(field, f"has {arr.size} entries; at most {MAX_ENTRIES} are solved here")
    if arr.ndim != ndim:
        raise SpecError(field, f"must have {ndim} dimensions, found {arr.ndim} (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise SpecError(field, "must hold finite numbers")
    return arr


def _numbers_only(v: Any, depth: int = 0) -> bool:
    """Only lists and numbers, no booleans or strings (numpy would turn ``true`` into 1.0
    and ``"3"`` into 3.0), nested at most a few levels."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float):
        return True
    return isinstance(v, list) and depth < 6 and all(_numbers_only(x, depth + 1) for x in v)


def _size(params: Mapping[str, Any], field: str, default: Any, allow_zero: bool = False,
          allow_str: tuple[str, ...] = ()) -> Any:
    v = params.get(field, default)
    if isinstance(v, str) and v in allow_str:
        return v
    items = v if isinstance(v, list | tuple) else [v]
    lo = 0 if allow_zero else 1
    if len(items) not in (1, 2) or not all(_is_int(i) and lo <= i <= MAX_SIDE for i in items):
        what = "a non-negative int" if allow_zero else "a positive int"
        extra = f" or one of {list(allow_str)}" if allow_str else ""
        raise SpecError(field, f"must be {what} or a pair of them{extra}, found {v!r}")
    return tuple(items) if len(items) == 2 else items[0]


def _conv_kw(params: Mapping[str, Any]) -> dict[str, Any]:
    kw = {"stride": _size(params, "stride", 1),
          "padding": _size(params, "padding", 0, allow_zero=True, allow_str=("same", "valid")),
          "dilation": _size(params, "dilation", 1)}
    g = params.get("groups", 1)
    if not _is_int(g) or not 1 <= g <= MAX_SIDE:
        raise SpecError("groups", f"must be a positive int, found {g!r}")
    kw["groups"] = g
    return kw


def _call(field: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except ValueError as err:
        raise SpecError(field, str(err)) from None


def solve_network(params: Mapping[str, Any]) -> dict[str, Any]:
    return network.to_json(network.analyze(dict(params)))


def solve_conv_as_matrix(params: Mapping[str, Any]) -> dict[str, Any]:
    """W (and, when ``x`` is given, ``y = W·vec(x)`` reshaped: the output itself)."""
    x = _array(params, "x", 3) if "x" in params else None
    shape = params.get("input_shape", list(x.shape) if x is not None else None)
    if not (isinstance(shape, list | tuple) and len(shape) == 3
            and all(_is_int(s) and 0 < s <= MAX_SIDE for s in shape)):
        raise SpecError("input_shape", f"must be [C, H, W] of positive ints, found {shape!r}")
    n_in = shape[0] * shape[1] * shape[2]
    if n_in > MAX_ENTRIES:
        raise SpecError("input_shape", f"has {n_in} entries; at most {MAX_ENTRIES} are solved here")
    kernel = _array(params, "kernel", 4)
    kw = _conv_kw(params)
    out = _call("kernel", numpy_ref.conv2d, np.zeros(shape), kernel, None, **kw).shape
    if n_in * int(np.prod(out)) > MAX_MATRIX_ENTRIES:
        raise SpecError("input_shape", f"W would have {n_in * int(np.prod(out))} entries; at "
                        f"most {MAX_MATRIX_ENTRIES} are solved here")
    w = _call("kernel", numpy_ref.conv_matrix, tuple(shape), kernel, **kw)
    solved: dict[str, Any] = {"W": w.tolist(), "output_shape": list(out)}
    if x is not None:
        if list(x.shape) != list(shape):
            raise SpecError("x", f"has shape {list(x.shape)}, but input_shape is {list(shape)}")
        solved["y"] = (w @ x.reshape(-1)).reshape(out).tolist()
    return solved


def solve_conv_backward(params: Mapping[str, Any]) -> dict[str, Any]:
    x, k, gy = _array(params, "x", 3), _array(params, "kernel", 4), _array(params, "grad_y", 3)
    g = _call("grad_y", numpy_ref.conv2d_backward, x, k, gy, **_conv_kw(params))
    return {"dK": g.dw.tolist(), "dX": g.dx.tolist(), "db": g.db.tolist()}


def solve_pooling(params: Mapping[str, Any]) -> dict[str, Any]:
    x = _array(params, "x", 3)
    mode = params.get("mode", "max")
    if mode not in ("max", "avg"):
        raise SpecError("mode", f"must be 'max' or 'avg', found {mode!r}")
    kw = {"kernel_size": _size(params, "kernel_size", None),
          "stride": None if params.get("stride") is None else _size(params, "stride", None),
          "padding": _size(params, "padding", 0, allow_zero=True)}
    fwd = numpy_ref.maxpool2d if mode == "max" else numpy_ref.avgpool2d
    y = _call("kernel_size", fwd, x, **kw)
    out: dict[str, Any] = {"Y": y.tolist()}
    if "grad_y" in params:
        gy = _array(params, "grad_y", 3)
        if gy.shape != y.shape:
            raise SpecError("grad_y", f"must have the output's shape {y.shape}, found {gy.shape}")
        dx = (numpy_ref.maxpool2d_backward(x, gy, **kw) if mode == "max"
              else numpy_ref.avgpool2d_backward(x.shape, gy, **kw))
        out["dX"] = dx.tolist()
    return out


SOLVERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "network": solve_network,
    "conv_as_matrix": solve_conv_as_matrix,
    "conv_backward": solve_conv_backward,
    "pooling": solve_pooling,
}


def solve(kind: str, params: Any) -> dict[str, Any]:
    """Solve ``kind`` from JSON ``params``; raises SpecError naming the bad field.

    Never anything else: an error the validation did not foresee is still reported as
    one line naming ``params`` (the command line prints it and exits 2, no traceback).
    """
    if kind not in SOLVERS:
        raise SpecError("kind", f"must be one of {', '.join(SOLVERS)}, found {kind!r}")
    if not isinstance(params, Mapping):
        raise SpecError("params", f"must be a JSON object, found {type(params).__name__}")
    try:
        return SOLVERS[kind](params)
    except SpecError:
        raise
    except MemoryError:
        raise SpecError("params", "the problem is too large to solve here") from None
    except Exception as err:  # noqa: BLE001 -- one line for the instructor, never a traceback
        detail = str(err).splitlines()[0] if str(err) else ""
        raise SpecError("params", f"cannot be solved ({type(err).__name__}"
                        f"{': ' + detail if detail else ''})") from None
