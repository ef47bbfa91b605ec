"""im2col: the key against torch (``F.unfold``, ``conv2d``), the GEMM, the layouts named."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convpset.problems import Submitted, Variant, check, get_family, variant_from_seed
from convpset.problems.im2col import patches

FAM = get_family("im2col")
MANY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _submit(answers: dict) -> dict[str, Submitted]:
    return {k: Submitted.of(v) for k, v in answers.items()}


@MANY
@given(c=st.integers(1, 3), h=st.integers(2, 7), w=st.integers(2, 7), k=st.integers(1, 3),
       s=st.integers(1, 3), p=st.integers(0, 1), seed=st.integers(0, 2**31))
def test_patches_are_torch_unfold(c, h, w, k, s, p, seed):
    """The loops give torch's unfold for any shape, stride and padding (Caffe's layout)."""
    if k > min(h, w) + 2 * p:
        return
    x = np.random.default_rng(seed).integers(-5, 6, size=(c, h, w)).astype(float)
    want = F.unfold(torch.tensor(x)[None], k, padding=p, stride=s)[0].numpy()
    np.testing.assert_array_equal(patches(x, k, s, p), want)


@MANY
@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from((1, 2, 3)))
def test_key_is_torch_and_the_gemm_is_the_convolution(seed, level):
    v = variant_from_seed("im2col", seed, level)
    key, want = FAM.solve(v), FAM.oracle(v)
    for name in key:
        np.testing.assert_allclose(np.asarray(key[name], float), np.asarray(want[name], float))
    x, kern = torch.tensor(v.array("x"))[None], torch.tensor(v.array("kernel"))
    y = F.conv2d(x, kern, stride=v.params["stride"], padding=v.params["padding"])[0]
    gemm = kern.reshape(kern.shape[0], -1).numpy() @ key["cols"]
    bias = np.zeros(kern.shape[0]) if v.params["bias"] is None else np.array(v.params["bias"])
    np.testing.assert_allclose(gemm.reshape(y.shape), y.numpy())
    np.testing.assert_allclose(np.asarray(key["y"]).reshape(y.shape),
                               y.numpy() + bias[:, None, None])
    if level >= 2:   # the memory against the input: entries of cols over entries of x
        assert key["ratio"] == key["cols"].size / x.numel()


def test_a_torch_user_and_every_layout_slip():
    """F.unfold's answer is right as it is; the transposed layout (one window per row)
    and the other orders are named, not taken for the asked layout."""
    v = variant_from_seed("im2col", 3, 3)
    key = FAM.solve(v)
    ns: dict = {}
    exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, ""), ns)
    got = {p.name: ns[p.name] for p in FAM.parts(v)}
    assert all(r.status == "correct" for r in check(FAM, v, _submit(got)))
    named = {r.part: r.mistake for r in check(FAM, v, _submit(dict(key) | {"cols": key["cols"].T}))}
    assert named["cols"] == "patches_as_rows"
    channels_last = patches(v.array("x"), len(v.params["kernel"][0][0]), v.params["stride"],
                            v.params["padding"], order="ijc")
    named = {r.part: r.mistake for r in check(FAM, v, _submit(dict(key) | {"cols": channels_last}))}
    assert named["cols"] == "channels_last"


def test_seed_001_five_by_five_input_three_by_three_kernel():
    # seed 001: a 5×5 input, a 3×3 kernel, a 3×3 output; a dense layer would need
    # 25·9 = 225 weights where the convolution shares 9. Its im2col matrix is 9×9: each
    # of the 9 output positions reads 9 input pixels, 81 entries for 25 pixels.
    x = np.arange(25).reshape(1, 5, 5).astype(float) + 1
    v = Variant("im2col", 2, {"x": x.tolist(), "kernel": np.ones((1, 1, 3, 3)).tolist(),
                              "stride": 1, "padding": 0, "bias": [1]})
    key = FAM.solve(v)
    assert key["cols_shape"].tolist() == [9, 9] and key["cols_bytes"] == 81 * 4
    assert key["ratio"] == 81 / 25
    assert key["y"].shape == (3, 3) and key["y"][0, 0] == x[0, :3, :3].sum() + 1


def test_a_torch_user_is_right_at_every_level():
    """What `pset simulate` writes for a torch user (the family's torch_answer) is judged
    right on 30 seeds per level: torch's conventions are the key's."""
    for level in FAM.levels:
        for seed in range(30):
            v = variant_from_seed("im2col", seed, level)
            ns: dict = {}
            exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, ""), ns)
            results = check(FAM, v, {p.name: Submitted.of(ns[p.name]) for p in FAM.parts(v)})
            assert all(r.status == "correct" for r in results), (level, seed, results)


def test_hand_work_is_the_matrix_families_budget():
    """The patch matrix is copied entries, like a convolution matrix: at ~8 entries a
    minute levels 1-3 may ask 88, 104 and 128 numbers (tests/test_budgets.py), and level 2
    asks fewer than level 3."""
    from convpset.problems.contract import answer_entries

    medians = []
    for level, cap in ((1, 88), (2, 104), (3, 128)):
        entries = [answer_entries(FAM.solve(variant_from_seed("im2col", s, level)))
                   for s in range(60)]
        assert max(entries) <= cap and FAM.budgets[level]["entries"] <= cap
        medians.append(float(np.median(entries)))
    assert medians[0] <= medians[1] < medians[2], medians


def test_seed_003_one_by_one_convolution_is_the_notes_matmul():
    # seed 003 (d2l's corr2d_multi_in_out_1x1): X.reshape(c_i, h·w), K.reshape(c_o, c_i),
    # Y = K @ X. For a 1×1 kernel the im2col matrix *is* X.reshape(c_i, h·w), and the GEMM
    # is that matmul.
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, size=(3, 3, 4)).astype(float)
    k = rng.integers(-2, 3, size=(2, 3, 1, 1)).astype(float)
    cols = patches(x, 1, 1, 0)
    np.testing.assert_array_equal(cols, x.reshape(3, 12))
    y_notes = (k.reshape(2, 3) @ x.reshape(3, 12)).reshape(2, 3, 4)
    y_torch = F.conv2d(torch.tensor(x)[None], torch.tensor(k))[0].numpy()
    np.testing.assert_array_equal(y_notes, y_torch)
