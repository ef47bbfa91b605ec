"""A transposed convolution by hand: its output, its shape and its matrix.

The course notes build it two ways: every input pixel spreads a copy of the kernel
scaled by its value ("как из одного числа сделать 9? Скопировать!"), the copies adding
up; and, for the matrix view, it is multiplication by ``Wᵀ`` where ``W`` is the matrix of
the ordinary convolution with the same kernel, stride and padding that maps the big
image back to the small one: ``y.ravel() == W.T @ x.ravel() (+ b)``.

One channel, torch's ``ConvTranspose2d`` conventions (``H = (h-1)s - 2p + k``; padding
*crops* the full output). The oracle is torch: ``F.conv_transpose2d`` for ``y`` and the
autograd Jacobian of that same call for ``Wᵀ``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family
from convpset.problems.render import latex_matrix, np_assign
from convpset.solutions import numpy_ref

NAME = "transposed_conv"
#: hand work a level may ask (out_shape, y and W together), as for ``conv_as_matrix``: ~8
#: entries a minute for a matrix of zeros and copies, 11, 13 and 16 minutes of writing
ENTRIES = {1: 88, 2: 104, 3: 128}
#: level 3: the share of 4×4 kernels on a 2×2 input (82 entries); the rest are 3×3 kernels
#: on a 2×3 input (107), so level 3 asks more than level 2 (82)
K4_SHARE = 1 / 3


def out_size(n: int, k: int, s: int, p: int) -> int:
    """torch's ConvTranspose2d output size (no dilation, no output_padding)."""
    return (n - 1) * s - 2 * p + k


def _geom(v: Variant, **override: int) -> dict[str, int]:
    p = v.params
    return {"stride": p["stride"], "padding": p["padding"]} | override


def transposed(v: Variant, kernel: np.ndarray, bias: bool = True, **override: int) -> np.ndarray:
    """The layer's output (2-D), via the numpy reference."""
    b = None if (v.params["bias"] is None or not bias) else [float(v.params["bias"])]
    return numpy_ref.conv_transpose2d(v.array("x")[None], kernel[None, None], b,
                                      **_geom(v, **override))[0]


def conv_matrix(v: Variant, kernel: np.ndarray, **override: int) -> np.ndarray:
    """W of Conv2d(kernel, stride, padding) from the big (output-sized) image to x."""
    g = _geom(v, **override)
    h, w = v.array("x").shape
    k = kernel.shape[0]
    big = (1, out_size(h, k, g["stride"], g["padding"]), out_size(w, k, g["stride"], g["padding"]))
    return numpy_ref.conv_matrix(big, kernel[None, None], **g)


def _answers(v: Variant, kernel: np.ndarray, **override: int) -> dict[str, Any]:
    y = transposed(v, kernel, **override)
    return {"out_shape": np.array(y.shape), "y": y, "W": conv_matrix(v, kernel, **override)}


def _mistakes(v: Variant) -> list[Mistake]:
    p = v.params
    k = v.array("kernel")
    h, w = v.array("x").shape
    n = k.shape[0]
    truth = _answers(v, k)
    flipped = _answers(v, k[::-1, ::-1])
    out = [
        Mistake("flipped_kernel", {"y": flipped["y"], "W": flipped["W"]}),
        Mistake("transpose", {"W": truth["W"].T}),
        Mistake("conv_shape", {"out_shape": np.array(
            [(a + 2 * p["padding"] - n) // p["stride"] + 1 for a in (h, w)])}),
    ]
    if p["padding"]:      # the full scatter output, padding not cut off
        full = transposed(v, k, padding=0)
        out.append(Mistake("padding_added", {"out_shape": np.array(full.shape), "y": full}))
    if p["stride"] > 1:
        out.append(Mistake("no_stride", _answers(v, k, stride=1)))
    if p["bias"] is not None:
        out.append(Mistake("forgot_bias", {"y": transposed(v, k, bias=False)}))
    return out


# what a student answering with torch writes (simulated returns; `{s}`: the suffix)
TORCH_ANSWER = '''import torch
import torch.nn.functional as F
_x = torch.tensor(x)[None, None]
_K = torch.tensor(K)[None, None]
_b = None if b is None else torch.tensor([float(b)], dtype=torch.float64)
y{s} = F.conv_transpose2d(_x, _K, _b, stride=stride, padding=padding)[0, 0]
out_shape{s} = list(y{s}.shape)
# the layer is x -> W.T @ x: its Jacobian is W.T
_J = torch.autograd.functional.jacobian(
    lambda t: F.conv_transpose2d(t, _K, stride=stride, padding=padding).reshape(-1), _x)
W{s} = _J.reshape(y{s}.numel(), -1).T'''


class TransposedConv(Family):
    name = NAME
    levels = (1, 2, 3)
    torch_code = TORCH_ANSWER
    advertised = {2: {"bias": (0.9, 1.0), "stride": (0.9, 1.0)},
                  3: {"bias": (0.9, 1.0), "padding": (0.9, 1.0), "stride": (0.9, 1.0)}}
    mistake_names = {
        1: ("flipped_kernel", "transpose", "conv_shape"),
        2: ("flipped_kernel", "transpose", "conv_shape", "no_stride", "forgot_bias"),
        3: ("flipped_kernel", "transpose", "conv_shape", "padding_added", "no_stride",
            "forgot_bias"),
    }
    #: hand work per level: every entry of the answers (:data:`ENTRIES`), entries of W,
    #: largest |number| of y
    budgets = {1: {"entries": ENTRIES[1], "W_entries": 64, "largest": 30},
               2: {"entries": ENTRIES[2], "W_entries": 64, "largest": 30},
               3: {"entries": ENTRIES[3], "W_entries": 100, "largest": 30}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        """Level 1: stride 1. Level 2: stride 2 and a bias. Level 3: stride 2, padding 1.

        Level 2 keeps a 2×2 kernel (stride 2 with a 3×3 one would make W 4×25: 127
        entries in all, more than level 3); level 3's overlapping, cropped copies are
        the heaviest work (see :data:`ENTRIES`, ``benchmarks/hand_work.py``).
        """
        h = w = 2
        stride, padding, bias = 1, 0, None
        if level == 1:
            k = int(rng.integers(2, 4))
        elif level == 2:
            k, stride = 2, 2
            bias = int(rng.choice([-2, -1, 1, 2]))
        else:
            stride, padding = 2, 1
            k = 4 if rng.random() < K4_SHARE else 3
            w = 3 if k == 3 else 2
            bias = int(rng.choice([-2, -1, 1, 2]))
        x = rng.integers(-3, 4, size=(h, w))
        x[x == 0] = 1                          # every input pixel spreads a visible copy
        kernel = rng.integers(-2, 3, size=(k, k))
        return Variant(NAME, level, {"x": x.tolist(), "kernel": kernel.tolist(),
                                     "stride": stride, "padding": padding, "bias": bias})

    def parts(self, v: Variant) -> list[Part]:
        h, w = v.array("x").shape
        k, s, p = len(v.params["kernel"]), v.params["stride"], v.params["padding"]
        big = (out_size(h, k, s, p), out_size(w, k, s, p))
        return [self.part("out_shape", "array", 1.0, shape=(2,), dtype="int"),
                self.part("y", "array", 2.0, shape=big, per_element=True),
                self.part("W", "array", 2.0, shape=(h * w, big[0] * big[1]), per_element=True)]

    def solve(self, v: Variant) -> dict[str, Any]:
        return _answers(v, v.array("kernel"))

    def mistakes(self, v: Variant) -> list[Mistake]:
        return _mistakes(v)

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        p = v.params
        h, w = v.array("x").shape
        return {"v": v, "x": latex_matrix(v.array("x")), "K": latex_matrix(v.array("kernel")),
                "k": len(p["kernel"]), "h": h, "w": w, "s": p["stride"], "p": p["padding"],
                "b": p["bias"]}

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        ans = self.solve(v)
        return {"H": int(ans["out_shape"][0]), "Wd": int(ans["out_shape"][1]),
                "y": latex_matrix(ans["y"]), "W": latex_matrix(ans["W"])}

    def data_code(self, v: Variant) -> str:
        p = v.params
        return "\n".join(["import numpy as np", "", np_assign("x", v.array("x")),
                          np_assign("K", v.array("kernel")),
                          f"b = {p['bias']}" + ("  # no bias" if p["bias"] is None else ""),
                          f"stride, padding = {p['stride']}, {p['padding']}"])

    def features(self, v: Variant) -> dict[str, float]:
        y_shape = self.parts(v)[1].shape or (0, 0)
        return {"output_size": float(y_shape[0] * y_shape[1]),
                "kernel_size": float(len(v.params["kernel"]) ** 2)}

    def traits(self, v: Variant) -> frozenset[str]:
        p = v.params
        return frozenset(t for t, on in (("stride", p["stride"] > 1), ("padding", p["padding"] > 0),
                                         ("bias", p["bias"] is not None)) if on)

    def size_budget(self, v: Variant) -> dict[str, float]:
        ans = self.solve(v)
        return {"entries": float(sum(np.asarray(a).size for a in ans.values())),
                "W_entries": float(ans["W"].size), "largest": float(np.abs(ans["y"]).max())}

    def oracle(self, v: Variant) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        p = v.params
        x = torch.tensor(v.array("x"))[None, None]
        k = torch.tensor(v.array("kernel"))[None, None]
        b = None if p["bias"] is None else torch.tensor([float(p["bias"])], dtype=torch.float64)

        def layer(t: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
            return F.conv_transpose2d(t, k, bias, stride=p["stride"], padding=p["padding"])

        y = layer(x, b)[0, 0]
        jac = torch.autograd.functional.jacobian(lambda t: layer(t).reshape(-1), x)
        return {"out_shape": np.array(y.shape), "y": y.numpy(),
                "W": jac.reshape(y.numel(), -1).T.numpy()}


FAMILY = TransposedConv()
