"""Convolution as a matrix: ``y.ravel() == W @ x.ravel()``.

The matrix makes weight sharing and sparsity visible: every row holds the same kernel
weights, shifted, and zeros elsewhere. The course notes write the same layer as
``H = X·W`` with ``X`` a row vector; their matrix is our ``W.T``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.checking import solved
from convpset.problems.contract import Family, input_kernel_features
from convpset.problems.render import latex_matrix, np_assign, pair_text, shape_text
from convpset.solutions import numpy_ref

NAME = "conv_as_matrix"
#: level 1 (h, w, k): W 4×9, 4×16, 6×12 -- 40 to 78 entries with y, under the level's 88
LEVEL1 = ((3, 3, 2), (4, 4, 3), (3, 4, 2), (4, 3, 2))
#: hand work a level may ask (W and y together): ~8 entries a minute for a matrix of mostly
#: zeros and copied kernel weights, so 11, 13 and 16 minutes of writing -- a 20-minute
#: exercise with time left to read and check (README: "A budget for hand work")
ENTRIES = {1: 88, 2: 104, 3: 128}


def _ints(rng: np.random.Generator, shape: tuple[int, ...], lo: int = -3, hi: int = 3) -> list:
    return rng.integers(lo, hi + 1, size=shape).tolist()


def _nonzero(rng: np.random.Generator, n: int) -> list:
    """A bias of ±1 or ±2: a zero bias would make `forgot_bias` the right answer."""
    return rng.choice([-2, -1, 1, 2], size=n).tolist()


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


def _column_major(v: Variant, w: np.ndarray) -> np.ndarray:
    """W for x and y flattened in Fortran (column-major) order instead of C order."""
    out = output_shape(v)
    p_out = np.arange(w.shape[0]).reshape(out).ravel(order="F")
    p_in = np.arange(w.shape[1]).reshape(tuple(v.params["input_shape"])).ravel(order="F")
    return w[p_out][:, p_in]


def _mistakes(v: Variant) -> list[Mistake]:
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


def _ctx(v: Variant) -> dict[str, Any]:
    p = v.params
    k = v.array("kernel")
    return {
        "v": v, "p": p, "x": latex_matrix(v.array("x")),
        "kernels": [[latex_matrix(k[o, i]) for i in range(k.shape[1])] for o in range(k.shape[0])],
        "bias": None if p["bias"] is None else latex_matrix(v.array("bias")),
        "in_shape": shape_text(p["input_shape"]), "out_shape": shape_text(output_shape(v)),
        "stride": pair_text(p["stride"]), "padding": pair_text(p["padding"]),
        "dilation": pair_text(p["dilation"]), "groups": p["groups"],
        "padded": p["padding"] != 0, "group_list": group_list(p),
    }


def group_list(p: Any) -> list[dict[str, str]]:
    """Which input and output channels form each group (1-based, as K_1, K_2 are named)."""
    g = p["groups"]
    c_in, c_out = p["input_shape"][0], len(p["kernel"])

    def span(n: int, i: int) -> str:
        lo, hi = i * n // g + 1, (i + 1) * n // g
        return str(lo) if lo == hi else f"{lo}–{hi}"

    return [{"n": str(i + 1), "inputs": span(c_in, i), "outputs": span(c_out, i)}
            for i in range(g)] if g > 1 else []


def _data_code(v: Variant) -> str:
    p = v.params
    lines = ["import numpy as np", "", np_assign("x", v.array("x")),
             np_assign("K", v.array("kernel"))]
    lines.append(np_assign("b", v.array("bias")) if p["bias"] is not None else "b = None  # no bias")
    lines += [f"stride, padding, dilation, groups = {p['stride']}, {p['padding']}, "
              f"{p['dilation']}, {p['groups']}"]
    return "\n".join(lines)


# what a student answering with torch writes (simulated returns; `{s}`: the suffix)
TORCH_ANSWER = '''import torch
import torch.nn.functional as F
_K = torch.tensor(K)
_cols = [F.conv2d(e.reshape(1, *x.shape), _K, stride=stride, padding=padding,
                  dilation=dilation, groups=groups).reshape(-1)
         for e in torch.eye(x.size, dtype=torch.float64)]
W{s} = torch.stack(_cols, dim=1)
y{s} = F.conv2d(torch.tensor(x)[None], _K, None if b is None else torch.tensor(b), stride=stride,
               padding=padding, dilation=dilation, groups=groups)[0]'''


class ConvAsMatrix(Family):
    name = NAME
    levels = (1, 2, 3)
    torch_code = TORCH_ANSWER

    #: hand work per level: entries of W and y to write (:data:`ENTRIES`), entries of W,
    #: largest |number| of the answers
    budgets = {lv: {"entries": ENTRIES[lv], "W_entries": ENTRIES[lv] - 4, "largest": 40}
               for lv in (1, 2, 3)}
    advertised = {2: {"padding": (0.2, 0.45), "stride": (0.2, 0.45), "channels": (0.2, 0.45),
                      "bias": (1.0, 1.0)},
                  3: {"dilation": (0.2, 0.45), "groups": (0.2, 0.45),
                      "out_channels": (0.2, 0.45), "bias": (1.0, 1.0)}}
    mistake_names = {1: ("transpose", "flipped_kernel", "column_major"),
                     2: ("transpose", "flipped_kernel", "column_major", "forgot_bias",
                         "ignored_padding", "ignored_stride"),
                     3: ("transpose", "flipped_kernel", "column_major", "forgot_bias")}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        """Sizes 2..5, entries -3..3; level 2 adds padding/stride/channels, level 3 dilation/groups.

        The sizes are chosen so that each level's hand work (W and y) stays under its
        budget and grows with the level: medians 78, 84 and 102 entries (see
        ``benchmarks/hand_work.py``).

        Padding uses a 2×2 kernel (the output grows by one row and column): with a 3×3
        kernel, stride 1 and padding 1, ``W`` is square and the flipped-kernel matrix is
        exactly ``Wᵀ``, so the distractor screen would reject every padded candidate.
        Oversized candidates are rejected by :attr:`budgets` (see ``make_variant``).
        """
        c_in = c_out = groups = 1
        stride = dilation = 1
        padding = 0
        bias = None
        if level == 1:
            h, w, k = LEVEL1[int(rng.integers(len(LEVEL1)))]
        elif level == 2:
            case = ["padding", "stride", "channels"][int(rng.integers(3))]
            if case == "padding":
                (h, w), k, padding = [(2, 3), (3, 2)][int(rng.integers(2))], 2, 1
            elif case == "stride":
                (w, k), h, stride = [(4, 2), (5, 2), (5, 3)][int(rng.integers(3))], 5, 2
            else:
                h, w, k, c_in = 3, 3, 2, 2
            bias = _nonzero(rng, c_out)
        else:
            case = ["dilation", "groups", "out_channels"][int(rng.integers(3))]
            if case == "dilation":
                h, w = [(4, 4), (4, 5), (5, 4)][int(rng.integers(3))]
                k, dilation = 2, 2
            elif case == "groups":   # 3×3 would make W 8×18 (152 entries with y)
                (h, w), k, c_in, c_out, groups = [(2, 4), (4, 2)][int(rng.integers(2))], 2, 2, 2, 2
            else:
                h, w, k, c_out = 3, 3, 2, 2
            bias = _nonzero(rng, c_out)
        kernel = _ints(rng, (c_out, c_in // groups, k, k))
        x = _ints(rng, (c_in, h, w))
        return Variant(NAME, level, {
            "input_shape": [c_in, h, w], "kernel": kernel, "bias": bias, "x": x,
            "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
        })

    def traits(self, v: Variant) -> frozenset[str]:
        p = v.params
        c_in = p["input_shape"][0]
        out = {"padding": p["padding"] != 0, "stride": p["stride"] != 1,
               "channels": c_in > 1 and p["groups"] == 1, "bias": p["bias"] is not None,
               "dilation": p["dilation"] != 1, "groups": p["groups"] > 1,
               "out_channels": len(p["kernel"]) > 1 and p["groups"] == 1}
        return frozenset(k for k, on in out.items() if on)

    def size_budget(self, v: Variant) -> dict[str, float]:
        key = solved(self, v)
        return {"entries": float(key["W"].size + key["y"].size),
                "W_entries": float(key["W"].size),
                "largest": float(max(np.abs(key["y"]).max(), np.abs(v.array("x")).max()))}

    def parts(self, v: Variant) -> list[Part]:
        out = output_shape(v)
        n_out, n_in = int(np.prod(out)), int(np.prod(v.params["input_shape"]))
        return [self.part("W", "array", 3.0, shape=(n_out, n_in), per_element=True),
                self.part("y", "array", 1.0, shape=out, per_element=True)]

    def solve(self, v: Variant) -> dict[str, np.ndarray]:
        k = v.array("kernel")
        return {"W": _matrix(v, k), "y": _forward(v, k)}

    def mistakes(self, v: Variant) -> list[Mistake]:
        return _mistakes(v)

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        return _ctx(v)

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        ans = self.solve(v)
        return {"W": latex_matrix(ans["W"]), "y": latex_matrix(ans["y"])}

    def data_code(self, v: Variant) -> str:
        return _data_code(v)

    def features(self, v: Variant) -> dict[str, float]:
        return input_kernel_features(v)

    def oracle(self, v: Variant) -> dict[str, np.ndarray]:
        from convpset.solutions import torch_ref

        k, p = v.array("kernel"), v.params
        kw = {"stride": p["stride"], "padding": p["padding"], "dilation": p["dilation"],
              "groups": p["groups"]}
        b = v.array("bias") if p["bias"] is not None else None
        return {"W": torch_ref.conv_matrix(tuple(p["input_shape"]), k, **kw),
                "y": torch_ref.conv2d(v.array("x"), k, b, **kw)}


FAMILY = ConvAsMatrix()
