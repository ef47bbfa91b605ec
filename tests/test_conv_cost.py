"""conv_cost: the notes' counts, torch's FLOP counter as the judge, the named mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convpset.problems import Submitted, Variant, check, get_family, variant_from_seed
from convpset.problems.conv_cost import cost, torch_cost

FAM = get_family("conv_cost")


def conv(out, k, **kw):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **kw}


def sep(out, k, **kw):
    return {"type": "separable_conv2d", "out_channels": out, "kernel_size": k, **kw}


def test_003_complexity_is_hwk2cico():
    # seed 003: O(h·w·k²) for one channel, O(h·w·k²·c_i·c_o) with channels
    for (ci, h), co, k in [((1, 10), 1, 3), ((3, 8), 4, 5), ((6, 12), 16, 5)]:
        layers = [conv(co, k, padding=k // 2)]
        params, macs = cost([ci, h, h], layers)
        assert macs == h * h * k * k * ci * co
        assert params == co * ci * k * k + co
        assert torch_cost([ci, h, h], layers) == (params, macs)


def test_003_one_by_one_is_a_matmul():
    # corr2d_multi_in_out_1x1: Y = K (c_o×c_i) @ X (c_i × h·w): c_o·c_i·h·w multiplications
    ci, co, h, w = 3, 2, 4, 5
    x, k = torch.randn(ci, h, w), torch.randn(co, ci)
    y = torch.nn.functional.conv2d(x[None], k[:, :, None, None])[0]
    torch.testing.assert_close(y, (k @ x.reshape(ci, h * w)).reshape(co, h, w))
    assert cost([ci, h, w], [conv(co, 1, bias=False)]) == (co * ci, co * ci * h * w)
    assert torch_cost([ci, h, w], [conv(co, 1)])[1] == co * ci * h * w


def test_004_separable_against_full():
    # seed 004: input 28×28×12, Conv2D(6, 2): kernel (2, 2, 12, 6) + bias (6,) = 294;
    # SeparableConv2D(6, 2): (2, 2, 12, 1) + (1, 1, 12, 6) + (6,) = 48 + 72 + 6 = 126;
    # output 27×27 either way
    v = Variant("conv_cost", 3, {"input": [12, 28, 28], "plain": [conv(6, 2)],
                                 "alt": [sep(6, 2)]})
    key = FAM.solve(v)
    assert key == {"params": 294, "macs": 27 * 27 * 288,
                   "params_separable": 126, "macs_separable": 27 * 27 * (48 + 72)}
    assert FAM.oracle(v) == key


def test_flops_are_twice_the_macs_and_named():
    v = variant_from_seed("conv_cost", 0, 1)
    key = FAM.solve(v)
    answers = {k: Submitted.of(a) for k, a in key.items()}
    answers["macs"] = Submitted.of(2 * key["macs"])
    r = {r.part: r for r in check(FAM, v, answers)}["macs"]
    assert r.mistake == "flops" and r.score == 0
    assert "FLOP" in r.message["en"] and "FLOP" in r.message["ru"]


def test_the_bottleneck_and_the_separable_layer_save_work():
    for level in (2, 3):
        for seed in range(20):
            key = FAM.solve(variant_from_seed("conv_cost", seed, level))
            alt = {2: "bottleneck", 3: "separable"}[level]
            assert key[f"macs_{alt}"] < key["macs"] and key[f"params_{alt}"] < key["params"]


def test_bottleneck_misconceptions():
    v = Variant("conv_cost", 2, {"input": [32, 8, 8], "plain": [conv(32, 3, padding=1)],
                                 "alt": [conv(8, 1), conv(32, 3, padding=1)]})
    key = FAM.solve(v)
    assert key["macs_bottleneck"] == 64 * 32 * 8 + 64 * 8 * 9 * 32
    ms = {m.key: m.answers for m in FAM.mistakes(v)}
    assert ms["forgot_1x1"]["macs_bottleneck"] == 64 * 8 * 9 * 32
    assert ms["mid_as_input"]["macs_bottleneck"] == 64 * 32 * 8 + 64 * 32 * 9 * 32


@pytest.mark.parametrize(("level", "must"), [(1, {"stride", "padding"}),
                                             (2, {"bottleneck", "padding"}),
                                             (3, {"depthwise_separable", "padding"})])
def test_levels_draw_what_they_advertise(level, must):
    drawn = set()
    for seed in range(30):
        drawn |= FAM.traits(variant_from_seed("conv_cost", seed, level))
    assert drawn == must


def test_torch_answer_is_right():
    for level in (1, 2, 3):
        v = variant_from_seed("conv_cost", 7, level)
        ns: dict = {}
        exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, "_3"), ns)
        for name, want in FAM.solve(v).items():
            assert int(np.asarray(ns[name + "_3"])) == want, name
