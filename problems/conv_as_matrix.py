"""Convolution as a matrix: ``y.ravel() == W @ x.ravel()``.

The matrix makes weight sharing and sparsity visible: every row holds the same kernel
weights, shifted, and zeros elsewhere. The course notes write the same layer as
``H = X·W`` with ``X`` a row vector; their matrix is our ``W.T``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant, suffixed
from convpset.problems.render import latex_matrix, np_assign, pair_text, shape_text
from convpset.problems.text import render
from convpset.solutions import numpy_ref

NAME = "conv_as_matrix"
LEVELS = (1, 2, 3)


def _ints(rng: np.random.Generator, shape: tuple[int, ...], lo: int = -3, hi: int = 3) -> list:
    return rng.integers(lo, hi + 1, size=shape).tolist()


def generate(rng: np.random.Generator, level: int) -> Variant:
    """Sizes 3..6, entries -3..3; level 2 adds padding/stride/channels, level 3 dilation/groups."""
    c_in = c_out = groups = 1
    stride = dilation = 1
    padding = 0
    bias = None
    if level == 1:
        h, w = int(rng.integers(3, 6)), int(rng.integers(3, 6))
        k = int(rng.integers(2, min(h, w)))  # output at least 2 wide
    elif level == 2:
        case = ["padding", "stride", "channels"][int(rng.integers(3))]
        if case == "padding":
            h, w, k, padding = int(rng.integers(3, 5)), int(rng.integers(3, 5)), 3, 1
        elif case == "stride":
            h, w, k, stride = 5, int(rng.integers(4, 6)), int(rng.integers(2, 4)), 2
        else:
            h, w, k, c_in = int(rng.integers(3, 5)), int(rng.integers(3, 5)), 2, 2
        bias = _ints(rng, (c_out,), -2, 2)
    else:
        case = ["dilation", "groups", "out_channels"][int(rng.integers(3))]
        if case == "dilation":
            h, w, k, dilation = int(rng.integers(4, 6)), int(rng.integers(4, 6)), 2, 2
        elif case == "groups":
            h, w, k, c_in, c_out, groups = 3, int(rng.integers(3, 5)), 2, 2, 2, 2
        else:
            h, w, k, c_out = int(rng.integers(3, 5)), int(rng.integers(3, 5)), 2, 2
        bias = _ints(rng, (c_out,), -2, 2)
    kernel = _ints(rng, (c_out, c_in // groups, k, k))
    x = _ints(rng, (c_in, h, w))
    return Variant(NAME, level, {
        "input_shape": [c_in, h, w], "kernel": kernel, "bias": bias, "x": x,
        "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
    })


def _conv_kwargs(v: Variant) -> dict[str, Any]:
    p = v.params
    return {"stride": p["stride"], "padding": p["padding"], "dilation": p["dilation"],
            "groups": p["groups"]}


def _matrix(v: Variant, kernel: np.ndarray, **override: Any) -> np.ndarray:
    kw = _conv_kwargs(v) | override
    return numpy_ref.conv_matrix(tuple(v.params["input_shape"]), kernel, **kw)


def _forward(v: Variant, kernel: np.ndarray, with_bias: bool = True) -> np.ndarray:
    b = v.array("bias") if (with_bias and v.params["bias"] is not None) else None
    return numpy_ref.conv2d(v.array("x"), kernel, b, **_conv_kwargs(v))


def output_shape(v: Variant) -> tuple[int, int, int]:
    c_out = len(v.params["kernel"])
    h_out, w_out = _forward(v, v.array("kernel")).shape[1:]
    return (c_out, int(h_out), int(w_out))


def parts(v: Variant) -> list[Part]:
    out = output_shape(v)
    n_out, n_in = int(np.prod(out)), int(np.prod(v.params["input_shape"]))
    return [
        Part("W", "array", 3.0, {"en": "the convolution matrix W", "ru": "матрица свёртки W"},
             shape=(n_out, n_in), per_element=True),
        Part("y", "array", 1.0, {"en": "the layer output y", "ru": "выход слоя y"},
             shape=out, per_element=True),
    ]


def solve(v: Variant) -> dict[str, np.ndarray]:
    k = v.array("kernel")
    return {"W": _matrix(v, k), "y": _forward(v, k)}


def _column_major(v: Variant, w: np.ndarray) -> np.ndarray:
    """W for x and y flattened in Fortran (column-major) order instead of C order."""
    out = output_shape(v)
    p_out = np.arange(w.shape[0]).reshape(out).ravel(order="F")
    p_in = np.arange(w.shape[1]).reshape(tuple(v.params["input_shape"])).ravel(order="F")
    return w[p_out][:, p_in]


def mistakes(v: Variant) -> list[Mistake]:
    k = v.array("kernel")
    flipped = k[..., ::-1, ::-1]
    w = _matrix(v, k)
    out = [
        Mistake("transpose", {"W": w.T}),
        Mistake("flipped_kernel", {"W": _matrix(v, flipped), "y": _forward(v, flipped)}),
        Mistake("column_major", {"W": _column_major(v, w)}),
    ]
    if v.params["bias"] is not None:
        out.append(Mistake("forgot_bias", {"y": _forward(v, k, with_bias=False)}))
    if v.params["padding"] != 0:
        out.append(Mistake("ignored_padding", {"W": _matrix(v, k, padding=0)}))
    if v.params["stride"] != 1:
        out.append(Mistake("ignored_stride", {"W": _matrix(v, k, stride=1)}))
    return out


def _ctx(v: Variant, suffix: str = "") -> dict[str, Any]:
    p = v.params
    k = v.array("kernel")
    return {
        "v": v, "p": p, "x": latex_matrix(v.array("x")),
        "kernels": [[latex_matrix(k[o, i]) for i in range(k.shape[1])] for o in range(k.shape[0])],
        "bias": None if p["bias"] is None else latex_matrix(v.array("bias")),
        "in_shape": shape_text(p["input_shape"]), "out_shape": shape_text(output_shape(v)),
        "stride": pair_text(p["stride"]), "padding": pair_text(p["padding"]),
        "dilation": pair_text(p["dilation"]), "groups": p["groups"],
        "parts": suffixed(parts(v), suffix),
    }


def statement(v: Variant, lang: str, suffix: str = "") -> str:
    return render(lang, f"{NAME}.statement", **_ctx(v, suffix=suffix))


def explain(v: Variant, lang: str) -> str:
    ans = solve(v)
    return render(lang, f"{NAME}.explain", W=latex_matrix(ans["W"]), y=latex_matrix(ans["y"]),
                  **_ctx(v))


def data_code(v: Variant) -> str:
    p = v.params
    lines = ["import numpy as np", "", np_assign("x", v.array("x")),
             np_assign("K", v.array("kernel"))]
    lines.append(np_assign("b", v.array("bias")) if p["bias"] is not None else "b = None  # no bias")
    lines += [f"stride, padding, dilation, groups = {p['stride']}, {p['padding']}, "
              f"{p['dilation']}, {p['groups']}"]
    return "\n".join(lines)
