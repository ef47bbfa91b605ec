"""conv_memory: the key's convention against what torch really keeps, the notes' LeNet, the
named mistakes.

The independent source is torch itself: forward hooks give every layer's output size,
``torch.autograd.graph.saved_tensors_hooks`` every tensor autograd saves for backward,
``p.grad`` the gradients and the optimizer's ``state`` its buffers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convpset.problems import Submitted, check, get_family, variant_from_seed
from convpset.problems.conv_memory import PARTS, account, kept_tensors, torch_account

FAM = get_family("conv_memory")
LANGS = ("en", "ru")


def conv(out, k, **kw):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **kw}


RELU, POOL, AVG = {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2}, \
    {"type": "avgpool2d", "kernel_size": 2}


def _same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_002_lenet_activations_at_float32():
    # seed 002, problem 6б: 28×28 → 24×24×6 → 12×12×6 → 8×8×16 → 4×4×16 (ReLU after
    # every convolution); (5·5+1)·6 = 156 and torch's (5·5·6+1)·16 = 2416 parameters
    spec = {"input": [1, 28, 28], "layers": [conv(6, 5), RELU, POOL, conv(16, 5), RELU, POOL]}
    notes = [24 * 24 * 6, 24 * 24 * 6, 12 * 12 * 6, 8 * 8 * 16, 8 * 8 * 16, 4 * 4 * 16]
    key = account(spec, 1, None)
    assert key["act_bytes"].tolist() == [4 * n for n in notes]
    assert key["param_bytes"] == 4 * (156 + 2416)
    # kept: the input, ReLU 1's output, pool 1's indices (int64) and output, ReLU 2's
    # output, pool 2's indices; the convolutions' own outputs are freed
    assert key["saved_bytes"] == 4 * (28 * 28 + notes[1] + notes[2] + notes[4]) \
        + 8 * (notes[2] + notes[5])
    _same(key, torch_account(spec, 1, None))


def test_the_convention_is_what_torch_saves():
    """Each rule of the statement, read off the saved tensors of one forward pass."""
    spec = {"input": [2, 6, 6], "layers": [conv(3, 3, padding=1), RELU, POOL, conv(4, 1),
                                           AVG]}
    model_in = torch.randn(5, 2, 6, 6)
    from convpset.problems.conv_memory import _torch_model

    model = _torch_model(spec)
    params = {p.data_ptr() for p in model.parameters()}
    seen: list[tuple[tuple[int, ...], torch.dtype, bool]] = []

    def pack(t):
        seen.append((tuple(t.shape), t.dtype, t.data_ptr() in params))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(model_in)
    activations = [(s, d) for s, d, is_param in seen if not is_param]
    assert activations == [((5, 2, 6, 6), torch.float32),     # conv 1: its input
                           ((5, 3, 6, 6), torch.float32),     # ReLU: its output
                           ((5, 3, 6, 6), torch.float32),     # max pool: its input (the same)
                           ((5, 3, 3, 3), torch.int64),       # ... and the indices
                           ((5, 3, 3, 3), torch.float32),     # conv 2: its input
                           ((5, 4, 3, 3), torch.float32)]     # avg pool: its input
    assert [s for s, _, is_param in seen if is_param] == [(3, 2, 3, 3), (4, 3, 1, 1)]
    assert kept_tensors(spec["layers"]) == [("out", 0), ("out", 2), ("out", 2), ("idx", 3),
                                            ("out", 3), ("out", 4)]
    _same(account(spec, 5, "adam"), torch_account(spec, 5, "adam"))


@st.composite
def specs(draw):
    """Conv / ReLU / pooling stacks the family's rules cover, beyond what it draws."""
    c, size = draw(st.integers(1, 4)), draw(st.integers(4, 14))
    h, layers = size, []
    for i in range(draw(st.integers(1, 6))):
        # the first layer is a convolution, as in the family: before any parameter nothing
        # needs a gradient and torch keeps nothing
        kind = "conv2d" if i == 0 else draw(st.sampled_from(["conv2d", "relu", "maxpool2d",
                                                             "avgpool2d"]))
        if kind == "conv2d":
            k = draw(st.integers(1, min(3, h)))
            pad = draw(st.integers(0, k // 2))
            layer = conv(draw(st.integers(1, 5)), k)
            if pad:
                layer["padding"] = pad
            if not draw(st.booleans()):
                layer["bias"] = False
            h = h - k + 1 + 2 * pad
        elif kind in ("maxpool2d", "avgpool2d") and h >= 2:
            layer, h = {"type": kind, "kernel_size": 2}, h // 2
        else:
            layer = {"type": "relu"}
        layers.append(layer)
    return {"input": [c, size, size], "layers": layers}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), batch=st.integers(1, 6), optimizer=st.sampled_from([None, "adam",
                                                                          "sgd_momentum"]))
def test_closed_form_equals_torch_on_random_networks(spec, batch, optimizer):
    _same(account(spec, batch, optimizer), torch_account(spec, batch, optimizer))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from((1, 2, 3)))
def test_key_equals_the_torch_oracle_on_drawn_variants(seed, level):
    v = variant_from_seed("conv_memory", seed, level)
    _same(FAM.solve(v), FAM.oracle(v))
    assert set(FAM.solve(v)) == set(PARTS[level])


def test_batch_multiplies_activations_never_parameters():
    for seed in range(20):
        v = variant_from_seed("conv_memory", seed, 2)
        n = v.params["batch"]
        one = account(v.plain("network"), 1, None)
        key = FAM.solve(v)
        assert key["act_bytes"].tolist() == [n * a for a in one["act_bytes"].tolist()]
        assert key["param_bytes"] == key["grad_bytes"] == one["param_bytes"]


@pytest.mark.parametrize(("flag", "part"), [("all_outputs", "saved_bytes"),
                                            ("double_counted", "saved_bytes"),
                                            ("forgot_indices", "saved_bytes"),
                                            ("batch_in_params", "grad_bytes"),
                                            ("entries_not_bytes", "act_bytes")])
def test_the_usual_slips_are_named(flag, part):
    v = variant_from_seed("conv_memory", 4, 2)
    key = FAM.solve(v)
    wrong = account(v.plain("network"), v.params["batch"], None, [flag])[part]
    answers = {k: Submitted.of(a) for k, a in key.items()} | {part: Submitted.of(wrong)}
    r = {r.part: r for r in check(FAM, v, answers)}[part]
    assert r.mistake == flag and r.score < r.max_score
    assert r.message["en"] != r.message["ru"]


def test_peak_slips_are_one_named_mistake():
    v = next(v for s in range(50)
             if (v := variant_from_seed("conv_memory", s, 3)).params["optimizer"] == "adam")
    key = FAM.solve(v)
    for term in ("grad", "state", "saved"):
        drop = {"grad": key["param_bytes"], "state": key["state_bytes"],
                "saved": key["saved_bytes"]}[term]
        answers = {k: Submitted.of(a) for k, a in key.items()}
        answers["peak_bytes"] = Submitted.of(key["peak_bytes"] - drop)
        r = {r.part: r for r in check(FAM, v, answers)}["peak_bytes"]
        assert r.mistake == "peak_missing_term", term


@pytest.mark.parametrize("level", [1, 2, 3])
def test_torch_answer_is_right(level):
    for seed in (2, 9):
        v = variant_from_seed("conv_memory", seed, level)
        ns: dict = {"optimizer": "adam"}        # a previous problem's leftover
        exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, "_2"), ns)
        for name, want in FAM.solve(v).items():
            np.testing.assert_array_equal(np.asarray(ns[name + "_2"]), want, err_msg=name)


@pytest.mark.parametrize("lang", LANGS)
def test_statement_states_the_convention_where_asked(lang):
    hooks = "saved_tensors_hooks"
    for seed in range(6):
        one = FAM.statement(variant_from_seed("conv_memory", seed, 1), lang)
        assert "float32" in one and hooks not in one
        for level in (2, 3):
            v = variant_from_seed("conv_memory", seed, level)
            text = FAM.statement(v, lang)
            assert hooks in text and "int64" in text and "`MaxPool2d`" in text
            assert ("`AvgPool2d`" in text) == any(la["type"] == "avgpool2d"
                                                 for la in v.params["network"]["layers"])
            if level == 3:
                assert ("`torch.optim.Adam`" in text) == (v.params["optimizer"] == "adam")
                assert "step" in text
