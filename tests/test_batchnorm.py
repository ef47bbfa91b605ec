"""batchnorm: counts, outputs and running statistics against torch's own BatchNorm2d, the
redundant bias found by changing it, the notes' LeNet with BatchNorm, the named mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convpset.problems import Submitted, Variant, check, get_family, variant_from_seed
from convpset.problems.batchnorm import (
    EPS,
    PARTS,
    bn_eval,
    bn_train,
    count,
    torch_model,
    torch_redundant,
)
from convpset.solutions import network

FAM = get_family("batchnorm")


def conv(out, k, **kw):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **kw}


BN, RELU, POOL = {"type": "batchnorm2d"}, {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2}


def _close(a, b) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("c", [1, 2, 16, 64])
def test_parameters_and_buffers_of_batchnorm2d(c):
    bn = torch.nn.BatchNorm2d(c)
    state = bn.state_dict()
    assert sum(p.numel() for p in bn.parameters()) == 2 * c
    assert {k for k, _ in bn.named_buffers()} == {"running_mean", "running_var",
                                                  "num_batches_tracked"}
    assert state["num_batches_tracked"].numel() == 1
    assert sum(b.numel() for b in bn.buffers()) == 2 * c + 1
    got = count({"input": [c, 4, 4], "layers": [BN]})
    assert got["params"].tolist() == [2 * c] and got["buffers"] == 2 * c + 1


def test_002_lenet_with_batchnorm():
    # seed 002, problem 6б: LeNet has 44426 parameters in torch. BatchNorm2d after each
    # convolution adds γ and β (2·6 + 2·16) and makes the convolutions' biases (6 + 16)
    # redundant; written with bias=False the network has 44426 − 22 + 44 parameters
    layers = [conv(6, 5), BN, RELU, POOL, conv(16, 5), BN, RELU, POOL, {"type": "flatten"},
              {"type": "linear", "out_features": 120}, RELU,
              {"type": "linear", "out_features": 84}, RELU,
              {"type": "linear", "out_features": 10}]
    spec = {"input": [1, 28, 28], "layers": layers}
    got = count(spec)
    assert got["total"] == 44426 + 44 and got["redundant"] == 6 + 16
    assert got["buffers"] == 13 + 33
    model = torch_model(spec)
    assert sum(p.numel() for p in model.parameters()) == got["total"]
    assert torch_redundant(model, spec["input"]) == 22
    lean = {"input": [1, 28, 28], "layers": [dict(la, bias=False) if la["type"] == "conv2d"
                                             else la for la in layers]}
    assert count(lean)["total"] == 44426 - 22 + 44
    assert network.analyze_torch(lean).total_params == 44426 - 22 + 44
    assert count(lean)["redundant"] == 0 == torch_redundant(torch_model(lean), [1, 28, 28])


def test_only_a_bias_that_batchnorm_follows_is_redundant():
    spec = {"input": [3, 8, 8], "layers": [conv(4, 3, padding=1), BN, RELU,
                                           conv(5, 3, padding=1), RELU, POOL,
                                           {"type": "flatten"},
                                           {"type": "linear", "out_features": 3}]}
    assert count(spec)["redundant"] == 4
    assert torch_redundant(torch_model(spec), spec["input"]) == 4
    assert count(spec, ["all_conv_biases"])["redundant"] == 9


@st.composite
def tiny_layers(draw):
    """Any (N, C, H, W) input and running statistics, not only the family's round ones."""
    n, c, h, w = (draw(st.integers(lo, hi)) for lo, hi in ((1, 3), (1, 3), (1, 3), (1, 3)))
    if n * h * w < 2:
        w = 2
    floats = st.floats(-5, 5, allow_nan=False, width=32)
    x = draw(st.lists(floats, min_size=n * c * h * w, max_size=n * c * h * w))
    per = st.lists(floats, min_size=c, max_size=c)
    var = draw(st.lists(st.floats(0.125, 9, width=32), min_size=c, max_size=c))
    return {"x": np.array(x, dtype=float).reshape(n, c, h, w).tolist(), "mean": draw(per),
            "var": var, "weight": draw(per), "bias": draw(per)}


def _torch_bn(p):
    bn = torch.nn.BatchNorm2d(len(p["mean"]), eps=EPS).double()
    with torch.no_grad():
        for name, key in (("running_mean", "mean"), ("running_var", "var"),
                          ("weight", "weight"), ("bias", "bias")):
            getattr(bn, name).copy_(torch.tensor(p[key], dtype=torch.float64))
    return bn


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=tiny_layers())
def test_numpy_batchnorm_equals_torch_in_both_modes(p):
    x = torch.tensor(p["x"], dtype=torch.float64)
    with torch.no_grad():
        _close(bn_eval(p), _torch_bn(p).eval()(x).numpy())
        layer = _torch_bn(p).train()
        y = layer(x)
    mine = bn_train(p)
    _close(mine["y_train"], y.numpy())
    _close(mine["running_mean"], layer.running_mean.numpy())
    _close(mine["running_var"], layer.running_var.numpy())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), level=st.sampled_from((1, 2, 3)))
def test_key_equals_the_torch_oracle_on_drawn_variants(seed, level):
    v = variant_from_seed("batchnorm", seed, level)
    key, want = FAM.solve(v), FAM.oracle(v)
    assert set(key) == set(want) == set(PARTS[level])
    for part in key:
        _close(key[part], want[part])


def test_tiny_tensors_are_hand_solvable():
    """Training mode: whole-number outputs up to eps (the batch variance is a²), and eps
    moves no answer beyond the stated tolerance."""
    for seed in range(40):
        v = variant_from_seed("batchnorm", seed, 2)
        key = FAM.solve(v)
        y = key["y_train"]
        assert np.allclose(y, np.round(y * 2) / 2, atol=1e-4)      # halves at worst
        p = v.plain("bn")
        no_eps = (np.asarray(p["weight"])[None, :, None, None] * np.sign(
            np.asarray(p["x"]) - np.asarray(p["x"]).mean(axis=(0, 2, 3), keepdims=True))
                  + np.asarray(p["bias"])[None, :, None, None])
        np.testing.assert_allclose(y, no_eps, rtol=1e-3, atol=5e-3)
        v1 = variant_from_seed("batchnorm", seed, 1)
        assert set(np.sqrt(v1.params["bn"]["var"])) <= {0.5, 1.0, 2.0}


@pytest.mark.parametrize(("level", "flag", "part"), [
    (2, "unbiased_var", "y_train"), (2, "biased_running_var", "running_var"),
    (2, "momentum_reversed", "running_mean"), (2, "stats_over_all_channels", "y_train"),
    (1, "eval_uses_batch_stats", "y_eval"), (1, "buffers_as_params", "bn_params"),
    (1, "forgot_num_batches", "bn_buffers"), (1, "none_redundant", "redundant"),
    (3, "buffers_as_params", "total"), (3, "scalar_affine", "params"),
])
def test_the_usual_slips_are_named(level, flag, part):
    from convpset.problems.batchnorm import answers

    v = variant_from_seed("batchnorm", 5, level)
    key = FAM.solve(v)
    wrong = answers(v, [flag])[part]
    subs = {k: Submitted.of(a) for k, a in key.items()} | {part: Submitted.of(wrong)}
    r = {r.part: r for r in check(FAM, v, subs)}[part]
    assert r.mistake == flag and r.score < r.max_score
    assert r.message["en"] != r.message["ru"]


def test_a_hand_answer_without_eps_is_right():
    v = variant_from_seed("batchnorm", 3, 1)
    key = FAM.solve(v)
    p = v.plain("bn")
    hand = (np.asarray(p["weight"])[None, :, None, None]
            * (np.asarray(p["x"]) - np.asarray(p["mean"])[None, :, None, None])
            / np.sqrt(np.asarray(p["var"]))[None, :, None, None]
            + np.asarray(p["bias"])[None, :, None, None])
    subs = {k: Submitted.of(a) for k, a in key.items()} | {"y_eval": Submitted.of(hand[0])}
    assert all(r.status == "correct" for r in check(FAM, v, subs))


@pytest.mark.parametrize("level", [1, 2, 3])
def test_torch_answer_is_right(level):
    for seed in (1, 8):
        v = variant_from_seed("batchnorm", seed, level)
        ns: dict = {}
        exec(FAM.data_code(v) + "\n" + FAM.torch_answer(v, "_4"), ns)
        for name, want in FAM.solve(v).items():
            got = ns[name + "_4"]
            got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
            np.testing.assert_allclose(got, np.asarray(want, dtype=float), rtol=1e-6,
                                       atol=1e-6, err_msg=name)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_statements_state_eps_momentum_and_buffers(lang):
    for level in (1, 2, 3):
        text = FAM.statement(variant_from_seed("batchnorm", 0, level), lang)
        if level < 3:
            assert "eps = 1e-5" in text
        if level == 2:
            assert "momentum = 0.1" in text and "(1 − momentum)·running" in text
        if level != 2:
            assert "num_batches_tracked" in text and "state_dict" in text


def test_level_3_networks_are_redrawn_until_something_is_redundant():
    for seed in range(30):
        v = variant_from_seed("batchnorm", seed, 3)
        assert FAM.solve(v)["redundant"] > 0
        spec = v.plain("network")
        assert Variant("batchnorm", 3, {"network": spec}).digest() == v.digest()


@st.composite
def bn_networks(draw):
    """Blocks of the family's kind — conv (bias or not), BatchNorm or not, ReLU, pooling or
    not — in any number and size, then flatten → linear."""
    c, size = draw(st.integers(1, 3)), draw(st.sampled_from([4, 8]))
    layers, h = [], size
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.sampled_from([1, 3]))
        layer = conv(draw(st.integers(1, 6)), k, padding=k // 2)
        if draw(st.booleans()):
            layer["bias"] = False
        layers.append(layer)
        if draw(st.booleans()):
            layers.append(BN)
        layers.append(RELU)
        if h >= 2 and draw(st.booleans()):
            layers.append(POOL)
            h //= 2
    layers += [{"type": "flatten"}, {"type": "linear", "out_features": draw(st.integers(1, 5))}]
    return {"input": [c, size, size], "layers": layers}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=bn_networks())
def test_counts_and_redundant_biases_equal_torch_on_random_networks(spec):
    got = count(spec)
    model = torch_model(spec)
    assert got["params"].tolist() == [sum(p.numel() for p in m.parameters()) for m in model]
    assert got["total"] == sum(p.numel() for p in model.parameters())
    assert got["buffers"] == sum(b.numel() for b in model.buffers())
    assert got["redundant"] == torch_redundant(model, spec["input"])
