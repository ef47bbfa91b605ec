"""Receptive field of a unit after a stack of convolutions and poolings.

The course notes call it рецептивное (восприимчивое) поле: the input pixels one output
unit sees. Three numbers per layer describe it, in input pixels along one axis (the
layers are square): the field's size ``r``, the *jump* ``j`` (distance between the fields
of two neighbouring units) and, with padding, where the field of unit 0 begins. With
``k_eff = d(k-1)+1`` the recurrence is::

    r_l = r_{l-1} + (k_eff - 1) * j_{l-1}      j_l = j_{l-1} * s      start_l = start_{l-1} - p * j_{l-1}

The oracle measures all three in torch: the gradient of one output unit w.r.t. the
input is non-zero exactly on its field (weights of ones; max pooling is replaced by
average pooling of the same geometry, whose gradient reaches every pixel of the window).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family
from convpset.problems.networks import canonical_layer

NAME = "receptive_field"

# Misconceptions modelled by _geometry (each a flag), see the [*.mistake] text.
FLAGS = ("sum_kernels", "current_jump", "pool_stride_one", "local_jump", "ignore_dilation",
         "padding_grows", "padding_unscaled")


@dataclass(frozen=True)
class Geometry:
    rf: tuple[int, ...]       # field size after every layer
    jump: tuple[int, ...]     # jump after every layer
    start: int                # first input pixel of the field of the last layer's unit 0


def _hyper(layer: Mapping[str, Any], flags: frozenset[str] = frozenset()) -> tuple[int, ...]:
    """(k_eff, stride, padding) of a layer with torch's defaults (pool stride = kernel)."""
    k = int(layer["kernel_size"])
    pool = layer["type"] == "maxpool2d"
    default_s = 1 if (not pool or "pool_stride_one" in flags) else k
    s = int(layer.get("stride", default_s))
    d = 1 if "ignore_dilation" in flags else int(layer.get("dilation", 1))
    return d * (k - 1) + 1, s, int(layer.get("padding", 0))


def geometry(layers: Sequence[Mapping[str, Any]], flags: Iterable[str] = ()) -> Geometry:
    """The receptive field after every layer; ``flags`` model a student's misconceptions
    (no flags: the truth)."""
    f = frozenset(flags)
    unknown = f - set(FLAGS)
    if unknown:
        raise ValueError(f"unknown flags {sorted(unknown)}")
    rf, jump, start = 1, 1, 0
    rfs, jumps = [], []
    for layer in layers:
        keff, s, p = _hyper(layer, f)
        step = 1 if "sum_kernels" in f else (jump * s if "current_jump" in f else jump)
        rf += (keff - 1) * step
        if "padding_grows" in f:
            rf += 2 * p * jump
        start -= p * (1 if "padding_unscaled" in f else jump)
        jump *= s
        rfs.append(rf)
        jumps.append(s if "local_jump" in f else jump)
    return Geometry(tuple(rfs), tuple(jumps), start)


# ----------------------------------------------------------------------------- generation
def _layer(kind: str, k: int, stride: int = 1, padding: int = 0, dilation: int = 1,
           pool_default: bool = False) -> dict[str, Any]:
    """A layer dict with only the non-default keys, in torch's vocabulary."""
    out: dict[str, Any] = {"type": kind, "kernel_size": k}
    if not (pool_default or (kind == "conv2d" and stride == 1)):
        out["stride"] = stride
    if padding:
        out["padding"] = padding
    if dilation != 1:
        out["dilation"] = dilation
    return out


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


#: level 2's share of four-layer stacks (level 1 draws 3 of 4, level 3 always four):
#: the median hand work (answer entries) then grows with the level (tests/test_budgets.py)
LEVEL2_FOURTH = 0.7


def _random_layers(rng: np.random.Generator, level: int) -> list[dict[str, Any]]:
    """Level 1: valid 3×3/5×5/7×7 convolutions around MaxPool2d(2). Level 2: padding, a
    stride-2 convolution or a 3×3 pooling with stride 2. Level 3: dilated convolutions
    after the stride. Every stack has a stride before a later kernel, so that the
    jump matters (otherwise adding kernel sizes would be right)."""
    if level == 1:
        pool = _layer("maxpool2d", 2, 2, pool_default=True)
        pattern = _pick(rng, ("cpc", "ccpc", "cpcp", "cpcc"))
        return [pool if t == "p" else _layer("conv2d", _pick(rng, (3, 5, 7))) for t in pattern]

    def conv() -> dict[str, Any]:
        k = _pick(rng, (3, 5))
        return _layer("conv2d", k, padding=_pick(rng, (0, k // 2)))

    def down() -> dict[str, Any]:
        kind = _pick(rng, ("strided", "pool2", "pool3"))
        if kind == "strided":
            return _layer("conv2d", 3, 2, padding=_pick(rng, (0, 1)))
        if kind == "pool2":
            return _layer("maxpool2d", 2, 2, pool_default=True)
        return _layer("maxpool2d", 3, 2, padding=_pick(rng, (0, 1)))

    def dilated() -> dict[str, Any]:
        d = _pick(rng, (3, 4))   # d = 2 after one stride of 2 adds what "sum of kernels" adds
        return _layer("conv2d", 3, padding=d, dilation=d)

    if level == 2:   # mostly four layers, as level 1: a level never asks fewer numbers
        layers = [conv(), down(), conv()]
        if rng.random() < LEVEL2_FOURTH:
            layers.append(down())
        return layers
    return [conv(), down(), dilated(), _pick(rng, (dilated, conv))()]


def _relevant(layers: Sequence[Mapping[str, Any]], level: int) -> list[str]:
    """The misconceptions that can show on these layers (the screen demands they do)."""
    flags = ["sum_kernels", "current_jump", "local_jump"]
    if any(layer.get("dilation", 1) != 1 for layer in layers):
        flags.append("ignore_dilation")
    if level >= 2 and any(layer.get("padding", 0) for layer in layers):
        flags.append("padding_grows")
        strided = [i for i, layer in enumerate(layers) if _hyper(layer)[1] > 1]
        if strided and any(layer.get("padding", 0) for layer in layers[strided[0] + 1:]):
            flags.append("padding_unscaled")
    if any(layer["type"] == "maxpool2d" and "stride" not in layer for layer in layers):
        flags.append("pool_stride_one")   # last: its start is padding_unscaled's
    return flags


def _answers(v: Variant, g: Geometry) -> dict[str, Any]:
    out: dict[str, Any] = {"rf": np.array(g.rf), "jump": np.array(g.jump)}
    if v.level >= 2:
        out["start"] = g.start
    return out


def layer_text(layer: Mapping[str, Any]) -> str:
    """``Conv2d(kernel_size=3, stride=2, padding=1)``: torch's vocabulary, channels left
    out (they do not change the field)."""
    name = {"conv2d": "Conv2d", "maxpool2d": "MaxPool2d"}[layer["type"]]
    keys = ("kernel_size", "stride", "padding", "dilation")
    args = ", ".join(f"{k}={layer[k]}" for k in keys if k in layer)
    return f"{name}({args})"


def _torch_geometry(layers: Sequence[Mapping[str, Any]]) -> Geometry:
    """Field size, jump and start measured with autograd (see the module docstring)."""
    import torch
    from torch import nn

    size = 128
    rfs, jumps, start = [], [], 0
    mods: list[nn.Module] = []
    for layer in layers:
        k, s = int(layer["kernel_size"]), int(layer.get("stride", 0))
        p, d = int(layer.get("padding", 0)), int(layer.get("dilation", 1))
        if layer["type"] == "conv2d":
            conv = nn.Conv2d(1, 1, k, s or 1, p, d, bias=False)
            nn.init.ones_(conv.weight)
            mods.append(conv)
        else:
            mods.append(nn.AvgPool2d(k, s or None, p))
        model = nn.Sequential(*mods).double()
        x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
        y = model(x)
        mid = y.shape[-1] // 2
        lefts, rights = [], []
        for unit in (mid, mid + 1):
            (g,) = torch.autograd.grad(y[0, 0, unit, unit], x, retain_graph=True)
            cols = torch.nonzero(g[0, 0].abs().sum(0)).flatten()
            if cols.min() == 0 or cols.max() == size - 1:
                raise AssertionError("field touches the border of the oracle's input")
            lefts.append(int(cols.min()))
            rights.append(int(cols.max()))
        rfs.append(rights[0] - lefts[0] + 1)
        jumps.append(lefts[1] - lefts[0])
        start = lefts[0] - mid * jumps[-1]
    return Geometry(tuple(rfs), tuple(jumps), start)


class ReceptiveField(Family):
    name = NAME
    levels = (1, 2, 3)
    # shares of 200 seeds (measured: level 2 padding 87%, pooling 82%, stride 45%;
    # level 3 dilation and padding 100%, pooling 68%, stride 32%)
    advertised = {1: {"pooling": (0.9, 1.0)},
                  2: {"padding": (0.7, 1.0), "pooling": (0.65, 0.95), "stride": (0.3, 0.6)},
                  3: {"padding": (0.9, 1.0), "dilation": (0.9, 1.0), "pooling": (0.5, 0.85),
                      "stride": (0.2, 0.45)}}
    mistake_names = {
        1: ("sum_kernels", "current_jump", "local_jump", "pool_stride_one"),
        2: ("sum_kernels", "current_jump", "local_jump", "padding_grows", "pool_stride_one",
            "padding_unscaled"),
        3: ("sum_kernels", "current_jump", "local_jump", "ignore_dilation", "padding_grows",
            "padding_unscaled", "pool_stride_one"),
    }
    budgets = {1: {"layers": 4, "largest": 32},
               2: {"layers": 4, "largest": 24},
               3: {"layers": 4, "largest": 48}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        return Variant(NAME, level, {"layers": _random_layers(rng, level)})

    def parts(self, v: Variant) -> list[Part]:
        n = len(v.params["layers"])
        out = [self.part("rf", "array", 2.0, shape=(n,), dtype="int", per_element=True),
               self.part("jump", "array", 1.0, shape=(n,), dtype="int", per_element=True)]
        if v.level >= 2:
            out.append(self.part("start", "int", 1.0, dtype="int"))
        return out

    def solve(self, v: Variant) -> dict[str, Any]:
        return _answers(v, geometry(v.plain("layers")))

    def mistakes(self, v: Variant) -> list[Mistake]:
        layers = v.plain("layers")
        truth = self.solve(v)
        out: list[Mistake] = []
        for flag in _relevant(layers, v.level):
            wrong = _answers(v, geometry(layers, [flag]))
            # A part is attributed to the first misconception that explains it: with
            # only pools striding, "pool stride 1" gives the fields of "sum of kernels".
            changed = {k: a for k, a in wrong.items()
                       if not np.array_equal(a, truth[k])
                       and not any(k in m.answers and np.array_equal(a, m.answers[k])
                                   for m in out)}
            # a relevant misconception that changes nothing here makes the screen reject
            out.append(Mistake(flag, changed or {"rf": wrong["rf"]}))
        return out

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        layers = v.plain("layers")
        return {"v": v, "rows": [(i, layer_text(layer)) for i, layer in enumerate(layers, 1)],
                "level": v.level}

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        layers = v.plain("layers")
        g = geometry(layers)
        rows = []
        rf, jump, start = 1, 1, 0
        for i, layer in enumerate(layers, 1):
            keff, s, p = _hyper(layer)
            rows.append({"i": i, "keff": keff, "s": s, "p": p, "rf_in": rf, "j_in": jump,
                         "rf": g.rf[i - 1], "jump": g.jump[i - 1], "start": start - p * jump})
            rf, jump, start = g.rf[i - 1], g.jump[i - 1], start - p * jump
        return {"steps": rows, "g": g}

    def data_code(self, v: Variant) -> str:
        lines = ",\n".join(f"    {canonical_layer(layer)!r}" for layer in v.plain("layers"))
        return f"layers = [\n{lines},\n]"

    def features(self, v: Variant) -> dict[str, float]:
        g = geometry(v.plain("layers"))
        return {"layers": float(len(g.rf)), "rf": float(g.rf[-1])}

    def traits(self, v: Variant) -> frozenset[str]:
        layers = v.plain("layers")
        out = set()
        for layer in layers:
            if layer["type"] == "maxpool2d":
                out.add("pooling")
            elif layer.get("stride", 1) > 1:
                out.add("stride")
            if layer.get("padding", 0):
                out.add("padding")
            if layer.get("dilation", 1) != 1:
                out.add("dilation")
        return frozenset(out)

    def size_budget(self, v: Variant) -> dict[str, float]:
        g = geometry(v.plain("layers"))
        return {"layers": float(len(g.rf)), "largest": float(max(*g.rf, abs(g.start)))}

    def torch_answer(self, v: Variant, suffix: str) -> str:
        code = TORCH_ANSWER.replace("{s}", suffix)
        if v.level >= 2:
            code += f"\nstart{suffix} = _starts[-1]"
        return code

    def oracle(self, v: Variant) -> dict[str, Any]:
        return _answers(v, _torch_geometry(v.plain("layers")))


# A student measuring the field with autograd, as the oracle does.
TORCH_ANSWER = '''import torch
from torch import nn
_mods, _rf, _jump, _starts = [], [], [], []
for _l in layers:
    _k, _s = _l['kernel_size'], _l.get('stride')
    if _l['type'] == 'conv2d':
        _m = nn.Conv2d(1, 1, _k, _s or 1, _l.get('padding', 0), _l.get('dilation', 1), bias=False)
        nn.init.ones_(_m.weight)
    else:  # average pooling: same window, and its gradient reaches every pixel of it
        _m = nn.AvgPool2d(_k, _s, _l.get('padding', 0))
    _mods.append(_m)
    _x = torch.zeros(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
    _y = nn.Sequential(*_mods).double()(_x)
    _c = _y.shape[-1] // 2
    _cols = [torch.nonzero(torch.autograd.grad(_y[0, 0, u, u], _x, retain_graph=True)[0][0, 0].sum(0)).flatten()
             for u in (_c, _c + 1)]
    _rf.append(int(_cols[0].max() - _cols[0].min()) + 1)
    _jump.append(int(_cols[1].min() - _cols[0].min()))
    _starts.append(int(_cols[0].min()) - _c * _jump[-1])
rf{s} = _rf
jump{s} = _jump'''

FAMILY = ReceptiveField()
