"""Output shapes layer by layer, including networks that collapse below 1×1."""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.networks import (
    NetworkFamily,
    layer_text,
    misanalyze,
    random_network,
    scoped_mistakes,
)
from convpset.problems.render import shape_text
from convpset.solutions import network

NAME = "output_shape"


def _truth(v: Variant) -> network.NetworkResult:
    return v.cached("truth", lambda: network.analyze(v.plain("network")))


def _relevant(spec: dict[str, Any], level: int) -> list[str]:
    """Misconceptions that can show on this network (the screen then demands they do)."""
    types = [layer["type"] for layer in spec["layers"]]
    flags = []
    if level >= 2:
        flags.append("ceil")
    if any(layer.get("padding", 0) not in (0, "valid", "same") for layer in spec["layers"]):
        flags.append("one_side_padding")
    if any(layer.get("dilation", 1) != 1 for layer in spec["layers"]):
        flags.append("ignore_dilation")
    if any(t in ("maxpool2d", "avgpool2d") for t in types):
        flags.append("pool_stride_one")
    if "conv_transpose2d" in types:
        flags.append("transposed_as_conv")
    return flags


def collapse_context(spec: dict[str, Any], res: network.NetworkResult) -> dict[str, Any] | None:
    """The collapsing layer, its input and output sizes, for the worked solution's text
    (the analysis' own ``reason`` is an English sentence for the command line)."""
    if res.collapsed_at is None:
        return None
    idx = res.collapsed_at
    in_shape = res.layers[-1].output_shape if res.layers else tuple(spec["input"])
    layer = network.parse_spec(spec).layers[idx - 1]
    out = network._closed_form(layer, tuple(in_shape)).output_shape
    return {"n": idx, "layer": layer_text(spec["layers"][idx - 1]),
            "hin": f"{in_shape[1]}×{in_shape[2]}", "hout": f"{max(out[1], 0)}×{max(out[2], 0)}"}


class OutputShape(NetworkFamily):
    name = NAME
    levels = (1, 2, 3)
    #: hand work: the largest number to compute (a flattened size), the input side and
    #: the number of layers
    budgets = {lv: {"largest": 400, "input_side": 32, "layers": 12} for lv in (1, 2, 3)}
    mistake_names = {1: ("pool_stride_one",),
                     2: ("ceil", "one_side_padding", "pool_stride_one"),
                     3: ("ceil", "one_side_padding", "ignore_dilation", "pool_stride_one",
                         "transposed_as_conv")}
    advertised = {2: {"padding": (0.8, 1.0), "stride": (0.45, 0.75), "odd_sizes": (0.9, 1.0),
                      "collapse": (0.1, 0.35)},
                  3: {"groups": (0.5, 0.8), "dilation": (0.3, 0.6), "transposed": (0.6, 0.85),
                      "separable": (0.4, 0.7), "collapse": (0.15, 0.45)}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        return Variant(NAME, level, {"network": random_network(rng, level, allow_collapse=True)})

    def parts(self, v: Variant) -> list[Part]:
        return [self.part("shapes", "shapes", 3.0, dtype="int", per_element=True),
                self.part("collapse_layer", "int", 1.0, dtype="int")]

    def solve(self, v: Variant) -> dict[str, Any]:
        res = _truth(v)
        return {"shapes": [tuple(layer.output_shape) for layer in res.layers],
                "collapse_layer": res.collapsed_at or 0}

    def mistakes(self, v: Variant) -> list[Mistake]:
        spec = v.plain("network")
        truth = self.solve(v)
        out = []
        flags = _relevant(spec, v.level)

        def answers_of(m: Any) -> dict[str, Any]:
            return {"shapes": [tuple(s) for s in m.shapes], "collapse_layer": m.collapsed_at or 0}

        for flag in flags:
            answers = answers_of(misanalyze(spec, [flag]))
            if answers["collapse_layer"] == truth["collapse_layer"]:
                del answers["collapse_layer"]
            out.append(Mistake(flag, answers))
        return out + scoped_mistakes(spec, flags, answers_of, truth, out)

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        res = _truth(v)
        rows = [(layer.index, layer.type, shape_text(layer.output_shape))
                for layer in res.layers]
        return {"rows": rows, "res": res, "collapse": collapse_context(v.plain("network"), res)}

    def oracle(self, v: Variant) -> dict[str, Any]:
        res = network.analyze_torch(v.plain("network"))
        return {"shapes": [tuple(layer.output_shape) for layer in res.layers],
                "collapse_layer": res.collapsed_at or 0}


FAMILY = OutputShape()
