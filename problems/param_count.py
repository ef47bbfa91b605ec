"""Parameter counts of whole networks, and the dense layer a convolution replaces."""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.networks import (
    NetworkFamily,
    misanalyze,
    random_network,
    scoped_mistakes,
)
from convpset.problems.render import shape_text
from convpset.solutions import network

NAME = "param_count"


def _truth(v: Variant) -> network.NetworkResult:
    return v.cached("truth", lambda: network.analyze(v.plain("network")))


def _dense(spec: dict[str, Any], first_out: tuple[int, ...], bias: bool = True) -> int:
    n_in, n_out = int(np.prod(spec["input"])), int(np.prod(first_out))
    return n_in * n_out + (n_out if bias else 0)


def _answers(spec: dict[str, Any], res: network.NetworkResult) -> dict[str, Any]:
    return {"params": np.array([layer.params for layer in res.layers]),
            "total": res.total_params,
            "dense_params": _dense(spec, res.layers[0].output_shape)}


def _relevant(spec: dict[str, Any], level: int) -> list[str]:
    layers = spec["layers"]
    types = [layer["type"] for layer in layers]
    flags = ["no_bias", "fc_no_bias"]
    depth = spec["input"][0]
    deep_conv = False
    for layer in layers:
        if layer["type"] in ("conv2d", "conv_transpose2d", "separable_conv2d") and depth > 1:
            deep_conv = True
        if "out_channels" in layer:
            depth = layer["out_channels"]
    if deep_conv:
        flags.append("kernel_without_depth")
    if any(layer.get("groups", 1) != 1 for layer in layers):
        flags.append("groups_ignored")
    if "separable_conv2d" in types:
        flags.append("separable_as_full")
    if level >= 2:
        flags.append("ceil")
    if any(layer.get("padding", 0) not in (0, "valid", "same") for layer in layers):
        flags.append("one_side_padding")
    return flags


def _depth_example(spec: dict[str, Any], res: network.NetworkResult) -> dict[str, Any]:
    """The first convolution whose kernel depth the misconception drops, for the message."""
    depth = spec["input"][0]
    for layer, r in zip(spec["layers"], res.layers, strict=False):
        if layer["type"] == "conv2d" and depth > 1:
            k = layer["kernel_size"]
            kh, kw = (k, k) if isinstance(k, int) else k
            g = layer.get("groups", 1)
            b = 1 if layer.get("bias", True) else 0
            return {"layer": r.index, "kh": kh, "kw": kw, "depth": depth // g,
                    "out": layer["out_channels"], "bias": b, "right": r.params,
                    "wrong": (kh * kw + b) * layer["out_channels"]}
        if "out_channels" in layer:
            depth = layer["out_channels"]
    return {"layer": 0, "kh": 0, "kw": 0, "depth": 0, "out": 0, "bias": 0, "right": 0, "wrong": 0}


class ParamCount(NetworkFamily):
    name = NAME
    levels = (1, 2, 3)
    #: hand work: the largest number to compute (the dense layer of part 3, for one), the
    #: input side and the number of layers
    budgets = {lv: {"largest": 20_000_000, "input_side": 32, "layers": 12} for lv in (1, 2, 3)}
    mistake_names = {
        1: ("no_bias", "fc_no_bias", "kernel_without_depth", "dense_no_bias",
            "dense_bias_per_channel"),
        2: ("no_bias", "fc_no_bias", "kernel_without_depth", "ceil", "one_side_padding",
            "dense_no_bias", "dense_bias_per_channel"),
        3: ("no_bias", "fc_no_bias", "kernel_without_depth", "groups_ignored",
            "separable_as_full", "ceil", "one_side_padding", "dense_no_bias",
            "dense_bias_per_channel")}
    advertised = {2: {"padding": (0.8, 1.0), "stride": (0.4, 0.75), "colour": (0.35, 0.65),
                      "avgpool": (0.5, 0.85)},
                  3: {"groups": (0.35, 0.65), "dilation": (0.35, 0.65),
                      "transposed": (0.7, 1.0), "separable": (0.55, 0.85),
                      "no_bias": (0.3, 0.6)}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        return Variant(NAME, level, {"network": random_network(rng, level, allow_collapse=False)})

    def parts(self, v: Variant) -> list[Part]:
        n = len(v.params["network"]["layers"])
        return [self.part("params", "array", 2.0, shape=(n,), dtype="int", per_element=True),
                self.part("total", "int", 1.0, dtype="int"),
                self.part("dense_params", "int", 1.0, dtype="int")]

    def solve(self, v: Variant) -> dict[str, Any]:
        return _answers(v.plain("network"), _truth(v))

    def mistakes(self, v: Variant) -> list[Mistake]:
        spec = v.plain("network")
        truth = self.solve(v)
        out = []
        flags = _relevant(spec, v.level)

        def args_of(flag: str) -> dict[str, Any]:
            return _depth_example(spec, _truth(v)) if flag == "kernel_without_depth" else {}

        def answers_of(m: Any) -> dict[str, Any]:
            return {"params": np.array(m.params), "total": sum(m.params)}

        for flag in flags:
            out.append(Mistake(flag, answers_of(misanalyze(spec, [flag])), args_of(flag)))
        first = _truth(v).layers[0].output_shape
        out.append(Mistake("dense_no_bias", {"dense_params": _dense(spec, first, bias=False)}))
        out.append(Mistake("dense_bias_per_channel", {
            "dense_params": truth["dense_params"] - int(np.prod(first)) + int(first[0])}))
        return out + scoped_mistakes(spec, flags, answers_of, truth, out, args_of)

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        res = _truth(v)
        rows = [(r.index, r.type, shape_text(r.output_shape), r.weights, r.biases, r.params)
                for r in res.layers]
        return {"rows": rows, "total": res.total_params, "dense": self.solve(v)["dense_params"]}

    def oracle(self, v: Variant) -> dict[str, Any]:
        return _answers(v.plain("network"), network.analyze_torch(v.plain("network")))


FAMILY = ParamCount()
