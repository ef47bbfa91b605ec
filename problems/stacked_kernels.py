"""Stacked small kernels against one large kernel (VGG's argument), and what the stack is.

Three 3×3 convolutions see a 7×7 window of the input, like one 7×7 convolution, with
``3·9·C² = 27C²`` weights instead of ``49C²`` (C channels in and out; biases add C per
layer when the layers have them). In general ``n`` layers of ``k×k`` see
``n(k-1)+1`` pixels. Without a nonlinearity in between the stack *is* one convolution:
cross-correlating with ``K₁`` and then ``K₂`` equals cross-correlating once with their full
convolution, a kernel of size ``k₁+k₂-1`` (d2l's exercise).

Level 1: receptive field and weights (no bias). Level 2: with biases, and the MACs on an
input padded to keep its size. Level 3: the composed kernel of two small integer kernels
and the MACs of the two valid convolutions against the one. The key is closed form; the
oracle is torch: ``numel()`` of the layers, ``FlopCounterMode`` (FLOPs = 2·MACs), the
input gradient of one output unit, and two ``conv2d`` calls on an impulse.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family, answer_entries
from convpset.problems.render import latex_matrix, np_assign
from convpset.problems.text import decimal, ru_plural

NAME = "stacked_kernels"
FLAGS = ("kernel_without_depth", "single_channel", "with_bias", "no_bias", "flops",
         "bias_as_mac")
#: (layers, kernel) pairs a level draws: 2×3×3 ~ 5×5, 3×3×3 ~ 7×7, 4×3×3 ~ 9×9, 2×5×5 ~ 9×9
STACKS = ((2, 3), (3, 3), (4, 3), (2, 5))


def full_conv2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The full 2-D convolution of two kernels, by loops: c[w] = Σ_u a[u]·b[w-u]."""
    out = np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1))
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i:i + b.shape[0], j:j + b.shape[1]] += a[i, j] * b
    return out


def full_correlate2d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The full cross-correlation (what ``conv2d`` of a padded ``a`` with ``b`` gives)."""
    return full_conv2d(a, b[::-1, ::-1])


def stack_cost(layers: int, k: int, c: int, h: int, bias: bool,
               flags: Iterable[str] = ()) -> tuple[int, int]:
    """(parameters, MACs) of ``layers`` 'same' convolutions k×k, C→C, on an h×h input,
    as a student with the misconceptions in ``flags`` counts them (none: the truth)."""
    f = frozenset(flags)
    if f - set(FLAGS):
        raise ValueError(f"unknown flags {sorted(f - set(FLAGS))}")
    depth = 1 if f & {"kernel_without_depth", "single_channel"} else c
    outs = 1 if "single_channel" in f else c
    weights = outs * depth * k * k
    has_bias = (bias or "with_bias" in f) and "no_bias" not in f
    biases = c if has_bias else 0
    macs = h * h * weights + (h * h * c if "bias_as_mac" in f else 0)
    return layers * (weights + biases), layers * macs * (2 if "flops" in f else 1)


def _l12(v: Variant, flags: Iterable[str] = ()) -> dict[str, Any]:
    p = v.params
    n, k, c = p["layers"], p["k"], p["c"]
    big = n * (k - 1) + 1
    bias = v.level == 2
    h = p.get("h", 1)
    ps, ms = stack_cost(n, k, c, h, bias, flags)
    pb, mb = stack_cost(1, big, c, h, bias, flags)
    out: dict[str, Any] = {"rf": big, "params_stack": ps, "params_big": pb}
    if v.level == 2:
        out |= {"macs_stack": ms, "macs_big": mb}
    return out


def _valid(n: int, k: int) -> int:
    return n - k + 1


def _l3(v: Variant, composed: np.ndarray | None = None, shrink: bool = True,
        flops: bool = False) -> dict[str, Any]:
    k1, k2 = v.array("K1"), v.array("K2")
    a, b, n = k1.shape[0], k2.shape[0], v.params["n"]
    big = a + b - 1
    h1 = _valid(n, a) if shrink else n
    h2 = _valid(n, big) if shrink else n
    f = 2 if flops else 1
    return {"K": full_conv2d(k1, k2) if composed is None else composed,
            "macs_two": f * (h1 * h1 * a * a + h2 * h2 * b * b),
            "macs_one": f * h2 * h2 * big * big}


def _answers(v: Variant) -> dict[str, Any]:
    return _l3(v) if v.level == 3 else _l12(v)


class StackedKernels(Family):
    name = NAME
    levels = (1, 2, 3)
    advertised = {1: {"three_3x3": (0.15, 0.4), "no_bias": (0.9, 1.0)},
                  2: {"three_3x3": (0.15, 0.4), "bias": (0.9, 1.0), "same_padding": (0.9, 1.0)},
                  3: {"composition": (0.9, 1.0), "mixed_sizes": (0.35, 0.65)}}
    mistake_names = {
        1: ("sum_kernels", "single_layer", "kernel_without_depth", "single_channel",
            "with_bias"),
        2: ("sum_kernels", "single_layer", "kernel_without_depth", "single_channel",
            "no_bias", "flops", "bias_as_mac"),
        3: ("correlated_kernels", "flipped_composition", "no_shrink", "flops"),
    }
    budgets = {1: {"entries": 3, "largest": 500_000},
               2: {"entries": 5, "largest": 25_000_000},
               3: {"entries": 27, "largest": 20_000}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        """Levels 1-2: a stack from :data:`STACKS` on C ∈ {16, 32, 64} channels (level 2:
        C ∈ {8, 16, 32} and an h×h input, padding k//2 keeps it: the MACs stay a product
        of a few small factors). Level 3: two integer kernels of size 2 or 3
        and an n×n input."""
        if level < 3:
            n, k = STACKS[int(rng.integers(len(STACKS)))]
            channels = [16, 32, 64] if level == 1 else [8, 16, 32]
            params: dict[str, Any] = {"layers": n, "k": k, "c": int(rng.choice(channels))}
            if level == 2:
                params["h"] = int(rng.choice([7, 8, 14, 16]))
            return Variant(NAME, level, params)
        a, b = (int(rng.choice([2, 3])) for _ in range(2))
        k1 = rng.integers(-2, 3, size=(a, a))
        k2 = rng.integers(-2, 3, size=(b, b))
        k1[k1 == 0], k2[k2 == 0] = 1, -1
        return Variant(NAME, level, {"K1": k1.tolist(), "K2": k2.tolist(),
                                     "n": int(rng.integers(6, 11))})

    def parts(self, v: Variant) -> list[Part]:
        if v.level == 3:
            big = len(v.params["K1"]) + len(v.params["K2"]) - 1
            return [self.part("K", "array", 2.0, shape=(big, big), per_element=True),
                    self.part("macs_two", "int", 1.0, dtype="int"),
                    self.part("macs_one", "int", 1.0, dtype="int")]
        out = [self.part("rf", "int", 1.0, dtype="int"),
               self.part("params_stack", "int", 1.0, dtype="int"),
               self.part("params_big", "int", 1.0, dtype="int")]
        if v.level == 2:
            out += [self.part("macs_stack", "int", 1.0, dtype="int"),
                    self.part("macs_big", "int", 1.0, dtype="int")]
        return out

    def solve(self, v: Variant) -> dict[str, Any]:
        return _answers(v)

    def mistakes(self, v: Variant) -> list[Mistake]:
        truth = _answers(v)
        out: list[Mistake] = []

        def add(key: str, wrong: dict[str, Any]) -> None:
            changed = {n: a for n, a in wrong.items()
                       if not np.array_equal(np.asarray(a), np.asarray(truth[n]))}
            if changed:
                out.append(Mistake(key, changed))

        if v.level == 3:
            k1, k2 = v.array("K1"), v.array("K2")
            add("correlated_kernels", {"K": full_correlate2d(k1, k2)})
            add("flipped_composition", {"K": truth["K"][::-1, ::-1]})
            wrong = _l3(v, shrink=False)
            add("no_shrink", {n: wrong[n] for n in ("macs_two", "macs_one")})
            wrong = _l3(v, flops=True)
            add("flops", {n: wrong[n] for n in ("macs_two", "macs_one")})
            return out
        p = v.params
        add("sum_kernels", {"rf": p["layers"] * p["k"]})
        add("single_layer", {"rf": p["k"]})
        flags = ["kernel_without_depth", "single_channel"]
        flags += ["no_bias", "flops", "bias_as_mac"] if v.level == 2 else ["with_bias"]
        for flag in flags:
            wrong = _l12(v, [flag])
            add(flag, {n: a for n, a in wrong.items() if n != "rf"})
        return out

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        p = v.params
        if v.level == 3:
            return {"v": v, "level": 3, "K1": latex_matrix(v.array("K1")),
                    "K2": latex_matrix(v.array("K2")), "a": len(p["K1"]), "b": len(p["K2"]),
                    "n": p["n"]}
        n, k = p["layers"], p["k"]
        return {"v": v, "level": v.level, "n": n, "k": k, "c": p["c"], "h": p.get("h"),
                "big": n * (k - 1) + 1, "pad": k // 2}

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        ans = _answers(v)
        if v.level == 3:
            p = v.params
            a, b, n = len(p["K1"]), len(p["K2"]), p["n"]
            return {"ans": ans, "Kc": latex_matrix(ans["K"]), "h1": _valid(n, a),
                    "h2": _valid(n, a + b - 1), "big": a + b - 1,
                    "ratio": decimal(ans["macs_two"] / ans["macs_one"], lang, 2)}
        p = v.params
        n, k = p["layers"], p["k"]
        big = n * (k - 1) + 1
        ratio = round(ans["params_big"] / ans["params_stack"], 2)
        return {"ans": ans, "coef_stack": n * k * k, "coef_big": big * big,
                "ratio": decimal(ratio, lang, 2),
                "times": ru_plural(ratio, "раз", "раза", "раз")}

    def data_code(self, v: Variant) -> str:
        p = v.params
        if v.level == 3:
            return "\n".join(["import numpy as np", "", np_assign("K1", v.array("K1")),
                              np_assign("K2", v.array("K2")),
                              f"n = {p['n']}  # the input is n×n, one channel"])
        lines = [f"layers, k, channels = {p['layers']}, {p['k']}, {p['c']}",
                 f"bias = {v.level == 2}"]
        if v.level == 2:
            lines.append(f"h = {p['h']}  # the input is channels×h×h, padding k//2 keeps h")
        return "\n".join(lines)

    def features(self, v: Variant) -> dict[str, float]:
        if v.level == 3:
            return {"kernel_size": float(len(v.params["K1"]) + len(v.params["K2"]) - 1)}
        return {"kernel_size": float(v.params["layers"] * (v.params["k"] - 1) + 1)}

    def traits(self, v: Variant) -> frozenset[str]:
        p = v.params
        if v.level == 3:
            out = {"composition"}
            if len(p["K1"]) != len(p["K2"]):
                out.add("mixed_sizes")
            return frozenset(out)
        out = {"bias" if v.level == 2 else "no_bias"}
        if (p["layers"], p["k"]) == (3, 3):
            out.add("three_3x3")
        if v.level == 2:
            out.add("same_padding")
        return frozenset(out)

    def size_budget(self, v: Variant) -> dict[str, float]:
        ans = _answers(v)
        return {"entries": float(answer_entries(ans)),
                "largest": float(max(np.abs(np.asarray(a, dtype=float)).max()
                                     for a in ans.values()))}

    def torch_answer(self, v: Variant, suffix: str) -> str:
        return (TORCH_L3 if v.level == 3 else TORCH_L12).replace("{s}", suffix) + (
            f"\nmacs_stack{suffix}, macs_big{suffix} = _macs(_stack), _macs(_big)"
            if v.level == 2 else "")

    def oracle(self, v: Variant) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F
        from torch import nn

        if v.level == 3:
            k1 = torch.tensor(v.array("K1"))[None, None]
            k2 = torch.tensor(v.array("K2"))[None, None]
            big = k1.shape[-1] + k2.shape[-1] - 1
            delta = torch.zeros(1, 1, 2 * big - 1, 2 * big - 1, dtype=torch.float64)
            delta[0, 0, big - 1, big - 1] = 1.0
            composed = F.conv2d(F.conv2d(delta, k1), k2)[0, 0].flip(0, 1).numpy()
            n = v.params["n"]
            two = nn.Sequential(nn.Conv2d(1, 1, k1.shape[-1], bias=False),
                                nn.Conv2d(1, 1, k2.shape[-1], bias=False))
            one = nn.Conv2d(1, 1, big, bias=False)
            return {"K": composed, "macs_two": torch_macs(two, (1, n, n)),
                    "macs_one": torch_macs(one, (1, n, n))}
        p = v.params
        n, k, c = p["layers"], p["k"], p["c"]
        big = n * (k - 1) + 1
        bias = v.level == 2
        stack = nn.Sequential(*(nn.Conv2d(c, c, k, padding=k // 2, bias=bias) for _ in range(n)))
        one = nn.Conv2d(c, c, big, padding=big // 2, bias=bias)
        out: dict[str, Any] = {"rf": torch_receptive_field(n, k),
                               "params_stack": sum(q.numel() for q in stack.parameters()),
                               "params_big": sum(q.numel() for q in one.parameters())}
        if v.level == 2:
            out |= {"macs_stack": torch_macs(stack, (c, p["h"], p["h"])),
                    "macs_big": torch_macs(one, (c, p["h"], p["h"]))}
        return out


def torch_macs(model: Any, shape: tuple[int, ...]) -> int:
    """MACs torch counts for one sample (``FlopCounterMode``: FLOPs = 2·MACs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    return int(counter.get_total_flops()) // 2


def torch_receptive_field(layers: int, k: int) -> int:
    """The width of the input region one output unit of the stack depends on: the rows of
    the input gradient that are not zero (all-ones kernels, so nothing cancels)."""
    import torch
    import torch.nn.functional as F

    size = 2 * layers * k + 1
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    y = x
    for _ in range(layers):
        y = F.conv2d(y, torch.ones(1, 1, k, k))
    centre = y.shape[-1] // 2
    y[0, 0, centre, centre].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    return int(rows.max() - rows.min() + 1)


# what a student answering with torch writes (simulated returns; `{s}`: the suffix)
TORCH_L12 = '''import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_big_k = layers * (k - 1) + 1
_stack = nn.Sequential(*[nn.Conv2d(channels, channels, k, padding=k // 2, bias=bias)
                         for _ in range(layers)])
_big = nn.Conv2d(channels, channels, _big_k, padding=_big_k // 2, bias=bias)


def _macs(model):
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, channels, h, h))
    return fc.get_total_flops() // 2


rf{s} = _big_k
params_stack{s} = sum(p.numel() for p in _stack.parameters())
params_big{s} = sum(p.numel() for p in _big.parameters())'''

TORCH_L3 = '''import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

_a, _b = torch.tensor(K1)[None, None], torch.tensor(K2)[None, None]
_m = _a.shape[-1] + _b.shape[-1] - 1
_delta = torch.zeros(1, 1, 2 * _m - 1, 2 * _m - 1, dtype=torch.float64)
_delta[0, 0, _m - 1, _m - 1] = 1
# conv2d is a cross-correlation: the response to an impulse is the composed kernel flipped
K{s} = F.conv2d(F.conv2d(_delta, _a), _b)[0, 0].flip(0, 1)


def _macs(*kernels):
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        t = torch.zeros(1, 1, n, n, dtype=torch.float64)
        for w in kernels:
            t = F.conv2d(t, w)
    return fc.get_total_flops() // 2


macs_two{s} = _macs(_a, _b)
macs_one{s} = _macs(torch.zeros(1, 1, _m, _m, dtype=torch.float64))'''

FAMILY = StackedKernels()
