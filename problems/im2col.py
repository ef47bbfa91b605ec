"""im2col by hand: the patch matrix of a small input, the GEMM that convolves with it, and
what it costs in memory.

Caffe's ``im2col`` (and cuDNN's ``IMPLICIT_GEMM``/``GEMM`` algorithms, CS231n's
``im2col_indices``) unroll every receptive window of the padded input into one *column*:
``cols`` has ``C·kh·kw`` rows -- index ``(c·kh + i)·kw + j``, channel first, then the
kernel row, then the kernel column -- and ``out_h·out_w`` columns, the output positions
row by row. ``torch.nn.functional.unfold`` returns exactly this matrix with a batch axis in
front, ``(N, C·kh·kw, L)``. The convolution is then one matrix product,
``y = K.reshape(C_out, -1) @ cols (+ b)``, reshaped to ``(C_out, out_h, out_w)``; the price
is memory: every input pixel is copied into up to ``kh·kw`` columns.

Level 1: one channel, stride 1, no padding. Level 2: stride 2 or padding 1, a bias, and the
bytes of ``cols`` at float32 against the input's. Level 3: two input and two output
channels (the weight matrix of the GEMM), sometimes stride 2. The key is computed with loops
over the windows; the oracle is torch (``F.unfold``, ``F.conv2d``, ``element_size()``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family, answer_entries
from convpset.problems.render import latex_matrix, np_assign
from convpset.problems.text import decimal, ru_plural

NAME = "im2col"
FLOAT32 = 4      # bytes per entry, the dtype the statement fixes
#: (H, W, k, stride, padding) a level draws from: the hand work stays within ENTRIES
SHAPES = {
    1: [(4, 4, 3, 1, 0), (4, 4, 2, 1, 0), (3, 4, 2, 1, 0), (4, 5, 3, 1, 0), (3, 3, 2, 1, 0)],
    2: [(5, 5, 3, 2, 0), (5, 6, 3, 2, 0), (3, 3, 2, 1, 1), (3, 3, 3, 1, 1), (2, 3, 2, 1, 1)],
    3: [(3, 3, 2, 1, 0), (3, 4, 2, 1, 0), (4, 4, 2, 1, 0), (5, 5, 3, 2, 0)],
}
#: every number of the answers together: the matrix families' budget (~8 entries a minute)
ENTRIES = {1: 88, 2: 104, 3: 128}


def out_size(n: int, k: int, s: int, p: int) -> int:
    """Conv2d's output size (no dilation)."""
    return (n + 2 * p - k) // s + 1


def patches(x: np.ndarray, k: int, stride: int, padding: int,
            order: str = "cij", positions: str = "row") -> np.ndarray:
    """The im2col matrix of ``x`` (C, H, W) by loops over the windows.

    ``order`` is how a window is flattened into a column ("cij": Caffe/torch; "cji": each
    kernel window column-major; "ijc": channels last) and ``positions`` how the output
    positions are numbered ("row": row by row; "col": column by column): the other
    orders are the slips the grader names.
    """
    c_in, h, w = x.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    oh, ow = out_size(h, k, stride, padding), out_size(w, k, stride, padding)
    idx = {"cij": lambda c, i, j: (c * k + i) * k + j,
           "cji": lambda c, i, j: (c * k + j) * k + i,
           "ijc": lambda c, i, j: (i * k + j) * c_in + c}[order]
    cols = np.zeros((c_in * k * k, oh * ow))
    for r in range(oh):
        for q in range(ow):
            col = r * ow + q if positions == "row" else q * oh + r
            for c in range(c_in):
                for i in range(k):
                    for j in range(k):
                        cols[idx(c, i, j), col] = xp[c, r * stride + i, q * stride + j]
    return cols


def _bias(v: Variant) -> np.ndarray:
    b = v.params["bias"]
    return np.zeros(len(v.params["kernel"])) if b is None else np.asarray(b, dtype=float)


def _answers(v: Variant, kernel: np.ndarray | None = None, *, stride: int | None = None,
             padding: int | None = None, bias: bool = True) -> dict[str, Any]:
    """Every answer of ``v`` the way the key computes it (or a slip, through overrides)."""
    x = v.array("x")
    kernel = v.array("kernel") if kernel is None else kernel
    s = v.params["stride"] if stride is None else stride
    p = v.params["padding"] if padding is None else padding
    c_out, k = kernel.shape[0], kernel.shape[2]
    cols = patches(x, k, s, p)
    wmat = kernel.reshape(c_out, -1)
    y = wmat @ cols + (_bias(v)[:, None] if bias else 0.0)
    oh, ow = out_size(x.shape[1], k, s, p), out_size(x.shape[2], k, s, p)
    y = y.reshape(c_out, oh, ow)
    out: dict[str, Any] = {"cols_shape": np.array(cols.shape), "cols": cols}
    if v.level == 3:
        out["Wmat"] = wmat
    out["y"] = y if v.level == 3 else y[0]
    if v.level == 2:
        out["cols_bytes"] = FLOAT32 * cols.size
    if v.level >= 2:
        out["ratio"] = cols.size / x.size
    return out


def _changed(truth: dict[str, Any], wrong: dict[str, Any]) -> dict[str, Any]:
    """The parts a slip changes (a mistake lists only those)."""
    out = {}
    for name, value in wrong.items():
        a, b = np.asarray(value, dtype=float), np.asarray(truth[name], dtype=float)
        if a.shape != b.shape or not np.array_equal(a, b):
            out[name] = value
    return out


class Im2col(Family):
    name = NAME
    levels = (1, 2, 3)
    advertised = {2: {"bias": (0.9, 1.0), "stride": (0.3, 0.7), "padding": (0.3, 0.7)},
                  3: {"channels": (0.9, 1.0), "out_channels": (0.9, 1.0),
                      "stride": (0.1, 0.4)}}
    mistake_names = {
        1: ("patches_as_rows", "patch_column_major", "positions_column_major",
            "flipped_kernel"),
        2: ("patches_as_rows", "patch_column_major", "positions_column_major",
            "flipped_kernel", "forgot_bias", "ignored_padding", "ignored_stride",
            "bytes_float64", "bytes_as_entries", "ratio_inverted", "ratio_padded_input"),
        3: ("patches_as_rows", "patch_column_major", "positions_column_major",
            "flipped_kernel", "channels_last", "wmat_transposed", "ignored_stride",
            "ratio_inverted"),
    }
    budgets = {1: {"entries": ENTRIES[1], "largest": 30},
               2: {"entries": ENTRIES[2], "largest": 30},
               3: {"entries": ENTRIES[3], "largest": 40}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        """A small input of integers (no zeros, so every copied entry is visible) and an
        integer kernel; the shapes come from :data:`SHAPES`."""
        h, w, k, stride, padding = SHAPES[level][int(rng.integers(len(SHAPES[level])))]
        c_in = c_out = 2 if level == 3 else 1
        x = rng.integers(-3, 4, size=(c_in, h, w))
        x[x == 0] = 1
        kernel = rng.integers(-2, 3, size=(c_out, c_in, k, k))
        bias = rng.choice([-2, -1, 1, 2], size=c_out).tolist() if level >= 2 else None
        return Variant(NAME, level, {"x": x.tolist(), "kernel": kernel.tolist(),
                                     "stride": stride, "padding": padding,
                                     "bias": None if bias is None else [int(b) for b in bias]})

    def parts(self, v: Variant) -> list[Part]:
        ans = _answers(v)
        out = [self.part("cols_shape", "array", 1.0, shape=(2,), dtype="int"),
               self.part("cols", "array", 2.0, shape=ans["cols"].shape, per_element=True)]
        if v.level == 3:
            out.append(self.part("Wmat", "array", 1.0, shape=ans["Wmat"].shape,
                                 per_element=True))
        out.append(self.part("y", "array", 1.0, shape=ans["y"].shape, per_element=True))
        if v.level == 2:
            out.append(self.part("cols_bytes", "int", 1.0, dtype="int"))
        if v.level >= 2:
            out.append(self.part("ratio", "float", 1.0, rtol=0.01, atol=0.0))
        return out

    def solve(self, v: Variant) -> dict[str, Any]:
        return _answers(v)

    def mistakes(self, v: Variant) -> list[Mistake]:
        truth = _answers(v)
        x, k, s, p = v.array("x"), len(v.params["kernel"][0][0]), v.params["stride"], \
            v.params["padding"]
        out: list[Mistake] = []

        def add(key: str, wrong: dict[str, Any]) -> None:
            changed = _changed(truth, wrong)
            if changed:
                out.append(Mistake(key, changed))

        cols = truth["cols"]
        add("patches_as_rows", {"cols": cols.T, "cols_shape": np.array(cols.T.shape)})
        add("patch_column_major", {"cols": patches(x, k, s, p, order="cji")})
        add("positions_column_major", {"cols": patches(x, k, s, p, positions="col")})
        flipped = _answers(v, v.array("kernel")[:, :, ::-1, ::-1])
        add("flipped_kernel", {n: flipped[n] for n in ("y", "Wmat") if n in flipped})
        if v.level == 3:
            add("channels_last", {"cols": patches(x, k, s, p, order="ijc")})
            add("wmat_transposed", {"Wmat": truth["Wmat"].T})
        if v.level == 2:
            add("forgot_bias", {"y": _answers(v, bias=False)["y"]})
        if p:
            bare = _answers(v, padding=0)
            add("ignored_padding", {n: bare[n] for n in ("cols_shape", "cols", "y")})
        if s > 1:
            dense = _answers(v, stride=1)
            add("ignored_stride", {n: dense[n] for n in ("cols_shape", "cols", "y")})
        if v.level == 2:
            add("bytes_float64", {"cols_bytes": 8 * cols.size})
            add("bytes_as_entries", {"cols_bytes": cols.size})
        if v.level >= 2:
            add("ratio_inverted", {"ratio": x.size / cols.size})
        if v.level == 2 and p:
            padded = x.shape[0] * (x.shape[1] + 2 * p) * (x.shape[2] + 2 * p)
            add("ratio_padded_input", {"ratio": cols.size / padded})
        return out

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        x, kernel = v.array("x"), v.array("kernel")
        c_in, h, w = x.shape
        c_out, k = kernel.shape[0], kernel.shape[2]
        return {"v": v, "level": v.level, "c": c_in, "c_out": c_out, "h": h, "w": w, "k": k,
                "s": v.params["stride"], "p": v.params["padding"],
                "b": v.params["bias"],
                "x": latex_matrix(x[0] if c_in == 1 else x),
                "K": latex_matrix(kernel[0, 0]),
                "xs": [latex_matrix(ch) for ch in x],
                "Ks": [[latex_matrix(m) for m in kernel[o]] for o in range(c_out)]}

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        ans = _answers(v)
        x = v.array("x")
        return {"rows": int(ans["cols_shape"][0]), "L": int(ans["cols_shape"][1]),
                "oh": ans["y"].shape[-2], "ow": ans["y"].shape[-1],
                "cols": latex_matrix(ans["cols"]), "y": latex_matrix(ans["y"]),
                "Wmat": latex_matrix(ans["Wmat"]) if "Wmat" in ans else "",
                "entries": int(ans["cols"].size), "x_entries": int(x.size),
                "bytes": ans.get("cols_bytes", 0),
                "ratio": decimal(ans["ratio"], lang, 2) if "ratio" in ans else "",
                # «в 9 раз», «в 1,44 раза»: the Russian form follows the number
                "times": ru_plural(round(ans.get("ratio", 2), 2), "раз", "раза", "раз"),
                "words": {"rows": ru_plural(ans["cols"].shape[0], "строка", "строки", "строк"),
                          "cols": ru_plural(ans["cols"].shape[1], "столбец", "столбца",
                                            "столбцов"),
                          "entries": ru_plural(ans["cols"].size, "элемент", "элемента",
                                               "элементов"),
                          "bytes": ru_plural(ans.get("cols_bytes", 5), "байт", "байта", "байт")}}

    def data_code(self, v: Variant) -> str:
        x, kernel = v.array("x"), v.array("kernel")
        if v.level < 3:
            x, kernel = x[0], kernel[0, 0]
        b = v.params["bias"]
        lines = ["import numpy as np", "",
                 np_assign("x", x) + ("  # (channels, height, width)" if v.level == 3 else ""),
                 np_assign("K", kernel)
                 + ("  # (out_channels, in_channels, k, k)" if v.level == 3 else "")]
        if b is None:
            lines.append("b = None  # no bias")
        elif v.level == 3:
            lines.append(np_assign("b", np.asarray(b)))
        else:
            lines.append(f"b = {b[0]}")
        lines.append(f"stride, padding = {v.params['stride']}, {v.params['padding']}")
        return "\n".join(lines)

    def features(self, v: Variant) -> dict[str, float]:
        return {"cols_entries": float(_answers(v)["cols"].size),
                "kernel_size": float(len(v.params["kernel"][0][0]) ** 2)}

    def traits(self, v: Variant) -> frozenset[str]:
        p = v.params
        k = len(p["kernel"][0][0])
        return frozenset(t for t, on in (
            ("kernel_3", k == 3), ("stride", p["stride"] > 1),
            ("padding", p["padding"] > 0), ("bias", p["bias"] is not None),
            ("channels", len(p["x"]) > 1), ("out_channels", len(p["kernel"]) > 1)) if on)

    def size_budget(self, v: Variant) -> dict[str, float]:
        ans = _answers(v)
        arrays = [ans[n] for n in ("cols", "y", "Wmat") if n in ans]
        return {"entries": float(answer_entries(ans)),
                "largest": float(max(np.abs(a).max() for a in arrays))}

    def torch_answer(self, v: Variant, suffix: str) -> str:
        code = TORCH_ANSWER.replace("{s}", suffix)
        if v.level == 3:
            code += f"\nWmat{suffix} = _K.reshape(_K.shape[0], -1)"
        else:
            code += f"\ny{suffix} = y{suffix}[0]"
        if v.level == 2:
            code += f"\ncols_bytes{suffix} = cols{suffix}.float().element_size() * cols{suffix}.numel()"
        if v.level >= 2:
            code += f"\nratio{suffix} = cols{suffix}.numel() / _x.numel()"
        return code

    def oracle(self, v: Variant) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        p = v.params
        x = torch.tensor(v.array("x"))[None]
        kern = torch.tensor(v.array("kernel"))
        b = torch.tensor(_bias(v)) if p["bias"] is not None else None
        cols = F.unfold(x, kern.shape[-1], padding=p["padding"], stride=p["stride"])[0]
        y = F.conv2d(x, kern, b, stride=p["stride"], padding=p["padding"])[0]
        out: dict[str, Any] = {"cols_shape": np.array(cols.shape), "cols": cols.numpy()}
        if v.level == 3:
            out["Wmat"] = kern.reshape(kern.shape[0], -1).numpy()
        out["y"] = (y if v.level == 3 else y[0]).numpy()
        if v.level == 2:
            out["cols_bytes"] = cols.float().element_size() * cols.numel()
        if v.level >= 2:
            out["ratio"] = cols.numel() / x.numel()
        return out


# what a student answering with torch writes (simulated returns; `{s}`: the suffix)
TORCH_ANSWER = '''import torch
import torch.nn.functional as F
_x = torch.tensor(x)
_x = _x[None] if _x.dim() == 2 else _x
_K = torch.tensor(K)
_K = _K[None, None] if _K.dim() == 2 else _K
cols{s} = F.unfold(_x[None], _K.shape[-1], padding=padding, stride=stride)[0]
cols_shape{s} = list(cols{s}.shape)
_b = None if b is None else torch.tensor(b, dtype=torch.float64).reshape(-1)
y{s} = (_K.reshape(_K.shape[0], -1) @ cols{s}
        + (0 if _b is None else _b[:, None])).reshape(_K.shape[0], *F.conv2d(
            _x[None], _K, stride=stride, padding=padding).shape[-2:])'''

FAMILY = Im2col()
