"""receptive_field: the notes' numbers, three routes to the truth, the named mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from convpset.problems import Submitted, Variant, check, get_family, variant_from_seed
from convpset.problems.receptive_field import _torch_geometry, geometry
from convpset.solutions import network

FAM = get_family("receptive_field")


def conv(k, **kw):
    return {"type": "conv2d", "kernel_size": k, **kw}


POOL2 = {"type": "maxpool2d", "kernel_size": 2}
# LeNet's feature extractor (seed 002): conv 5×5, pool 2, conv 5×5, pool 2
LENET = [conv(5), POOL2, conv(5), POOL2]


def test_003_one_conv_sees_its_window():
    # seed 003: "its receptive field is every element of the input window of the convolution"
    for k in (1, 2, 3, 5):
        g = geometry([conv(k)])
        assert g.rf == (k,) and g.jump == (1,)
        assert _torch_geometry([conv(k)]).rf == (k,)


def test_003_deeper_networks_see_more():
    # "if a unit needs a larger field to see more context, build deeper networks"
    rfs = [geometry([conv(3)] * n).rf[-1] for n in range(1, 6)]
    assert rfs == [3, 5, 7, 9, 11]


def test_004_dilated_convs_applied_in_turn():
    # seed 004: 3×3 convolutions with dilation 1, 2, 4 "applied one after another to the
    # previous result -- compare the sizes of their windows" (the figure: 3, 7, 15)
    layers = [conv(3), conv(3, dilation=2, padding=2), conv(3, dilation=4, padding=4)]
    assert geometry(layers).rf == (3, 7, 15)
    assert _torch_geometry(layers) == geometry(layers)
    assert geometry(layers, ["ignore_dilation"]).rf == (3, 5, 7)


def test_002_lenet_fields_three_ways():
    g = geometry(LENET)
    assert g.rf == (5, 6, 14, 16) and g.jump == (1, 2, 2, 4) and g.start == 0
    assert _torch_geometry(LENET) == g
    spec = {"input": [1, 28, 28], "layers": [
        {**layer, "out_channels": 6} if layer["type"] == "conv2d" else layer for layer in LENET]}
    res = network.analyze(spec)
    assert [r.receptive_field[0] for r in res.layers] == list(g.rf)
    assert [r.jump[0] for r in res.layers] == list(g.jump)


def test_lenet_misconceptions_are_named():
    v = Variant("receptive_field", 1, {"layers": LENET})
    key = FAM.solve(v)
    assert key["rf"].tolist() == [5, 6, 14, 16]
    ms = {m.key: m for m in FAM.mistakes(v)}
    assert ms["sum_kernels"].answers["rf"].tolist() == [5, 6, 10, 11]       # 1 + Σ(k − 1)
    assert ms["local_jump"].answers["jump"].tolist() == [1, 2, 1, 2]
    answers = {k: Submitted.of(val) for k, val in key.items()}
    answers["rf"] = Submitted.of([5, 6, 10, 11])
    res = {r.part: r for r in check(FAM, v, answers)}
    assert res["rf"].mistake == "sum_kernels" and res["rf"].status == "partial"
    assert "Σ" in res["rf"].message["en"] and "произведение" in res["rf"].message["ru"]
    assert res["jump"].status == "correct"


def test_padding_moves_the_field_but_does_not_widen_it():
    same = [conv(3, padding=1), {"type": "maxpool2d", "kernel_size": 3, "stride": 2,
                                 "padding": 1}, conv(3, padding=1)]
    g = geometry(same)
    assert g.rf == geometry([conv(3), {"type": "maxpool2d", "kernel_size": 3, "stride": 2},
                             conv(3)]).rf == (3, 5, 9)
    assert g.start == -1 - 1 - 1 * 2                   # Σ p·j_prev
    assert _torch_geometry(same) == g
    assert geometry(same, ["padding_unscaled"]).start == -3


@pytest.mark.parametrize(("level", "must"), [(1, {"pooling"}), (2, {"padding", "stride",
                                                                       "pooling"}),
                                             (3, {"dilation", "padding"})])
def test_levels_draw_what_they_advertise(level, must):
    drawn = set()
    for seed in range(40):
        drawn |= FAM.traits(variant_from_seed("receptive_field", seed, level))
    assert must <= drawn, drawn
    if level < 3:
        assert "dilation" not in drawn


def test_torch_answer_is_right():
    for level in (1, 2, 3):
        v = variant_from_seed("receptive_field", 11, level)
        ns: dict = {}
        exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, "_2"), ns)
        for name, want in FAM.solve(v).items():
            assert np.array_equal(np.asarray(ns[name + "_2"]), np.asarray(want)), name
