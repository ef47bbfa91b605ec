"""Every worked example of the course notes (/work/shared/seeds/*.txt) reproduced through
the public APIs (``solutions`` and ``problems``). Numbers the notes state are asserted
literally; where the notes are wrong or use another convention, the test says so and
checks that the grader recognizes the notes' number as the named misconception.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from convpset.problems import Submitted, Variant, check, get_family
from convpset.problems.networks import misanalyze
from convpset.solutions import loops, network, numpy_ref
from convpset.solutions import torch_ref as tref
from convpset.solutions._params import conv_output_size


def conv(out, k, **kw):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **kw}


def net(inp, *layers):
    return {"input": list(inp), "layers": list(layers)}


def shapes(spec):
    return [tuple(r.output_shape) for r in network.analyze(spec).layers]


# =========================================================================== seed 000
# 4×4 input, 3×3 kernel, outputs a, b, c, d (problem 5 of problem set 06).
W_NAMES = [[11, 12, 13], [21, 22, 23], [31, 32, 33]]      # w_ij encoded as the number ij
X_NAMES = np.array([[11, 12, 13, 14], [21, 22, 23, 24], [31, 32, 33, 34], [41, 42, 43, 44]])


def test_000_dense_vs_conv_parameters():
    dense = network.analyze(net([1, 4, 4], {"type": "flatten"},
                                {"type": "linear", "out_features": 4}))
    assert dense.layers[-1].weights == 16 * 4 == 64
    assert dense.total_params == 68
    with_bias = network.analyze(net([1, 4, 4], conv(1, 3)))
    no_bias = network.analyze(net([1, 4, 4], conv(1, 3, bias=False)))
    assert no_bias.total_params == 9
    assert with_bias.total_params == 10
    assert with_bias.layers[0].output_shape == (1, 2, 2)   # a, b, c, d: the 4 neurons
    assert network.analyze_torch(net([1, 4, 4], conv(1, 3))).total_params == 10


def test_000_weight_matrix_pattern():
    # W^T of the notes (H = X·W, X the row vector x11, x12, ..., x44), transcribed:
    notes_wt = """
        w11 0 0 0 | w12 w11 0 0 | w13 w12 0 0 | 0 w13 0 0 |
        w21 0 w11 0 | w22 w21 w12 w11 | w23 w22 w13 w12 | 0 w23 0 w13 |
        w31 0 w21 0 | w32 w31 w22 w21 | w33 w32 w23 w22 | 0 w33 0 w23 |
        0 0 w31 0 | 0 0 w32 w31 | 0 0 w33 w32 | 0 0 0 w33"""
    rows = [r.split() for r in notes_wt.split("|")]
    expected = np.array([[int(t[1:]) if t != "0" else 0 for t in r] for r in rows], float)
    assert expected.shape == (16, 4)
    kernel = np.array(W_NAMES, float)[None, None]            # distinct "symbolic" weights
    m = numpy_ref.conv_matrix((1, 4, 4), kernel)
    np.testing.assert_array_equal(m.T, expected)
    # the row of x22 (index 5) is (w22, w21, w12, w11)
    np.testing.assert_array_equal(m.T[5], [22, 21, 12, 11])
    # weight sharing and sparsity: 9 distinct weights, 4·9 = 36 non-zeros out of 64
    assert set(np.unique(m[m != 0]).astype(int)) == {w for r in W_NAMES for w in r}
    assert np.count_nonzero(m) == 36
    # the four output equations of the notes: a = Σ w_ij x_ij, b shifted right, ...
    x = np.arange(1, 17, dtype=float)
    xi = x.reshape(4, 4)
    w = np.array(W_NAMES, float)
    np.testing.assert_array_equal(
        m @ x, [np.sum(w * xi[r:r + 3, c:c + 3]) for r in (0, 1) for c in (0, 1)])


def test_000_weight_gradients_are_the_notes_sums():
    rng = np.random.default_rng(0)
    x = rng.integers(-5, 6, size=(4, 4)).astype(float)
    k = rng.integers(-3, 4, size=(3, 3)).astype(float)
    a, b, c, d = 2.0, -1.0, 3.0, 5.0                       # dL/da, dL/db, dL/dc, dL/dd
    g = numpy_ref.conv2d_backward(x[None], k[None, None], np.array([[[a, b], [c, d]]]))
    gt = tref.conv2d_backward(x[None], k[None, None], np.array([[[a, b], [c, d]]]))
    np.testing.assert_allclose(g.dw, gt.dw)

    def xv(ij):                                            # x_ij, 1-based as in the notes
        return x[ij // 10 - 1, ij % 10 - 1]

    dw = g.dw[0, 0]
    assert dw[0, 0] == a * xv(11) + b * xv(12) + c * xv(21) + d * xv(22)   # dL/dw11
    assert dw[0, 1] == a * xv(12) + b * xv(13) + c * xv(22) + d * xv(23)   # dL/dw12
    assert dw[1, 0] == a * xv(21) + b * xv(22) + c * xv(31) + d * xv(32)   # dL/dw21
    # The notes label the fourth formula dL/dw12 again, but its terms x22, x23, x32, x33
    # are those of dL/dw22 (a typo in the notes): it equals dw[1, 1].
    assert dw[1, 1] == a * xv(22) + b * xv(23) + c * xv(32) + d * xv(33)
    assert dw[1, 1] != dw[0, 1]
    # "the matrix of derivatives is a convolution running over the picture"
    np.testing.assert_array_equal(dw, loops.conv2d(x[None], np.array([[[[a, b], [c, d]]]]))[0])
    assert g.db[0] == a + b + c + d


def _full_convolution(gy: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Plain-loop full convolution: out[r, s] = Σ gy[i, j]·k[r - i, s - j]."""
    kh, kw = k.shape
    out = np.zeros((gy.shape[0] + kh - 1, gy.shape[1] + kw - 1))
    for i in range(gy.shape[0]):
        for j in range(gy.shape[1]):
            for p in range(kh):
                for q in range(kw):
                    out[i + p, j + q] += gy[i, j] * k[p, q]
    return out


def _full_correlation_with_flipped(gy: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The same thing written as in the notes: pad dL/dY by k-1, slide the flipped kernel."""
    kh, kw = k.shape
    padded = np.pad(gy, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    flipped = k[::-1, ::-1]
    out = np.zeros((padded.shape[0] - kh + 1, padded.shape[1] - kw + 1))
    for r in range(out.shape[0]):
        for s in range(out.shape[1]):
            out[r, s] = np.sum(padded[r:r + kh, s:s + kw] * flipped)
    return out


def test_000_input_gradient_is_a_convolution_of_the_derivatives():
    rng = np.random.default_rng(1)
    x = rng.integers(-5, 6, size=(4, 4)).astype(float)
    k = rng.integers(-3, 4, size=(3, 3)).astype(float)
    gy = rng.integers(-3, 4, size=(2, 2)).astype(float)
    dx = tref.conv2d_backward(x[None], k[None, None], gy[None]).dx[0]
    np.testing.assert_allclose(dx, _full_convolution(gy, k))
    np.testing.assert_allclose(dx, _full_correlation_with_flipped(gy, k))
    np.testing.assert_allclose(numpy_ref.conv2d_backward(x[None], k[None, None], gy[None]).dx[0],
                               dx)


# =========================================================================== seed 001
def test_001_perceptron_vs_shared_weights():
    fc = network.analyze(net([1, 3, 3], {"type": "flatten"},
                             {"type": "linear", "out_features": 4, "bias": False}))
    assert fc.total_params == 9 * 4 == 36
    cv = network.analyze(net([1, 3, 3], conv(1, 2, bias=False)))
    assert cv.total_params == 4
    assert cv.layers[0].output_shape == (1, 2, 2)            # 4 neurons
    m = numpy_ref.conv_matrix((1, 3, 3), np.arange(1.0, 5.0).reshape(1, 1, 2, 2))
    assert np.count_nonzero(m) == 4 * 4 == 16                 # 16 connections, 4 weights
    assert len(np.unique(m[m != 0])) == 4


def test_001_five_by_five_input():
    res = network.analyze(net([1, 5, 5], conv(1, 3, bias=False)))
    assert res.layers[0].output_shape == (1, 3, 3)
    assert res.total_params == 9
    fc = network.analyze(net([1, 5, 5], {"type": "flatten"},
                             {"type": "linear", "out_features": 9, "bias": False}))
    assert fc.total_params == 25 * 9 == 225
    strided = network.analyze(net([1, 5, 5], conv(1, 3, stride=2)))
    assert strided.layers[0].output_shape == (1, 2, 2)
    assert tref.conv2d(np.zeros((1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=2).shape == (1, 2, 2)


# =========================================================================== seed 002
def lenet(**conv_kw):
    return net([1, 28, 28],
               conv(6, 5, **conv_kw), {"type": "maxpool2d", "kernel_size": 2},
               conv(16, 5, **conv_kw), {"type": "maxpool2d", "kernel_size": 2},
               {"type": "flatten"},
               {"type": "linear", "out_features": 120},
               {"type": "linear", "out_features": 84},
               {"type": "linear", "out_features": 10},
               {"type": "softmax"})


def test_002_fully_connected():
    res = network.analyze(net([1, 28, 28], {"type": "flatten"},
                              {"type": "linear", "out_features": 1000},
                              {"type": "linear", "out_features": 10}, {"type": "softmax"}))
    assert res.total_params == 795010
    assert res.layers[0].output_shape == (784,)


def _check_seed_counts(spec, seed_params, seed_total, right_total, right_conv2):
    """Submit the notes' per-layer counts to param_count: named kernel_without_depth."""
    fam = get_family("param_count")
    v = Variant("param_count", 1, {"network": spec})
    key = fam.solve(v)
    assert key["total"] == right_total
    assert key["params"][2] == right_conv2
    # the notes' numbers, layer by layer, are what their convention (one kernel of depth
    # 1 for all input channels) computes -- an independent model of their arithmetic
    assert list(misanalyze(spec, ["kernel_without_depth"]).params) == seed_params
    assert sum(misanalyze(spec, ["kernel_without_depth"]).params) == seed_total
    answers = {k: Submitted.of(val) for k, val in key.items()}
    answers["params"] = Submitted.of(seed_params)
    answers["total"] = Submitted.of(seed_total)
    res = {r.part: r for r in check(fam, v, answers)}
    for part in ("params", "total"):
        r = res[part]
        assert r.mistake == "kernel_without_depth", r
        assert r.score < r.max_score
        en = r.message["en"]
        assert re.search(r"\b2416\b", en) and re.search(r"\b416\b", en), en
        assert re.search(r"\b2416\b", r.message["ru"])
    assert res["dense_params"].status == "correct"


def test_002_lenet_shapes_and_params():
    spec = lenet()
    assert shapes(spec) == [(6, 24, 24), (6, 12, 12), (16, 8, 8), (16, 4, 4), (256,),
                            (120,), (84,), (10,), (10,)]
    res = network.analyze(spec)
    assert [r.params for r in res.layers] == [156, 0, 2416, 0, 0, 30840, 10164, 850, 0]
    assert res.total_params == 44426
    assert network.analyze_torch(spec).total_params == 44426
    # the notes' fully connected part, 41854, counted by torch itself
    import torch

    fc = [torch.nn.Linear(256, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)]
    assert sum(p.numel() for m in fc for p in m.parameters()) == 41854
    assert sum(r.params for r in res.layers if r.type == "linear") == 41854
    # The notes give every conv kernel depth 1 ("the same weights for every channel"):
    # conv2 = (5·5+1)·16 = 416 and 42426 in total. torch's Conv2d has 2416 and 44426;
    # the grader recognizes 42426 as the misconception "kernel_without_depth".
    _check_seed_counts(spec, [156, 0, 416, 0, 0, 30840, 10164, 850, 0], 42426, 44426, 2416)
    assert sum(misanalyze(spec, ["kernel_without_depth"]).params) == 42426


def test_002_lenet_zero_padding():
    spec = lenet(padding=2)
    assert shapes(spec) == [(6, 28, 28), (6, 14, 14), (16, 14, 14), (16, 7, 7), (784,),
                            (120,), (84,), (10,), (10,)]
    res = network.analyze(spec)
    fc = sum(r.params for r in res.layers if r.type == "linear")
    assert fc == 105214
    assert res.total_params == 107786                        # torch: 156 + 2416 + 105214
    # 572 = 156 + 416: the notes' two convolutions with depth-1 kernels; torch's first
    # convolution (depth 1 anyway) has 156, and a Conv2d(1, 16, 5) -- a depth-1 kernel
    # per output channel -- is the notes' 416
    import torch

    assert sum(p.numel() for p in torch.nn.Conv2d(1, 6, 5).parameters()) == 156
    assert sum(p.numel() for p in torch.nn.Conv2d(1, 16, 5).parameters()) == 416
    wrong = misanalyze(spec, ["kernel_without_depth"]).params
    assert wrong[0] + wrong[2] == 572
    # the notes' 105786 = 105214 + 572 (kernels without depth), recognized as such
    _check_seed_counts(spec, [156, 0, 416, 0, 0, 94200, 10164, 850, 0], 105786, 107786, 2416)


def test_002_lenet_stride_two_collapses_at_second_pooling():
    spec = lenet(stride=2)
    res = network.analyze(spec)
    assert not res.valid
    assert res.collapsed_at == 4
    assert [tuple(r.output_shape) for r in res.layers] == [(6, 12, 12), (6, 6, 6), (16, 1, 1)]
    assert "maxpool2d" in res.reason and "1×1" in res.reason
    torch_res = network.analyze_torch(spec)
    assert torch_res.collapsed_at == 4
    fam = get_family("output_shape")
    v = Variant("output_shape", 1, {"network": spec})
    key = fam.solve(v)
    assert key["collapse_layer"] == 4
    assert key["shapes"] == [(6, 12, 12), (6, 6, 6), (16, 1, 1)]


# =========================================================================== seed 003
def test_003_padding_and_stride_examples():
    x = np.zeros((1, 8, 8))
    cases = [(dict(kernel_size=3, padding=1), (8, 8)),
             (dict(kernel_size=3, padding=1, stride=2), (4, 4)),
             (dict(kernel_size=[3, 5], padding=[0, 1], stride=[3, 4]), (2, 2))]
    for kw, hw in cases:
        assert shapes(net([1, 8, 8], {"type": "conv2d", "out_channels": 1, **kw}))[0] == (1, *hw)
        k = kw["kernel_size"]
        kh, kwid = (k, k) if isinstance(k, int) else k
        y = tref.conv2d(x, np.zeros((1, 1, kh, kwid)), stride=kw.get("stride", 1),
                        padding=kw["padding"])
        assert y.shape == (1, *hw)


@pytest.mark.parametrize(("in_hw", "layer", "out_hw"), [
    ((8, 8), {"kernel_size": [5, 3], "padding": [2, 1]}, (8, 8)),   # d2l 7.3.1
    ((6, 8), {"kernel_size": [1, 2]}, (6, 7)),                      # d2l 7.2 edge detector
])
def test_003_d2l_rectangular_kernels(in_hw, layer, out_hw):
    spec = net([1, *in_hw], {"type": "conv2d", "out_channels": 1, **layer})
    assert shapes(spec)[0] == (1, *out_hw)
    assert network.analyze_torch(spec).layers[0].output_shape == (1, *out_hw)
    kh, kw = layer["kernel_size"]
    x = np.random.default_rng(0).normal(size=(1, *in_hw))
    k = np.random.default_rng(1).normal(size=(1, 1, kh, kw))
    pad = tuple(layer.get("padding", (0, 0)))
    y = tref.conv2d(x, k, padding=pad)
    assert y.shape == (1, *out_hw)
    np.testing.assert_allclose(loops.conv2d(x, k, padding=pad), y, atol=1e-12)


def test_003_d2l_edge_detector_values():
    """d2l's 6×8 image with a black stripe and the kernel [1, −1]: +1 and −1 on the edges."""
    x = np.ones((6, 8))
    x[:, 2:6] = 0
    y = tref.conv2d(x[None], np.array([[[[1.0, -1.0]]]]))[0]
    want = np.zeros((6, 7))
    want[:, 1], want[:, 5] = 1, -1
    np.testing.assert_array_equal(y, want)


def test_003_pooling_examples():
    x = np.arange(9.0).reshape(1, 3, 3)
    np.testing.assert_array_equal(numpy_ref.maxpool2d(x, 2, stride=1)[0], [[4, 5], [7, 8]])
    np.testing.assert_array_equal(numpy_ref.avgpool2d(x, 2, stride=1)[0], [[2, 3], [5, 6]])
    x2 = np.stack([np.arange(16.0).reshape(4, 4), np.arange(1.0, 17.0).reshape(4, 4)])
    want = [[[5, 7], [13, 15]], [[6, 8], [14, 16]]]
    np.testing.assert_array_equal(numpy_ref.maxpool2d(x2, 3, stride=2, padding=1), want)
    np.testing.assert_array_equal(tref.maxpool2d(x2, 3, stride=2, padding=1), want)
    # MaxPool2d(3): stride defaults to the window
    assert shapes(net([1, 9, 9], {"type": "maxpool2d", "kernel_size": 3}))[0] == (1, 3, 3)


def d2l_size(n, k, p_total, s=1):
    """The notes' formula ⌊(n − k + p + s)/s⌋ with p the TOTAL padding of the axis."""
    return (n - k + p_total + s) // s


def test_003_formula_with_total_padding():
    for n in range(5, 13):
        for k in range(1, 6):
            for p in range(0, 3):                            # torch's per-side padding
                for s in (1, 2, 3):
                    ours = conv_output_size(n, k, s, 2 * p)
                    assert d2l_size(n, k, 2 * p, s) == ours
                    if s == 1:
                        assert n - k + 2 * p + 1 == ours
    # Plugging torch's per-side p into the notes' formula is exactly "one_side_padding":
    spec = net([1, 8, 8], conv(1, 3, padding=1))
    assert shapes(spec)[0] == (1, 8, 8)
    wrong = misanalyze(spec, ["one_side_padding"]).shapes[0]
    assert wrong == (1, d2l_size(8, 3, 1), d2l_size(8, 3, 1)) == (1, 7, 7)
    spec = net([1, 9, 9], conv(1, 3, padding=1, stride=2))
    assert shapes(spec)[0] == (1, 5, 5)
    assert misanalyze(spec, ["one_side_padding"]).shapes[0][1] == d2l_size(9, 3, 1, 2) == 4


def test_003_dense_and_local_parameter_counts():
    # fully connected 1000×1000 → 1000×1000 hidden: 10^12 weights
    res = network.analyze(net([1, 1000, 1000], {"type": "flatten"},
                              {"type": "linear", "out_features": 10**6, "bias": False}))
    assert res.total_params == 10**12
    # translation invariance, a, b ∈ (−1000, 1000): one weight per offset. Offsets
    # between two positions of a 1000×1000 image run over −999..999, i.e. a 1999×1999
    # kernel with padding 999 (the output keeps the input's size): 1999² shared weights,
    # the notes' 2000² = 4·10^6 to 0.1%
    shared = network.analyze(net([1, 1000, 1000], conv(1, 1999, padding=999, bias=False)))
    assert shared.layers[0].output_shape == (1, 1000, 1000)
    assert shared.total_params == 1999**2
    assert abs(shared.total_params - 4 * 10**6) / (4 * 10**6) < 1e-3
    # locality |a|, |b| ≤ Δ: the kernel is (2Δ+1)×(2Δ+1). The notes write 4Δ², the
    # leading-order approximation of (2Δ+1)² = 4Δ² + 4Δ + 1; the exact count differs.
    for delta in range(1, 10):
        k = 2 * delta + 1
        r = network.analyze(net([1, 32, 32], conv(1, k, bias=False)))
        assert r.total_params == (2 * delta + 1) ** 2
        assert r.total_params != 4 * delta**2


def test_003_complexity_is_macs():
    for (ci, h, w), co, k in [((3, 10, 12), 4, 3), ((1, 28, 28), 6, 5), ((6, 12, 12), 16, 5)]:
        r = network.analyze(net([ci, h, w], conv(co, k, padding=k // 2))).layers[0]
        h_out, w_out = r.output_shape[1:]
        assert (h_out, w_out) == (h, w)
        assert r.macs == h_out * w_out * k * k * ci * co


# =========================================================================== seed 004
# Keras NHWC input (4, 28, 28, 12) = one sample NCHW [12, 28, 28].
KERAS_IN = [12, 28, 28]


@pytest.mark.parametrize(("layer", "out_shape", "params"), [
    (conv(10, 3), (10, 26, 26), 10 * 3 * 3 * 12 + 10),
    (conv(1, [2, 3]), (1, 27, 26), None),
    (conv(1, 2, stride=[2, 3]), (1, 14, 9), None),
    (conv(1, 2, padding="same"), (1, 28, 28), None),
    (conv(6, 2), (6, 27, 27), 294),                          # kernel (2,2,12,6) + bias (6,)
    (conv(6, 2, groups=3), (6, 27, 27), 102),                # kernel (2,2,4,6) + bias (6,)
    (conv(1, 3, dilation=1), (1, 26, 26), None),
    (conv(1, 3, dilation=4), (1, 20, 20), None),
    (conv(1, 3, stride=2), (1, 13, 13), None),
    ({"type": "conv_transpose2d", "out_channels": 1, "kernel_size": 3, "stride": 2},
     (1, 57, 57), None),
    ({"type": "conv_transpose2d", "out_channels": 1, "kernel_size": 3, "dilation": 2},
     (1, 32, 32), None),
    ({"type": "separable_conv2d", "out_channels": 6, "kernel_size": 2}, (6, 27, 27), 126),
])
def test_004_keras_examples(layer, out_shape, params):
    spec = net(KERAS_IN, layer)
    r = network.analyze(spec).layers[0]
    t = network.analyze_torch(spec).layers[0]
    assert r.output_shape == t.output_shape == out_shape
    assert r.params == t.params
    if params is not None:
        assert r.params == params


def test_004_separable_parts():
    r = network.analyze(net(KERAS_IN, {"type": "separable_conv2d", "out_channels": 6,
                                       "kernel_size": 2})).layers[0]
    assert r.weights == 2 * 2 * 12 * 1 + 1 * 1 * 12 * 6 == 48 + 72
    assert r.biases == 6
    assert r.params == 48 + 72 + 6 == 126
    full = network.analyze(net(KERAS_IN, conv(6, 2))).layers[0]
    assert full.params == 294 > r.params


def test_004_three_by_three_on_five_by_five():
    # The notes say "kernel 3×3 applied to input 5×5 gives 4×4". Torch: 3×3 without
    # padding and 5×5 with padding 1. 4×4 is what one gets with padding 1 counted on one
    # side only (5 + 1 − 3 + 1): the grader's "one_side_padding" misconception.
    assert shapes(net([1, 5, 5], conv(1, 3)))[0] == (1, 3, 3)
    padded = net([1, 5, 5], conv(1, 3, padding=1))
    assert shapes(padded)[0] == (1, 5, 5)
    assert misanalyze(padded, ["one_side_padding"]).shapes[0] == (1, 4, 4)
    assert loops.conv2d(np.zeros((1, 5, 5)), np.zeros((1, 1, 3, 3)), padding=1).shape == (1, 5, 5)
