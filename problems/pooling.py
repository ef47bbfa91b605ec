"""Max and average pooling by hand, forward and backward.

Max pooling passes each output's gradient to the position of the window's maximum
(torch's rule for ties: the first maximum in row-major order; our variants have no ties);
average pooling spreads it evenly, divided by the window size. Overlapping windows add up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.checking import solved
from convpset.problems.contract import Family, array_answers_budget
from convpset.problems.render import latex_matrix, np_assign, pair_text, shape_text
from convpset.solutions import numpy_ref

NAME = "pooling"


def _kw(v: Variant) -> dict[str, Any]:
    p = v.params
    return {"kernel_size": p["kernel_size"], "stride": p["stride"], "padding": p["padding"]}


def _forward(v: Variant, mode: str, **extra: Any) -> np.ndarray:
    f = numpy_ref.maxpool2d if mode == "max" else numpy_ref.avgpool2d
    return f(v.array("x"), **_kw(v), **extra)


def _backward(v: Variant, mode: str, **extra: Any) -> np.ndarray:
    if mode == "max":
        return numpy_ref.maxpool2d_backward(v.array("x"), v.array("grad_y"), **_kw(v))
    return numpy_ref.avgpool2d_backward(v.array("x").shape, v.array("grad_y"), **_kw(v), **extra)


# Averages such as 7/9 are computed by hand: two decimals are enough.
HAND_TOL = {"rtol": 1e-3, "atol": 5e-3}


def _max_windows(v: Variant, pad: float, add: bool) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling (Y, dL/dX) computed window by window, as a student's loop would: the
    border padded with ``pad``, and each window's gradient added to its maximum (``add``)
    or written over what an earlier overlapping window put there."""
    x, gy = v.array("x"), v.array("grad_y")
    k, s, p = v.params["kernel_size"], v.params["stride"], v.params["padding"]
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), constant_values=pad)
    y = np.zeros_like(gy)
    dx = np.zeros_like(xp)
    for c in range(gy.shape[0]):
        for i in range(gy.shape[1]):
            for j in range(gy.shape[2]):
                win = xp[c, i * s:i * s + k, j * s:j * s + k]
                a, b = np.unravel_index(int(np.argmax(win)), win.shape)
                y[c, i, j] = win[a, b]
                dx[c, i * s + a, j * s + b] = (dx[c, i * s + a, j * s + b] if add else 0) + gy[c, i, j]
    return y, dx[:, p:p + x.shape[1], p:p + x.shape[2]]


def _windows_accumulate_overwrite(v: Variant) -> np.ndarray:
    """Max-pool backward where a later window overwrites instead of adding (a loop bug)."""
    return _max_windows(v, -np.inf, add=False)[1]


def _zero_padded_max(v: Variant) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling (Y, dL/dX) with the border padded by zeros instead of −∞: a window
    whose real entries are all negative then outputs 0, and its gradient is lost on the
    padding (the ``maxpool_zero_pad`` mistake)."""
    return _max_windows(v, 0.0, add=True)


def _ctx(v: Variant) -> dict[str, Any]:
    p = v.params
    return {"v": v, "mode": p["mode"], "x": latex_matrix(v.array("x")),
            "grad_y": latex_matrix(v.array("grad_y")), "in_shape": shape_text(v.array("x").shape),
            "out_shape": shape_text(v.array("grad_y").shape), "k": p["kernel_size"],
            "stride": pair_text(p["stride"]), "padding": pair_text(p["padding"]),
            "padded": p["padding"] != 0}


def _data_code(v: Variant) -> str:
    p = v.params
    return "\n".join(["import numpy as np", "", np_assign("X", v.array("x")),
                      np_assign("dY", v.array("grad_y")),
                      f"mode = {p['mode']!r}",
                      f"kernel_size, stride, padding = {p['kernel_size']}, {p['stride']}, {p['padding']}"])


# what a student answering with torch writes (simulated returns; `{s}`: the suffix)
TORCH_ANSWER = '''import torch
import torch.nn.functional as F
_X = torch.tensor(X, requires_grad=True)
_pool = F.max_pool2d if mode == "max" else F.avg_pool2d
_Y = _pool(_X[None], kernel_size, stride, padding)[0]
(_Y * torch.tensor(dY)).sum().backward()
Y{s}, dX{s} = _Y.detach(), _X.grad'''


class Pooling(Family):
    name = NAME
    levels = (1, 2, 3)
    torch_code = TORCH_ANSWER
    #: hand work: entries of Y and dX together; the largest |number| (inputs are -20..20)
    budgets = {lv: {"entries": 64, "largest": 20} for lv in (1, 2, 3)}
    advertised = {1: {"max": (0.35, 0.65), "avg": (0.35, 0.65)},
                  2: {"max": (0.25, 0.55), "avg": (0.45, 0.75), "overlap": (0.25, 0.55),
                      "padding": (0.45, 0.75), "max_padding": (0.15, 0.4)},
                  3: {"max": (0.35, 0.65), "avg": (0.35, 0.65), "channels": (1.0, 1.0),
                      "stride_one": (1.0, 1.0)}}
    mistake_names = {1: ("wrong_mode", "max_grad_spread", "max_grad_copied", "avg_not_divided"),
                     2: ("wrong_mode", "max_grad_spread", "max_grad_copied", "overlap_overwrite",
                         "maxpool_zero_pad", "avg_not_divided", "avg_exclude_pad"),
                     3: ("wrong_mode", "max_grad_spread", "max_grad_copied", "overlap_overwrite",
                         "avg_not_divided")}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        mode = ["max", "avg"][int(rng.integers(2))]
        c, padding = 1, 0
        if level == 1:
            h = w = 4
            k = s = 2
        elif level == 2:
            case = ["overlap", "padding"][int(rng.integers(2))]
            if case == "overlap":
                h, w, k, s = int(rng.integers(5, 7)), int(rng.integers(5, 7)), 3, 2
            else:
                h, w, k, s, padding = int(rng.integers(3, 5)), int(rng.integers(3, 5)), 2, 2, 1
        else:
            c, h, w, k, s = 2, 4, int(rng.integers(4, 6)), 2, 1
        n = c * h * w
        x = rng.choice(np.arange(-20, 21), size=n, replace=False).reshape(c, h, w)
        out = numpy_ref.maxpool2d(x.astype(float), k, s, padding).shape
        grad_y = rng.integers(1, 6, size=out)
        return Variant(NAME, level, {"mode": mode, "x": x.tolist(), "kernel_size": k, "stride": s,
                                     "padding": padding, "grad_y": grad_y.tolist()})

    def traits(self, v: Variant) -> frozenset[str]:
        p = v.params
        out = {p["mode"]: True, "overlap": p["stride"] < p["kernel_size"],
               "padding": p["padding"] != 0, "channels": len(p["x"]) > 1,
               "stride_one": p["stride"] == 1,
               "max_padding": p["mode"] == "max" and p["padding"] != 0}
        return frozenset(k for k, on in out.items() if on)

    def size_budget(self, v: Variant) -> dict[str, float]:
        return array_answers_budget(solved(self, v))

    def parts(self, v: Variant) -> list[Part]:
        return [
            self.part("Y", "array", 2.0, shape=tuple(v.array("grad_y").shape), per_element=True,
                      **HAND_TOL),
            self.part("dX", "array", 2.0, shape=tuple(v.array("x").shape), per_element=True,
                      **HAND_TOL),
        ]


    def solve(self, v: Variant) -> dict[str, np.ndarray]:
        mode = v.params["mode"]
        return {"Y": _forward(v, mode), "dX": _backward(v, mode)}

    def mistakes(self, v: Variant) -> list[Mistake]:
        p = v.params
        k, s = p["kernel_size"], p["stride"]
        out: list[Mistake] = []
        other = "avg" if p["mode"] == "max" else "max"
        out.append(Mistake("wrong_mode", {"Y": _forward(v, other)}, {"mode": p["mode"]}))
        if p["mode"] == "max":
            spread = _backward(v, "avg")
            out.append(Mistake("max_grad_spread", {"dX": spread}))
            out.append(Mistake("max_grad_copied", {"dX": spread * k * k}))
            if s < k:
                out.append(Mistake("overlap_overwrite", {"dX": _windows_accumulate_overwrite(v)}))
            if p["padding"]:
                y0, dx0 = _zero_padded_max(v)
                out.append(Mistake("maxpool_zero_pad", {"Y": y0, "dX": dx0}))
        else:
            out.append(Mistake("avg_not_divided", {"dX": _backward(v, "avg") * k * k}, {"k2": k * k}))
            if p["padding"]:
                out.append(Mistake("avg_exclude_pad", {
                    "Y": _forward(v, "avg", count_include_pad=False),
                    "dX": _backward(v, "avg", count_include_pad=False)}))
        return out

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        return _ctx(v)

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        a = self.solve(v)
        return {"Y": latex_matrix(a["Y"]), "dX": latex_matrix(a["dX"])}

    def data_code(self, v: Variant) -> str:
        return _data_code(v)

    def features(self, v: Variant) -> dict[str, float]:
        return {"input_size": float(np.asarray(v.params["x"]).size),
                "window": float(v.params["kernel_size"])}

    def oracle(self, v: Variant) -> dict[str, np.ndarray]:
        from convpset.solutions import torch_ref

        x, gy, kw = v.array("x"), v.array("grad_y"), _kw(v)
        if v.params["mode"] == "max":
            return {"Y": torch_ref.maxpool2d(x, **kw),
                    "dX": torch_ref.maxpool2d_backward(x, gy, **kw)}
        return {"Y": torch_ref.avgpool2d(x, **kw),
                "dX": torch_ref.avgpool2d_backward(x.shape, gy, **kw)}


FAMILY = Pooling()
