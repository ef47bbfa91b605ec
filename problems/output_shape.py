"""Output shapes layer by layer, including networks that collapse below 1×1."""

from __future__ import annotations

from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant, suffixed
from convpset.problems.networks import misanalyze, network_context, random_network, spec_code
from convpset.problems.render import shape_text
from convpset.problems.text import render
from convpset.solutions import network

NAME = "output_shape"
LEVELS = (1, 2, 3)
SHAPE_FLAGS = ("ceil", "one_side_padding", "ignore_dilation", "pool_stride_one",
               "transposed_as_conv")


def generate(rng: np.random.Generator, level: int) -> Variant:
    return Variant(NAME, level, {"network": random_network(rng, level, allow_collapse=True)})


def _truth(v: Variant) -> network.NetworkResult:
    return v.cached("truth", lambda: network.analyze(v.plain("network")))


def parts(v: Variant) -> list[Part]:
    return [
        Part("shapes", "shapes", 3.0,
             {"en": "the output shape of every layer", "ru": "форма выхода каждого слоя"},
             dtype="int", per_element=True),
        Part("collapse_layer", "int", 1.0,
             {"en": "the number of the layer where the network collapses (0 if it does not)",
              "ru": "номер слоя, на котором сеть «разваливается» (0, если не разваливается)"},
             dtype="int"),
    ]


def solve(v: Variant) -> dict[str, Any]:
    res = _truth(v)
    return {"shapes": [tuple(layer.output_shape) for layer in res.layers],
            "collapse_layer": res.collapsed_at or 0}


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


def mistakes(v: Variant) -> list[Mistake]:
    spec = v.plain("network")
    truth = solve(v)
    out = []
    for flag in _relevant(spec, v.level):
        m = misanalyze(spec, [flag])
        answers: dict[str, Any] = {"shapes": [tuple(s) for s in m.shapes]}
        if (m.collapsed_at or 0) != truth["collapse_layer"]:
            answers["collapse_layer"] = m.collapsed_at or 0
        out.append(Mistake(flag, answers))
    return out


def _ctx(v: Variant, lang: str, suffix: str = "") -> dict[str, Any]:
    return network_context(v, lang, suffixed(parts(v), suffix))


def statement(v: Variant, lang: str, suffix: str = "") -> str:
    return render(lang, f"{NAME}.statement", **_ctx(v, lang, suffix=suffix))


def explain(v: Variant, lang: str) -> str:
    res = _truth(v)
    rows = [(layer.index, layer.type, shape_text(layer.output_shape)) for layer in res.layers]
    return render(lang, f"{NAME}.explain", rows=rows, res=res, **_ctx(v, lang))


def data_code(v: Variant) -> str:
    return spec_code(v.plain("network"))
