"""Cost of convolutions: multiplications (MACs) and parameters, and what 1×1 convolutions save.

The course notes count the work of a layer as ``O(h·w·k²·c_i·c_o)`` and introduce the
1×1 convolution (a fully connected layer over the channels at every pixel) and the
separable convolution (Keras ``SeparableConv2D``: one k×k kernel per input channel,
then a 1×1 convolution across channels). A MAC is one multiply-add: a k×k convolution
does ``H_out·W_out·C_out·(C_in/groups)·k·k`` of them; bias additions are not counted.

Level 1 asks for one layer; level 2 compares a k×k convolution with a 1×1 bottleneck
followed by the k×k convolution on fewer channels; level 3 compares it with a
depthwise-separable layer. The key comes from :func:`convpset.solutions.network.analyze`;
the oracle counts in torch (``FlopCounterMode``: FLOPs = 2·MACs, and ``numel()`` of the
parameters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family
from convpset.problems.networks import canonical_layer
from convpset.problems.text import decimal
from convpset.solutions import network

NAME = "conv_cost"
ALT = {2: "bottleneck", 3: "separable"}      # the alternative each level compares with

FLAGS = ("no_bias", "kernel_without_depth", "flops", "input_positions", "bias_as_mac",
         "separable_as_full", "pointwise_forgotten", "forgot_1x1", "mid_as_input")


def _spec(v: Variant, which: str) -> dict[str, Any]:
    layers = v.plain("plain") if which == "plain" else v.plain("alt")
    return {"input": v.plain("input"), "layers": layers}


def _size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def cost(inp: Sequence[int], layers: Sequence[Mapping[str, Any]],
         flags: Iterable[str] = ()) -> tuple[int, int]:
    """(parameters, MACs) of a stack of conv2d / separable_conv2d layers, counted the
    way a student with the misconceptions in ``flags`` would (no flags: the truth)."""
    f = frozenset(flags)
    unknown = f - set(FLAGS)
    if unknown:
        raise ValueError(f"unknown flags {sorted(unknown)}")
    c, h, w = (int(a) for a in inp)
    params = macs = 0
    for i, layer in enumerate(layers):
        k, s, p = int(layer["kernel_size"]), int(layer.get("stride", 1)), int(layer.get("padding", 0))
        co = int(layer["out_channels"])
        ho, wo = _size(h, k, s, p), _size(w, k, s, p)
        if "forgot_1x1" in f and k == 1 and len(layers) > 1:
            c, h, w = co, ho, wo
            continue
        positions = h * w if "input_positions" in f else ho * wo
        depth = c // int(layer.get("groups", 1))
        if "mid_as_input" in f and i > 0:
            depth = int(inp[0])
        if "kernel_without_depth" in f:
            depth = 1
        if layer["type"] == "separable_conv2d":
            dw = c * c * k * k if "separable_as_full" in f else c * k * k
            pw = 0 if "pointwise_forgotten" in f else depth * co
            weights = dw + pw
        else:
            weights = co * depth * k * k
        bias = co if layer.get("bias", True) and "no_bias" not in f else 0
        if layer["type"] == "separable_conv2d" and "pointwise_forgotten" in f:
            bias = 0
        params += weights + bias
        macs += positions * weights + (ho * wo * bias if "bias_as_mac" in f else 0)
        c, h, w = co, ho, wo
    return params, (2 * macs if "flops" in f else macs)


def _answers(v: Variant, flags: Iterable[str] = ()) -> dict[str, int]:
    f = list(flags)
    inp = v.plain("input")
    params, macs = cost(inp, v.plain("plain"), f)
    out = {"params": params, "macs": macs}
    if v.level in ALT:
        a_params, a_macs = cost(inp, v.plain("alt"), f)
        out |= {f"params_{ALT[v.level]}": a_params, f"macs_{ALT[v.level]}": a_macs}
    return out


def _relevant(v: Variant) -> list[str]:
    plain = v.plain("plain")[0]
    inp = v.plain("input")
    flags = ["no_bias", "flops", "bias_as_mac"]
    if inp[0] > 1:
        flags.insert(1, "kernel_without_depth")
    k, s, p = plain["kernel_size"], plain.get("stride", 1), plain.get("padding", 0)
    if _size(inp[1], k, s, p) != inp[1]:
        flags.append("input_positions")
    if v.level == 2:
        flags += ["forgot_1x1", "mid_as_input"]
    if v.level == 3:
        flags += ["separable_as_full", "pointwise_forgotten"]
    return flags


def _pick(rng: np.random.Generator, options: Sequence[int]) -> int:
    return int(options[int(rng.integers(len(options)))])


def _conv(out: int, k: int, stride: int = 1, padding: int = 0) -> dict[str, Any]:
    layer: dict[str, Any] = {"type": "conv2d", "out_channels": out, "kernel_size": k}
    if stride != 1:
        layer["stride"] = stride
    if padding:
        layer["padding"] = padding
    return layer


def layer_text(layer: Mapping[str, Any], c_in: int) -> str:
    """torch's constructor with the input channels written out."""
    if layer["type"] == "separable_conv2d":
        k, co = layer["kernel_size"], layer["out_channels"]
        p = layer.get("padding", 0)
        return (f"Conv2d({c_in}, {c_in}, {k}, padding={p}, groups={c_in}, bias=False) → "
                f"Conv2d({c_in}, {co}, 1)")
    extra = "".join(f", {key}={layer[key]}" for key in ("stride", "padding") if key in layer)
    return f"Conv2d({c_in}, {layer['out_channels']}, {layer['kernel_size']}{extra})"


def _torch_model(inp: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> Any:
    from torch import nn

    mods, c = [], int(inp[0])
    for layer in layers:
        k, co = int(layer["kernel_size"]), int(layer["out_channels"])
        s, p = int(layer.get("stride", 1)), int(layer.get("padding", 0))
        if layer["type"] == "separable_conv2d":
            mods += [nn.Conv2d(c, c, k, s, p, groups=c, bias=False), nn.Conv2d(c, co, 1)]
        else:
            mods.append(nn.Conv2d(c, co, k, s, p))
        c = co
    return nn.Sequential(*mods)


def torch_cost(inp: Sequence[int], layers: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(parameters, MACs) counted by torch: ``numel`` and ``FlopCounterMode`` / 2."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = _torch_model(inp, layers)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *inp))
    flops = int(counter.get_total_flops())
    return sum(p.numel() for p in model.parameters()), flops // 2


class ConvCost(Family):
    name = NAME
    levels = (1, 2, 3)
    # shares of 200 seeds (measured: level 1 padding 50%, stride 48%)
    advertised = {1: {"padding": (0.35, 0.65), "stride": (0.35, 0.65)},
                  2: {"bottleneck": (0.9, 1.0), "padding": (0.9, 1.0)},
                  3: {"depthwise_separable": (0.9, 1.0), "padding": (0.9, 1.0)}}
    mistake_names = {
        1: ("no_bias", "kernel_without_depth", "flops", "bias_as_mac", "input_positions"),
        2: ("no_bias", "kernel_without_depth", "flops", "bias_as_mac", "forgot_1x1",
            "mid_as_input"),
        3: ("no_bias", "kernel_without_depth", "flops", "bias_as_mac", "separable_as_full",
            "pointwise_forgotten"),
    }
    budgets = {1: {"largest": 300_000, "layers": 1},
               2: {"largest": 2_000_000, "layers": 3},
               3: {"largest": 2_000_000, "layers": 2}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        """Level 1: one k×k layer (stride, padding). Level 2: 1×1 bottleneck to C_mid,
        then k×k. Level 3: depthwise-separable. Sizes are small powers of two and the
        like, so that the products are done on paper."""
        alt = None
        h, k = int(rng.integers(4, 9)), _pick(rng, (3, 5))
        if level == 1:
            c_in, h = _pick(rng, (1, 2, 3, 4, 8)), int(rng.integers(6, 13))
            stride, padding = _pick(rng, (1, 2)), _pick(rng, (0, k // 2))
            plain = [_conv(_pick(rng, (4, 6, 8, 12, 16)), k, stride, padding)]
        elif level == 2:
            c_in, c_mid = _pick(rng, (12, 16, 24, 32)), _pick(rng, (4, 6, 8))
            c_out = _pick(rng, (16, 24, 32))
            plain = [_conv(c_out, k, padding=k // 2)]
            alt = [_conv(c_mid, 1), _conv(c_out, k, padding=k // 2)]
        else:
            c_in, c_out = _pick(rng, (8, 12, 16, 24, 32)), _pick(rng, (16, 24, 32))
            plain = [_conv(c_out, k, padding=k // 2)]
            alt = [{"type": "separable_conv2d", "out_channels": c_out, "kernel_size": k,
                    "padding": k // 2}]
        return Variant(NAME, level, {"input": [c_in, h, h], "plain": plain, "alt": alt})

    def parts(self, v: Variant) -> list[Part]:
        out = [self.part("params", "int", 1.0, dtype="int"),
               self.part("macs", "int", 1.0, dtype="int")]
        if v.level in ALT:
            out += [self.part(f"params_{ALT[v.level]}", "int", 1.0, dtype="int"),
                    self.part(f"macs_{ALT[v.level]}", "int", 1.0, dtype="int")]
        return out

    def solve(self, v: Variant) -> dict[str, int]:
        out = {}
        for which, suffix in (("plain", ""), ("alt", f"_{ALT.get(v.level, '')}")):
            if which == "alt" and v.level not in ALT:
                continue
            res = network.analyze(_spec(v, which))
            out[f"params{suffix}"] = res.total_params
            out[f"macs{suffix}"] = sum(layer.macs for layer in res.layers)
        return out

    def mistakes(self, v: Variant) -> list[Mistake]:
        truth = self.solve(v)
        out: list[Mistake] = []
        for flag in _relevant(v):
            wrong = _answers(v, [flag])
            changed = {k: a for k, a in wrong.items() if a != truth[k]}
            out.append(Mistake(flag, changed or {"macs": wrong["macs"]}))
        return out

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        c, h, w = v.plain("input")
        plain = v.plain("plain")
        alt = v.plain("alt") or []
        chans = [c]
        for layer in alt:
            chans.append(layer["out_channels"])
        return {"v": v, "level": v.level, "c": c, "h": h, "w": w,
                "plain": layer_text(plain[0], c),
                "alt": [layer_text(layer, chans[i]) for i, layer in enumerate(alt)]}

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        rows = []
        for which in ("plain", "alt"):
            if which == "alt" and v.level not in ALT:
                continue
            res = network.analyze(_spec(v, which))
            for r in res.layers:
                rows.append({"which": which, "i": r.index, "out": "×".join(map(str, r.output_shape)),
                             "weights": r.weights, "biases": r.biases, "macs": r.macs,
                             "positions": r.output_shape[1] * r.output_shape[2]})
        ans = self.solve(v)
        alt = ALT.get(v.level)
        ratio = (ans["macs"] / ans[f"macs_{alt}"]) if alt else 0.0
        sep = None
        if v.level == 3:
            c, (layer,) = v.plain("input")[0], v.plain("alt")
            k, co = layer["kernel_size"], layer["out_channels"]
            sep = {"c": c, "k": k, "co": co, "dw": c * k * k, "pw": c * co}
        return {"rows": rows, "ans": ans, "alt_name": alt, "ratio": decimal(ratio, lang), "sep": sep}

    def data_code(self, v: Variant) -> str:
        lines = [f"input_shape = {tuple(v.plain('input'))}  # (channels, height, width)",
                 f"layer = {canonical_layer(v.plain('plain')[0])!r}"]
        if v.level in ALT:
            alt = ",\n".join(f"    {canonical_layer(layer)!r}" for layer in v.plain("alt"))
            lines.append(f"{ALT[v.level]} = [\n{alt},\n]")
        return "\n".join(lines)

    def features(self, v: Variant) -> dict[str, float]:
        return {"log_macs": round(math.log10(self.solve(v)["macs"]), 3),
                "channels": float(v.plain("input")[0])}

    def traits(self, v: Variant) -> frozenset[str]:
        layer = v.plain("plain")[0]
        out = {t for t, on in (("stride", layer.get("stride", 1) > 1),
                               ("padding", layer.get("padding", 0) > 0)) if on}
        if v.level in ALT:
            out.add({2: "bottleneck", 3: "depthwise_separable"}[v.level])
        return frozenset(out)

    def size_budget(self, v: Variant) -> dict[str, float]:
        # the largest number is a product of small factors: H_out·W_out·C_out·C_in·k·k
        return {"largest": float(max(self.solve(v).values())),
                "layers": float(len(v.params["plain"]) + len(v.params["alt"] or ()))}

    def torch_answer(self, v: Variant, suffix: str) -> str:
        code = TORCH_ANSWER.replace("{s}", suffix)
        if v.level in ALT:
            name = ALT[v.level]
            code += (f"\nparams_{name}{suffix}, macs_{name}{suffix} = "
                     f"_count(_model({name}))")
        return code

    def oracle(self, v: Variant) -> dict[str, int]:
        inp = v.plain("input")
        params, macs = torch_cost(inp, v.plain("plain"))
        out = {"params": params, "macs": macs}
        if v.level in ALT:
            a_params, a_macs = torch_cost(inp, v.plain("alt"))
            out |= {f"params_{ALT[v.level]}": a_params, f"macs_{ALT[v.level]}": a_macs}
        return out


TORCH_ANSWER = '''import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _model(layers):
    mods, c = [], input_shape[0]
    for l in layers:
        k, p, s = l['kernel_size'], l.get('padding', 0), l.get('stride', 1)
        if l['type'] == 'separable_conv2d':
            mods += [nn.Conv2d(c, c, k, s, p, groups=c, bias=False), nn.Conv2d(c, l['out_channels'], 1)]
        else:
            mods.append(nn.Conv2d(c, l['out_channels'], k, s, p))
        c = l['out_channels']
    return nn.Sequential(*mods)


def _count(model):
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, *input_shape))
    return sum(p.numel() for p in model.parameters()), fc.get_total_flops() // 2  # FLOPs = 2·MACs


params{s}, macs{s} = _count(_model([layer]))'''

FAMILY = ConvCost()
