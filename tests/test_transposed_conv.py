"""transposed_conv: the notes' numbers, W.T as the layer, torch as the judge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convpset.problems import Submitted, Variant, check, get_family, variant_from_seed
from convpset.problems.transposed_conv import out_size
from convpset.solutions import loops
from convpset.solutions import torch_ref as tref
from convpset.solutions._params import conv_output_size, conv_transpose_output_size

FAM = get_family("transposed_conv")


def variant(x, k, stride=1, padding=0, bias=None, level=1):
    return Variant("transposed_conv", level, {"x": x, "kernel": k, "stride": stride,
                                              "padding": padding, "bias": bias})


def test_004_keras_sizes():
    # seed 004 on a 28×28 input: Conv2D(1, 3, strides=2) -> 13, Conv2DTranspose(1, 3,
    # strides=2) -> 57, Conv2DTranspose(1, 3, dilation_rate=2) -> 32
    assert conv_output_size(28, 3, 2, 0) == 13
    assert out_size(28, 3, 2, 0) == 57 == conv_transpose_output_size(28, 3, 2, 0, 0, 1)
    assert conv_transpose_output_size(28, 3, 1, 0, 0, 2) == 32
    y = F.conv_transpose2d(torch.zeros(1, 1, 28, 28), torch.zeros(1, 1, 3, 3), stride=2)
    assert tuple(y.shape[-2:]) == (57, 57)
    # the grader names 13 (an ordinary convolution's size) for a transposed layer
    v = variant([[1, 2], [3, 4]], [[1, 0, 1], [0, 1, 0], [1, 0, 2]], stride=2, level=2)
    conv_shape = {m.key: m for m in FAM.mistakes(v)}["conv_shape"].answers["out_shape"]
    assert conv_shape.tolist() == [conv_output_size(2, 3, 2, 0)] * 2


def test_004_one_number_makes_nine():
    # "how to make 9 numbers out of one? Copy!": a 1×1 input spreads x·K
    k = [[1, -2, 3], [0, 2, -1], [2, 1, 1]]
    v = variant([[3]], k)
    np.testing.assert_array_equal(FAM.solve(v)["y"], 3 * np.array(k))


def test_004_the_kernel_is_reflected_when_seen_as_a_window():
    # "if we look which inputs reach one output and with which weights, the kernel turns
    # out reflected": a transposed conv = zero-inserted, padded input * flipped kernel
    rng = np.random.default_rng(4)
    for s in (1, 2):
        x = rng.integers(-3, 4, size=(2, 3)).astype(float)
        k = rng.integers(-2, 3, size=(3, 3)).astype(float)
        spread = np.zeros(((2 - 1) * s + 1, (3 - 1) * s + 1))
        spread[::s, ::s] = x
        padded = np.pad(spread, 2)
        window = loops.conv2d(padded[None], k[::-1, ::-1][None, None])[0]
        np.testing.assert_array_equal(window, FAM.solve(variant(x.tolist(), k.tolist(), s))["y"])


def test_the_layer_is_w_transpose():
    for level in (1, 2, 3):
        for seed in range(6):
            v = variant_from_seed("transposed_conv", seed, level)
            key = FAM.solve(v)
            p = v.params
            b = p["bias"] or 0
            np.testing.assert_allclose(key["W"].T @ v.array("x").ravel() + b, key["y"].ravel())
            big = (1, *key["y"].shape)
            np.testing.assert_array_equal(
                key["W"], tref.conv_matrix(big, v.array("kernel")[None, None],
                                           stride=p["stride"], padding=p["padding"]))
            np.testing.assert_array_equal(
                key["y"], loops.conv_transpose2d(v.array("x")[None], v.array("kernel")[None, None],
                                                 None if p["bias"] is None else [b],
                                                 p["stride"], p["padding"])[0])


def test_transposed_w_is_named():
    v = variant_from_seed("transposed_conv", 3, 3)
    key = FAM.solve(v)
    answers = {k: Submitted.of(a) for k, a in key.items()}
    answers["W"] = Submitted.of(key["W"].T)
    r = {r.part: r for r in check(FAM, v, answers)}["W"]
    assert r.mistake == "transpose" and r.score == 0
    assert "W.T" in r.message["en"] and "W.T" in r.message["ru"]


@pytest.mark.parametrize(("level", "must"), [(1, set()), (2, {"stride", "bias"}),
                                             (3, {"stride", "bias", "padding"})])
def test_levels_draw_what_they_advertise(level, must):
    drawn = [FAM.traits(variant_from_seed("transposed_conv", s, level)) for s in range(20)]
    assert all(t == must for t in drawn), drawn


def test_torch_answer_is_right():
    for level in (1, 2, 3):
        v = variant_from_seed("transposed_conv", 5, level)
        ns: dict = {}
        exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, "_1"), ns)
        for name, want in FAM.solve(v).items():
            np.testing.assert_allclose(np.asarray(ns[name + "_1"], dtype=float), want)


# seed 000: the notes write the 4×4 → 2×2 convolution with a 3×3 kernel as H = X·W with
# X the row vector x11 … x44; transcribed (w_ij encoded as the number ij):
NOTES_W = """
    w11 0 0 0 | w12 w11 0 0 | w13 w12 0 0 | 0 w13 0 0 |
    w21 0 w11 0 | w22 w21 w12 w11 | w23 w22 w13 w12 | 0 w23 0 w13 |
    w31 0 w21 0 | w32 w31 w22 w21 | w33 w32 w23 w22 | 0 w33 0 w23 |
    0 0 w31 0 | 0 0 w32 w31 | 0 0 w33 w32 | 0 0 0 w33"""


def test_000_the_notes_matrix_is_the_transposed_layer():
    notes = np.array([[int(t[1:]) if t != "0" else 0 for t in row.split()]
                      for row in NOTES_W.split("|")], dtype=float)          # 16 × 4
    k = [[11, 12, 13], [21, 22, 23], [31, 32, 33]]
    gy = [[2, -1], [3, 5]]                                   # dL/da, dL/db, dL/dc, dL/dd
    key = FAM.solve(variant(gy, k))
    # our W (y = Wᵀx, rows per pixel of the small image) is the notes' matrix transposed
    np.testing.assert_array_equal(key["W"], notes.T)
    # and the transposed convolution of dL/dY is the notes' dL/dX (the backward pass)
    x = np.random.default_rng(0).integers(-3, 4, size=(1, 4, 4)).astype(float)
    dx = tref.conv2d_backward(x, np.array(k, float)[None, None], np.array(gy, float)[None]).dx[0]
    np.testing.assert_array_equal(key["y"], dx)
    np.testing.assert_array_equal(key["y"].ravel(), notes @ np.array(gy, float).ravel())
