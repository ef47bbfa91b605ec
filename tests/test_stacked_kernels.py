"""stacked_kernels: VGG's count, and d2l's exercise (conv of conv = conv with the full
convolution of the kernels) checked with torch applying two layers against one."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from convpset.problems import Submitted, Variant, check, get_family, variant_from_seed
from convpset.problems.stacked_kernels import full_conv2d, torch_receptive_field

FAM = get_family("stacked_kernels")
MANY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@MANY
@given(a=st.integers(1, 4), b=st.integers(1, 4), n=st.integers(0, 4), seed=st.integers(0, 2**31))
def test_two_convolutions_are_one_with_the_composed_kernel(a, b, n, seed):
    rng = np.random.default_rng(seed)
    k1, k2 = rng.integers(-3, 4, size=(a, a)), rng.integers(-3, 4, size=(b, b))
    side = a + b - 1 + n
    x = torch.tensor(rng.integers(-3, 4, size=(1, 1, side, side)), dtype=torch.float64)
    t = lambda m: torch.tensor(m, dtype=torch.float64)[None, None]  # noqa: E731
    twice = F.conv2d(F.conv2d(x, t(k1)), t(k2))
    once = F.conv2d(x, t(full_conv2d(k1, k2)))
    assert torch.equal(twice, once)
    assert full_conv2d(k1, k2).shape == (a + b - 1, a + b - 1)


@MANY
@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from((1, 2, 3)))
def test_key_is_torch(seed, level):
    v = variant_from_seed("stacked_kernels", seed, level)
    key, want = FAM.solve(v), FAM.oracle(v)
    assert set(key) == set(want)
    for name in key:
        np.testing.assert_array_equal(np.asarray(key[name], float), np.asarray(want[name], float))


def test_three_3x3_against_one_7x7():
    # the numbers: 27C² against 49C² weights (no bias), the same 7×7 field
    for c in (16, 64):
        v = Variant("stacked_kernels", 1, {"layers": 3, "k": 3, "c": c})
        key = FAM.solve(v)
        assert key == {"rf": 7, "params_stack": 27 * c * c, "params_big": 49 * c * c}
        assert torch_receptive_field(3, 3) == 7
        stack = nn.Sequential(*(nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(3)))
        assert sum(p.numel() for p in stack.parameters()) == key["params_stack"]
    # with biases (level 2) every layer adds C: 27C² + 3C against 49C² + C
    v = Variant("stacked_kernels", 2, {"layers": 3, "k": 3, "c": 16, "h": 8})
    key = FAM.solve(v)
    assert key["params_stack"] == 27 * 256 + 48 and key["params_big"] == 49 * 256 + 16
    assert key["macs_stack"] == 8 * 8 * 27 * 256 and key["macs_big"] == 8 * 8 * 49 * 256


def test_cross_correlated_kernels_are_named():
    v = variant_from_seed("stacked_kernels", 5, 3)
    names = {m.key for m in FAM.mistakes(v)}
    assert {"flipped_composition", "no_shrink", "flops"} <= names


def test_a_torch_user_is_right_at_every_level():
    """What `pset simulate` writes for a torch user (the family's torch_answer) is judged
    right on 30 seeds per level: torch's conventions are the key's."""
    for level in FAM.levels:
        for seed in range(30):
            v = variant_from_seed("stacked_kernels", seed, level)
            ns: dict = {}
            exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, ""), ns)
            results = check(FAM, v, {p.name: Submitted.of(ns[p.name]) for p in FAM.parts(v)})
            assert all(r.status == "correct" for r in results), (level, seed, results)


def _corr2d(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The notes' corr2d (seed 003, d2l): the output is (n_h - k_h + 1) × (n_w - k_w + 1)."""
    h, w = k.shape
    y = np.zeros((x.shape[0] - h + 1, x.shape[1] - w + 1))
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = (x[i:i + h, j:j + w] * k).sum()
    return y


def test_seed_003_corr2d_twice_is_corr2d_once_with_the_composed_kernel():
    # "the convolution layer is really a cross-correlation" (seed 003): the composition of
    # two corr2d calls is one corr2d with the key's kernel, on every level-3 variant drawn
    for seed in range(20):
        v = variant_from_seed("stacked_kernels", seed, 3)
        n = v.params["n"]
        x = np.random.default_rng(seed).integers(-3, 4, size=(n, n)).astype(float)
        twice = _corr2d(_corr2d(x, v.array("K1")), v.array("K2"))
        once = _corr2d(x, FAM.solve(v)["K"])
        np.testing.assert_array_equal(twice, once)
        assert twice.shape == (n - len(v.params["K1"]) - len(v.params["K2"]) + 2,) * 2
