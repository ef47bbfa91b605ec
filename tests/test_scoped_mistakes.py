"""A slip made in some layers only is still named (issue 23).

A student makes a misconception per kind of layer: drops the kernel depth in the Conv2d
layers and counts a separable pointwise right, or counts padding once in Conv/Pool layers
and keeps the transposed formula. For every plausible scope of a slip (``SCOPES``), the
answer it gives is either right (the scope changes nothing here), or named for that slip,
or named for a listed mistake that gives the very same answer. The answers of each scope
are computed by :func:`misanalyze` with the slip limited to those layers, and checked
against torch's counts where the scope is empty.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from convpset.problems import Submitted, get_family, variant_from_seed
from convpset.problems.checking import check_part, mistake_collisions, mistakes_of, parts_of, solved
from convpset.problems.networks import SCOPES, misanalyze
from convpset.solutions import network

CASES = {"param_count": ("params", "kernel_without_depth"),
         "output_shape": ("shapes", "one_side_padding")}


def _answer(family: str, m) -> object:
    return np.array(m.params) if family == "param_count" else [tuple(s) for s in m.shapes]


def _plain(a) -> object:
    return [_plain(x) for x in a] if isinstance(a, list | tuple | np.ndarray) else int(a)


def _judge(family: str, seed: int, scope) -> tuple[str, str | None, bool]:
    fam = get_family(family)
    v = variant_from_seed(family, seed, 3)
    part_name, flag = CASES[family]
    spec = v.plain("network")
    m = misanalyze(spec, [flag], {flag: scope})
    if m.collapsed_at is not None and family == "param_count":
        return "skip", None, False
    part = next(p for p in parts_of(fam, v) if p.name == part_name)
    answer = _answer(family, m)
    r = check_part(part, Submitted.of(answer), solved(fam, v)[part_name], mistakes_of(fam, v),
                   family)
    same_as_listed = any(part_name in x.answers and _plain(x.answers[part_name]) == _plain(answer)
                         for x in mistakes_of(fam, v))
    return r.status, r.mistake, same_as_listed


@settings(max_examples=60, deadline=None)
@given(family=st.sampled_from(sorted(CASES)), seed=st.integers(0, 10_000), which=st.integers(0, 3))
def test_a_slip_in_some_layers_is_named(family, seed, which):
    flag = CASES[family][1]
    scopes = SCOPES[flag]
    status, mistake, listed = _judge(family, seed, scopes[which % len(scopes)])
    if status in ("skip", "correct"):
        return
    assert listed, "a plausible scope of the slip is not among the named mistakes"
    assert mistake is not None


def test_depth_dropped_in_conv2d_only_is_named_in_mixed_networks():
    """The audit's case: a network with Conv2d layers on deep inputs and a separable or a
    transposed layer. Dropping the depth in Conv2d alone must be named, in most such
    networks (before the fix: 1 of 34)."""
    named = total = 0
    for seed in range(400):
        v = variant_from_seed("param_count", seed, 3)
        types = {la["type"] for la in v.plain("network")["layers"]}
        if not types & {"separable_conv2d", "conv_transpose2d"}:
            continue
        status, mistake, _ = _judge("param_count", seed, frozenset({"conv2d"}))
        if status == "correct":
            continue
        total += 1
        named += mistake == "kernel_without_depth"
    assert total >= 20
    assert named == total


def test_one_side_padding_in_conv_and_pool_only_is_named():
    named = total = 0
    for seed in range(400):
        v = variant_from_seed("output_shape", seed, 3)
        if "conv_transpose2d" not in {la["type"] for la in v.plain("network")["layers"]}:
            continue
        status, mistake, _ = _judge("output_shape", seed,
                                    SCOPES["one_side_padding"][1])
        if status == "correct":
            continue
        total += 1
        named += mistake == "one_side_padding"
    assert total >= 5
    assert named == total


def test_scopes_keep_the_screen_and_the_truth():
    """Extra scopes never collide with the truth or each other; with no slip the model
    reproduces torch's shapes and counts, and a scope of every layer kind is the whole
    network."""
    for family in CASES:
        fam = get_family(family)
        for seed in range(60):
            v = variant_from_seed(family, seed, 3)
            assert not mistake_collisions(fam, v)
            spec = v.plain("network")
            ref = network.analyze_torch(spec)
            m = misanalyze(spec)
            assert list(m.params) == [la.params for la in ref.layers]
            assert [tuple(s) for s in m.shapes] == [tuple(la.output_shape) for la in ref.layers]
            every = frozenset(la["type"] for la in spec["layers"])
            for flag in SCOPES:     # a scope naming every layer kind is the whole network
                assert misanalyze(spec, [flag], {flag: every}) == misanalyze(spec, [flag])
