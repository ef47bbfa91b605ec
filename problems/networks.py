"""Random network specs for the shape and parameter families, and the arithmetic a
student with a given misconception would do.

The truth comes from :mod:`convpset.solutions.network`; :func:`misanalyze` deliberately models
*wrong* conventions (ceil instead of floor, padding counted on one side, the course
notes' kernel without input depth, ...) so the grader can name them. With no flags it
must agree with the truth -- a test holds it to that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convpset.problems.base import Mistake
from convpset.problems.checking import solved
from convpset.problems.contract import Family

FLAGS = (
    "ceil", "one_side_padding", "ignore_dilation", "pool_stride_one", "transposed_as_conv",
    "no_bias", "kernel_without_depth", "groups_ignored", "separable_as_full", "fc_no_bias",
)


@dataclass(frozen=True)
class Misanalysis:
    shapes: tuple[tuple[int, ...], ...]     # output shape of each layer computed
    params: tuple[int, ...]
    collapsed_at: int | None                # 1-based layer index, None when valid


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, list | tuple):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _size(n: int, k: int, s: int, p_total: int, d: int, ceil: bool) -> int:
    span = n + p_total - d * (k - 1) - 1
    q = math.ceil(span / s) if ceil else span // s
    return q + 1 if span >= 0 else 0


#: Where a student plausibly makes each layer-level slip: every layer it can touch, or only
#: the layers of one kind. A student who learned "the kernel is k×k" drops the depth in the
#: Conv2d layers and may still count a separable pointwise or a transposed kernel right; one
#: who counts padding once may do it in Conv/Pool layers only, where the formula adds it,
#: and keep the transposed formula (where padding crops) as written. The first scope of each
#: flag is the whole network: it is the one the distractor screen holds to.
SCOPES: dict[str, tuple[frozenset[str] | None, ...]] = {
    "kernel_without_depth": (None, frozenset({"conv2d"}),
                             frozenset({"conv2d", "conv_transpose2d"}),
                             frozenset({"conv2d", "separable_conv2d"})),
    "one_side_padding": (None, frozenset({"conv2d", "separable_conv2d", "maxpool2d", "avgpool2d"}),
                         frozenset({"conv_transpose2d"})),
}


def misanalyze(spec: Mapping[str, Any], flags: Iterable[str] = (),
               only: Mapping[str, frozenset[str] | None] | None = None) -> Misanalysis:
    """Shapes and parameter counts of ``spec`` under the misconceptions in ``flags``.

    ``only`` limits a flag to layers of the given types (``SCOPES`` lists the plausible
    ones); a flag missing from it, or mapped to None, applies to every layer.
    """
    flags_all = set(flags)
    unknown = flags_all - set(FLAGS)
    if unknown:
        raise ValueError(f"unknown flags {sorted(unknown)}")
    only = only or {}
    shape: tuple[int, ...] = tuple(int(s) for s in spec["input"])
    shapes: list[tuple[int, ...]] = []
    params: list[int] = []
    for idx, layer in enumerate(spec["layers"], start=1):
        t = layer["type"]
        f = {fl for fl in flags_all if only.get(fl) is None or t in only[fl]}
        sides = 1 if "one_side_padding" in f else 2
        n_params = 0
        if t in ("conv2d", "separable_conv2d", "maxpool2d", "avgpool2d", "conv_transpose2d"):
            c, h, w = shape
            k = _pair(layer["kernel_size"])
            pool = t in ("maxpool2d", "avgpool2d")
            default_s = (1, 1) if (not pool or "pool_stride_one" in f) else k
            s = _pair(layer["stride"]) if layer.get("stride") is not None else default_s
            d = _pair(layer.get("dilation", 1))
            if "ignore_dilation" in f:
                d = (1, 1)
            pad = layer.get("padding", 0)
            if t == "conv_transpose2d" and "transposed_as_conv" not in f:
                p = _pair(pad)
                op = _pair(layer.get("output_padding", 0))
                hw = tuple((n - 1) * s[i] - sides * p[i] + d[i] * (k[i] - 1) + op[i] + 1
                           for i, n in enumerate((h, w)))
            elif pad == "same":
                hw = (h, w)
            else:
                p = (0, 0) if pad == "valid" else _pair(pad)
                hw = tuple(_size(n, k[i], s[i], sides * p[i], d[i], "ceil" in f)
                           for i, n in enumerate((h, w)))
            c_out = c if pool else int(layer["out_channels"])
            if not pool:
                g = int(layer.get("groups", 1))
                if "groups_ignored" in f:
                    g = 1
                bias = layer.get("bias", True) and "no_bias" not in f
                if t == "separable_conv2d" and "separable_as_full" not in f:
                    dm = int(layer.get("depth_multiplier", 1))
                    depth = 1 if "kernel_without_depth" in f else c * dm
                    n_params = c * dm * k[0] * k[1] + depth * c_out + (c_out if bias else 0)
                else:
                    depth = 1 if "kernel_without_depth" in f else c // (1 if t == "separable_conv2d" else g)
                    n_params = c_out * depth * k[0] * k[1] + (c_out if bias else 0)
            if min(hw) < 1:
                return Misanalysis(tuple(shapes), tuple(params), idx)
            shape = (c_out, *hw)
        elif t == "flatten":
            shape = (int(np.prod(shape)),)
        elif t == "linear":
            n_in, n_out = shape[0], int(layer["out_features"])
            bias = layer.get("bias", True) and not ({"no_bias", "fc_no_bias"} & f)
            n_params = n_in * n_out + (n_out if bias else 0)
            shape = (n_out,)
        elif t in ("relu", "softmax"):
            pass
        else:
            raise ValueError(f"layer type {t!r} not modelled")
        shapes.append(shape)
        params.append(n_params)
    return Misanalysis(tuple(shapes), tuple(params), None)


def _plain(a: Any) -> Any:
    """An answer as nested Python lists of ints, for comparing answers of any form."""
    if isinstance(a, np.ndarray):
        return a.tolist()
    if isinstance(a, list | tuple):
        return [_plain(x) for x in a]
    return a


def scoped_mistakes(spec: Mapping[str, Any], flags: Iterable[str],
                    answers_of: Callable[[Misanalysis], Mapping[str, Any]],
                    truth: Mapping[str, Any], listed: Sequence[Mistake],
                    args_of: Callable[[str], Mapping[str, Any]] = lambda flag: {}) -> list[Mistake]:
    """The same misconceptions made in only some kinds of layer (``SCOPES``), as extra
    named mistakes after ``listed``.

    A part's answer is kept only where it differs from the truth and from every mistake
    already listed, so an extra scope never makes a verdict ambiguous and never trips the
    distractor screen; the whole-network scope (in ``listed``) stays the one the screen
    demands.
    """
    out: list[Mistake] = []
    for flag in flags:
        for scope in SCOPES.get(flag, ())[1:]:
            got = answers_of(misanalyze(spec, [flag], {flag: scope}))
            keep = {}
            for part, value in got.items():
                v = _plain(value)
                if v == _plain(truth[part]):
                    continue
                if any(part in m.answers and _plain(m.answers[part]) == v
                       for m in (*listed, *out)):
                    continue
                keep[part] = value
            if keep:
                out.append(Mistake(flag, keep, args_of(flag)))
    return out


# --------------------------------------------------------------------------- generation
def _conv(rng: np.random.Generator, out: int, k: int, **kw: Any) -> dict[str, Any]:
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **kw}


def random_network(rng: np.random.Generator, level: int, allow_collapse: bool) -> dict[str, Any]:
    """A LeNet-like stack whose arithmetic fits on paper.

    Level 1: valid convolutions and 2×2 pooling on even sizes. Level 2: padding, stride 2,
    odd sizes where floor matters, average pooling, colour input. Level 3: groups,
    dilation, transposed and separable convolutions, layers without bias. With
    ``allow_collapse`` about a third of level 2-3 networks shrink below 1×1 on purpose.
    """
    collapse = allow_collapse and level >= 2 and rng.random() < 0.35
    c_in = 1 if level == 1 else int(rng.choice([1, 3]))
    layers: list[dict[str, Any]] = []
    if level == 1:
        k1, k2 = (int(rng.choice([3, 5])) for _ in range(2))
        # choose sizes so that every pooling sees an even size
        h2 = int(rng.integers(2, 5)) * 2                 # size entering the 2nd pool
        h1 = (h2 + k2 - 1) * 2                           # size entering the 2nd conv is h1/2
        size = h1 + k1 - 1
        layers = [_conv(rng, int(rng.integers(2, 9)), k1), {"type": "maxpool2d", "kernel_size": 2},
                  _conv(rng, int(rng.integers(4, 17)), k2), {"type": "maxpool2d", "kernel_size": 2}]
    elif level == 2:
        size = int(rng.integers(9, 33)) if not collapse else int(rng.integers(7, 16))
        for _ in range(2 if not collapse else 3):
            kind = rng.integers(3)
            k = int(rng.choice([2, 3, 5]))
            if kind == 0:
                layers.append(_conv(rng, int(rng.integers(2, 17)), k,
                                    padding=int(rng.integers(1, (k + 1) // 2 + 1))))
            elif kind == 1:
                layers.append(_conv(rng, int(rng.integers(2, 17)), k, stride=2))
            else:
                layers.append(_conv(rng, int(rng.integers(2, 17)), 3, padding="same"))
            pool = "maxpool2d" if rng.random() < 0.6 else "avgpool2d"
            pk = int(rng.choice([2, 3]))
            layers.append({"type": pool, "kernel_size": pk, **({"stride": 2} if pk == 3 else {})})
    else:
        size = int(rng.integers(10, 25)) if not collapse else int(rng.integers(6, 12))
        c = c_in
        choices = ["groups", "dilation", "transposed", "separable", "nobias"]
        picks = rng.choice(choices, size=3 if not collapse else 2, replace=False)
        for kind in picks:
            if kind == "groups":
                g = int(rng.choice([2, 3]))
                c_mid = g * int(rng.integers(1, 4))
                if c % g:
                    layers.append(_conv(rng, c_mid, 1))  # 1x1 to get a divisible depth
                    c = c_mid
                out = g * int(rng.integers(1, 5))
                layers.append(_conv(rng, out, 3, groups=g, padding=1))
                c = out
            elif kind == "dilation":
                c = int(rng.integers(2, 9))
                layers.append(_conv(rng, c, 3, dilation=2))
            elif kind == "transposed":
                c = int(rng.integers(2, 9))
                layers.append({"type": "conv_transpose2d", "out_channels": c,
                               "kernel_size": int(rng.choice([2, 3])), "stride": 2,
                               "padding": int(rng.integers(0, 2)),
                               "output_padding": int(rng.integers(0, 2))})
            elif kind == "separable":
                c = int(rng.integers(2, 13))
                layers.append({"type": "separable_conv2d", "out_channels": c,
                               "kernel_size": int(rng.choice([2, 3]))})
            else:
                c = int(rng.integers(2, 9))
                layers.append(_conv(rng, c, int(rng.choice([3, 5])), bias=False, stride=2))
            layers.append({"type": "maxpool2d", "kernel_size": 2})
        if collapse:
            layers.append({"type": "maxpool2d", "kernel_size": 3})
    layers += [{"type": "flatten"}, {"type": "linear", "out_features": int(rng.integers(8, 129))},
               {"type": "linear", "out_features": 10}]
    return {"input": [c_in, size, size], "layers": layers}


_TORCH_NAMES = {
    "conv2d": "Conv2d", "conv_transpose2d": "ConvTranspose2d", "separable_conv2d": "SeparableConv2d",
    "maxpool2d": "MaxPool2d", "avgpool2d": "AvgPool2d", "flatten": "Flatten", "linear": "Linear",
    "relu": "ReLU", "softmax": "Softmax",
}


KEY_ORDER = ("type", "out_channels", "out_features", "kernel_size", "stride", "padding",
             "output_padding", "dilation", "groups", "depth_multiplier", "bias", "ceil_mode",
             "count_include_pad")


def canonical_layer(layer: Mapping[str, Any]) -> dict[str, Any]:
    """The layer's keys in one fixed order: text built from a spec must not depend on the
    order a dict came in (a stamp stores it with sorted keys)."""
    rank = {k: i for i, k in enumerate(KEY_ORDER)}
    return {k: layer[k] for k in sorted(layer, key=lambda k: (rank.get(k, len(rank)), k))}


def layer_text(layer: Mapping[str, Any]) -> str:
    """``Conv2d(out_channels=6, kernel_size=5, padding=2)``: torch's own vocabulary."""
    args = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={tuple(v) if isinstance(v, list) else v}"
                     for k, v in canonical_layer(layer).items() if k != "type")
    return f"{_TORCH_NAMES[layer['type']]}({args})"


def network_table(spec: Mapping[str, Any], lang: str) -> str:
    from convpset.problems.text import render

    head = render(lang, "network.table_head")
    rows = [f"| {i} | `{layer_text(layer)}` |" for i, layer in enumerate(spec["layers"], start=1)]
    return "\n".join([head, *rows])


def spec_code(spec: Mapping[str, Any]) -> str:
    """The spec as a Python literal for the data cell, one layer per line."""
    layers = ",\n".join(f"        {canonical_layer(layer)!r}" for layer in spec["layers"])
    return f"network = {{\n    'input': {list(spec['input'])!r},\n    'layers': [\n{layers},\n    ],\n}}"


def network_context(v: Any, lang: str) -> dict[str, Any]:
    """Template context shared by the network families' statements and explanations."""
    from convpset.problems.render import shape_text
    from convpset.problems.text import render

    spec = v.plain("network")
    layers = spec["layers"]
    pads = {la.get("padding", 0) for la in layers
            if la["type"] != "conv_transpose2d"} - {0, "valid"}
    notes = []
    if pads:        # padding adds zeros in Conv/Pool layers ...
        notes.append(render(lang, "network.padding_note", numeric=any(p != "same" for p in pads),
                            same="same" in pads))
    if any(la["type"] == "conv_transpose2d" and (la.get("padding", 0) or la.get("output_padding", 0))
           for la in layers):   # ... and crops the output of a transposed one
        notes.append(render(lang, "network.transposed_padding_note"))
    note = " ".join(notes)
    return {"v": v, "table": network_table(spec, lang), "input": shape_text(spec["input"]),
            "n_layers": len(spec["layers"]), "padding_note": note}


def network_traits(spec: Mapping[str, Any]) -> set[str]:
    """The advertised features a network draws (see ``Family.traits``)."""
    from convpset.solutions import network

    layers = spec["layers"]
    types = {layer["type"] for layer in layers}
    convs = [la for la in layers if la["type"] in ("conv2d", "conv_transpose2d",
                                                    "separable_conv2d")]
    out = {
        "padding": any(la.get("padding", 0) not in (0, "valid") for la in layers),
        "stride": any(_pair(la.get("stride", 1)) != (1, 1) for la in convs),
        "colour": spec["input"][0] == 3,
        "groups": any(la.get("groups", 1) != 1 for la in layers),
        "dilation": any(_pair(la.get("dilation", 1)) != (1, 1) for la in layers),
        "transposed": "conv_transpose2d" in types,
        "separable": "separable_conv2d" in types,
        "no_bias": any(la.get("bias", True) is False for la in layers),
        "avgpool": "avgpool2d" in types,
        "collapse": network.analyze(dict(spec)).collapsed_at is not None,
    }
    truth = misanalyze(spec)
    out["odd_sizes"] = misanalyze(spec, ["ceil"]).shapes != truth.shapes
    return {k for k, on in out.items() if on}


def network_features(v: Any) -> dict[str, float]:
    """Difficulty features of a network variant: depth (layers) and input size."""
    net = v.params["network"]
    return {"depth": float(len(net["layers"])), "input_size": float(np.prod(net["input"]))}


def network_budget(v: Any, key: Mapping[str, Any]) -> dict[str, float]:
    """Hand-work measures of a network variant: the largest number of its answers, the
    input side and the number of layers (see ``Family.size_budget``)."""
    spec = v.params["network"]
    numbers = [0.0]
    for value in key.values():
        arr = np.asarray([x for row in value for x in row] if isinstance(value, list)
                         else value, dtype=float)
        if arr.size:
            numbers.append(float(np.abs(arr).max()))
    return {"largest": max(numbers), "input_side": float(max(spec["input"][1:])),
            "layers": float(len(spec["layers"]))}


class NetworkFamily(Family):
    """What the network families share: the network as a torch-style spec (the data
    cell), its table (the statement), and its features, traits and hand-work budget."""

    def context(self, v: Any, lang: str) -> dict[str, Any]:
        return network_context(v, lang)

    def data_code(self, v: Any) -> str:
        return spec_code(v.plain("network"))

    def features(self, v: Any) -> dict[str, float]:
        return network_features(v)

    def traits(self, v: Any) -> frozenset[str]:
        return frozenset(network_traits(v.plain("network")))

    def size_budget(self, v: Any) -> dict[str, float]:
        return network_budget(v, solved(self, v))
