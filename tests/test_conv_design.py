"""conv_design: every valid answer is accepted (validity checked against torch's output
shape on a tensor of zeros), the listed slips are not, and the notes' Keras sizes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convpset.problems import Submitted, check, get_family, mistake_collisions, variant_from_seed
from convpset.problems.conv_design import designs, fits, out_size, same_split, torch_size

FAM = get_family("conv_design")
MANY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**32 - 1)


def _submit(answers: dict) -> dict[str, Submitted]:
    return {k: Submitted.of(v) for k, v in answers.items()}


def _torch_maps(n: int, m: int, k: int, s: int, p: int) -> bool:
    """The stated ranges, and torch's own output size."""
    if not (1 <= k <= 7 and 1 <= s <= 3 and 0 <= p <= k // 2) or n + 2 * p < k:
        return False
    return torch_size(n, k, s, p) == m


@MANY
@given(seed=SEEDS, level=st.sampled_from((1, 2, 3)), k=st.integers(-1, 9),
       s=st.integers(0, 4), p=st.integers(-1, 5))
def test_the_grader_accepts_exactly_the_triples_torch_maps(seed, level, k, s, p):
    v = variant_from_seed("conv_design", seed, level)
    g = v.params["design"]
    answer = dict(FAM.solve(v)) | {"design": [k, s, p]}
    (r,) = [r for r in check(FAM, v, _submit(answer)) if r.part == "design"]
    assert (r.status == "correct") == _torch_maps(g["n"], g["m"], k, s, p), (g, k, s, p, r)


@MANY
@given(seed=SEEDS, level=st.sampled_from((2, 3)), before=st.integers(0, 12),
       after=st.integers(0, 12))
def test_every_split_that_keeps_the_size_is_accepted(seed, level, before, after):
    v = variant_from_seed("conv_design", seed, level)
    same = v.params["same"]
    x = F.pad(torch.zeros(1, 1, same["n"], same["n"]), (before, after, before, after))
    keeps = F.conv2d(x, torch.zeros(1, 1, same["k"], same["k"]),
                     dilation=same.get("d", 1)).shape[-1] == same["n"]
    answer = dict(FAM.solve(v)) | {"pad_same": [before, after]}
    (r,) = [r for r in check(FAM, v, _submit(answer)) if r.part == "pad_same"]
    assert (r.status == "correct") == keeps


@MANY
@given(seed=SEEDS, level=st.sampled_from((1, 2, 3)))
def test_key_is_torch_and_no_slip_is_a_valid_answer(seed, level):
    v = variant_from_seed("conv_design", seed, level)
    key, want = FAM.solve(v), FAM.oracle(v)
    for name in key:
        np.testing.assert_array_equal(np.asarray(key[name]), np.asarray(want[name]))
    assert mistake_collisions(FAM, v) == []
    for m in FAM.mistakes(v):
        for name, wrong in m.answers.items():
            assert not FAM.accepts(v, name, np.asarray(wrong, dtype=float)), (m.key, name)


def test_even_kernels_need_an_uneven_split_as_torch_same_does():
    for k in (2, 4, 6):
        before, after = same_split(k)
        assert after == before + 1            # torch's padding='same': the extra one after
        x = torch.randn(1, 1, 9, 9)
        w = torch.randn(1, 1, k, k)
        assert torch.allclose(F.conv2d(x, w, padding="same"),
                              F.conv2d(F.pad(x, (before, after, before, after)), w), atol=1e-6)
        # no symmetric integer padding keeps the size
        assert all(out_size(9, k, 1, p) != 9 for p in range(6))
    # dilation 2 makes a 2×2 kernel span 3 pixels: symmetric padding 1 works again
    assert same_split(2, 2) == (1, 1) and out_size(9, 2, 1, 1, 2) == 9


def test_seed_004_keras_sizes():
    # seed 004 on a 28×28 input: Conv2D(10, 3) -> 26; Conv2D(1, 2, strides=(2, 3)) ->
    # 14×9; Conv2D(1, 2, padding='same') -> 28 (TensorFlow pads the extra zero after)
    assert out_size(28, 3) == 26 == torch_size(28, 3)
    assert (out_size(28, 2, 2), out_size(28, 2, 3)) == (14, 9)
    assert fits(28, 2, 0, 2) and not fits(28, 2, 0, 3)   # stride 3 drops 2 rows
    assert same_split(2) == (0, 1) and out_size(28, 2, 1, 0, 1, 1) == 28
    assert (2, 2, 0) in designs(28, 14) and (2, 3, 0) not in designs(28, 14)


def test_a_torch_user_is_right_at_every_level():
    """What `pset simulate` writes for a torch user (the family's torch_answer) is judged
    right on 30 seeds per level: torch's conventions are the key's."""
    for level in FAM.levels:
        for seed in range(30):
            v = variant_from_seed("conv_design", seed, level)
            ns: dict = {}
            exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, ""), ns)
            results = check(FAM, v, {p.name: Submitted.of(ns[p.name]) for p in FAM.parts(v)})
            assert all(r.status == "correct" for r in results), (level, seed, results)


def test_a_torch_users_own_design_is_not_the_key_and_is_right():
    """The simulated torch user searches kernels 1, 2, 3, … (the key prefers 3, 5, 1, …):
    their design usually differs from the key, and the grader takes it."""
    other = 0
    for seed in range(40):
        v = variant_from_seed("conv_design", seed, 2)
        ns: dict = {}
        exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, ""), ns)
        if list(ns["design"]) != FAM.solve(v)["design"].tolist():
            other += 1
            (r,) = [r for r in check(FAM, v, _submit({"design": ns["design"]}))
                    if r.part == "design"]
            assert r.status == "correct"
    assert other >= 20
