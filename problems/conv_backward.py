"""Backpropagation through a convolution by hand: dL/dK, dL/dX, dL/db from dL/dY.

The fact behind it (course notes, problem 5в): the gradients of a correlation are
correlations -- dL/dK correlates the input with dL/dY, dL/dX is the full convolution of
dL/dY with the kernel (a correlation with the kernel turned by 180°).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.checking import solved
from convpset.problems.contract import Family, array_answers_budget, input_kernel_features
from convpset.problems.render import latex_matrix, np_assign, pair_text, shape_text
from convpset.solutions import numpy_ref

NAME = "conv_backward"


def _ints(rng: np.random.Generator, shape: tuple[int, ...], lo: int, hi: int) -> list:
    return rng.integers(lo, hi + 1, size=shape).tolist()


def _kw(v: Variant) -> dict[str, Any]:
    p = v.params
    return {"stride": p["stride"], "padding": p["padding"], "dilation": p["dilation"]}


def _grads(v: Variant, kernel: np.ndarray | None = None) -> numpy_ref.ConvGrads:
    k = v.array("kernel") if kernel is None else kernel
    return numpy_ref.conv2d_backward(v.array("x"), k, v.array("grad_y"), **_kw(v))


def _ctx(v: Variant) -> dict[str, Any]:
    p = v.params
    k = v.array("kernel")
    return {
        "v": v, "x": latex_matrix(v.array("x")), "grad_y": latex_matrix(v.array("grad_y")),
        "kernels": [[latex_matrix(k[o, i]) for i in range(k.shape[1])] for o in range(k.shape[0])],
        "in_shape": shape_text(v.array("x").shape), "out_shape": shape_text(v.array("grad_y").shape),
        "k_shape": shape_text(k.shape),
        "stride": pair_text(p["stride"]), "padding": pair_text(p["padding"]),
        "dilation": pair_text(p["dilation"]), "padded": p["padding"] != 0,
    }


def dx_steps(v: Variant) -> dict[str, Any]:
    """Sizes of each step that turns dL/dY into dL/dX when stride, padding or dilation are
    not 1, 1, 0 (there "the full convolution of dL/dY with K" alone has the wrong shape):
    insert s−1 zeros between entries, pad by d(k−1), correlate with the turned kernel,
    add zero rows for inputs no window reached, crop p from each side."""
    p = v.params
    s, pad, d = int(p["stride"]), int(p["padding"]), int(p["dilation"])
    (_, h, w), (_, kh, kw) = v.array("x").shape, v.array("kernel").shape[1:]
    oh, ow = v.array("grad_y").shape[1:]

    def axis(n_in: int, n_out: int, k: int) -> dict[str, int]:
        dilated = (n_out - 1) * s + 1
        corr = (n_out - 1) * s + d * (k - 1) + 1
        return {"out": n_out, "dilated": dilated, "full": dilated + 2 * d * (k - 1),
                "corr": corr, "padded": n_in + 2 * pad, "extra": n_in + 2 * pad - corr,
                "x": n_in}

    a, b = axis(h, oh, kh), axis(w, ow, kw)
    sizes = {f"size_{key}": f"{a[key]}×{b[key]}" for key in a}
    return {"plain": (s, pad, d) == (1, 0, 1), "s": s, "p": pad, "d": d, "zeros": s - 1,
            "full_pad": d * (kh - 1), "extra": max(a["extra"], b["extra"]), **sizes}


def _data_code(v: Variant) -> str:
    p = v.params
    return "\n".join(["import numpy as np", "", np_assign("X", v.array("x")),
                      np_assign("K", v.array("kernel")), np_assign("dY", v.array("grad_y")),
                      f"stride, padding, dilation = {p['stride']}, {p['padding']}, {p['dilation']}"])


# what a student answering with torch writes (simulated returns; `{s}`: the suffix)
TORCH_ANSWER = '''import torch
import torch.nn.functional as F
_X = torch.tensor(X, requires_grad=True)
_K = torch.tensor(K, requires_grad=True)
_b = torch.zeros(K.shape[0], dtype=torch.float64, requires_grad=True)
_Y = F.conv2d(_X[None], _K, _b, stride=stride, padding=padding, dilation=dilation)[0]
(_Y * torch.tensor(dY)).sum().backward()
dK{s}, dX{s}, db{s} = _K.grad, _X.grad, _b.grad'''


class ConvBackward(Family):
    name = NAME
    levels = (1, 2, 3)
    torch_code = TORCH_ANSWER
    #: hand work: entries of dK, dX and db together; the largest |number| of the answers
    budgets = {lv: {"entries": 42, "largest": 30} for lv in (1, 2, 3)}
    advertised = {2: {"padding": (0.2, 0.45), "stride": (0.2, 0.45), "channels": (0.2, 0.45)},
                  3: {"dilation": (0.35, 0.65), "out_channels": (0.35, 0.65)}}
    mistake_names = {lv: ("flipped_gradient", "unflipped_kernel", "bias_mean", "bias_zero")
                     for lv in (1, 2, 3)}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        c_in = c_out = 1
        stride = dilation = 1
        padding = 0
        if level == 1:
            h, w = int(rng.integers(3, 6)), int(rng.integers(3, 6))
            k = int(rng.integers(2, min(h, w)))
        elif level == 2:
            case = ["padding", "stride", "channels"][int(rng.integers(3))]
            if case == "padding":
                h, w, k, padding = int(rng.integers(3, 5)), int(rng.integers(3, 5)), 3, 1
            elif case == "stride":
                h, w, k, stride = 5, int(rng.integers(4, 6)), int(rng.integers(2, 4)), 2
            else:
                h, w, k, c_in = int(rng.integers(3, 5)), int(rng.integers(3, 5)), 2, 2
        else:
            case = ["dilation", "out_channels"][int(rng.integers(2))]
            if case == "dilation":
                h, w, k, dilation = int(rng.integers(4, 6)), int(rng.integers(4, 6)), 2, 2
            else:
                h, w, k, c_out = int(rng.integers(3, 5)), int(rng.integers(3, 5)), 2, 2
        x = _ints(rng, (c_in, h, w), -2, 3)
        kernel = _ints(rng, (c_out, c_in, k, k), -2, 2)
        out = numpy_ref.conv2d(np.array(x, float), np.array(kernel, float), None, stride=stride,
                               padding=padding, dilation=dilation).shape
        grad_y = _ints(rng, out, -2, 2)
        return Variant(NAME, level, {"x": x, "kernel": kernel, "grad_y": grad_y, "stride": stride,
                                     "padding": padding, "dilation": dilation})

    def traits(self, v: Variant) -> frozenset[str]:
        p = v.params
        out = {"padding": p["padding"] != 0, "stride": p["stride"] != 1,
               "channels": len(p["x"]) > 1, "dilation": p["dilation"] != 1,
               "out_channels": len(p["kernel"]) > 1}
        return frozenset(k for k, on in out.items() if on)

    def size_budget(self, v: Variant) -> dict[str, float]:
        return array_answers_budget(solved(self, v))

    def parts(self, v: Variant) -> list[Part]:
        k, x = v.array("kernel"), v.array("x")
        return [
            self.part("dK", "array", 2.0, shape=k.shape, per_element=True),
            self.part("dX", "array", 2.0, shape=x.shape, per_element=True),
            self.part("db", "array", 1.0, shape=(k.shape[0],)),
        ]


    def solve(self, v: Variant) -> dict[str, np.ndarray]:
        g = _grads(v)
        return {"dK": g.dw, "dX": g.dx, "db": g.db}

    def mistakes(self, v: Variant) -> list[Mistake]:
        g = _grads(v)
        gy = v.array("grad_y")
        flipped = _grads(v, v.array("kernel")[..., ::-1, ::-1])
        return [
            Mistake("flipped_gradient", {"dK": g.dw[..., ::-1, ::-1]}),
            Mistake("unflipped_kernel", {"dX": flipped.dx}),
            Mistake("bias_mean", {"db": gy.mean(axis=(1, 2))}),
            Mistake("bias_zero", {"db": np.zeros_like(g.db)}),
        ]

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        return _ctx(v)

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        a = self.solve(v)
        return {"dK": latex_matrix(a["dK"]), "dX": latex_matrix(a["dX"]),
                "db": latex_matrix(a["db"]), **dx_steps(v)}

    def data_code(self, v: Variant) -> str:
        return _data_code(v)

    def features(self, v: Variant) -> dict[str, float]:
        return input_kernel_features(v)

    def oracle(self, v: Variant) -> dict[str, np.ndarray]:
        from convpset.solutions import torch_ref

        g = torch_ref.conv2d_backward(v.array("x"), v.array("kernel"), v.array("grad_y"),
                                      **_kw(v))
        return {"dK": g.dw, "dX": g.dx, "db": g.db}


FAMILY = ConvBackward()
