"""loops == numpy_ref == torch_ref for convolutions, transposed convolutions, conv
matrices and conv backward passes (integer-valued inputs: comparisons are exact up to
float rounding of small integer sums)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convpset.solutions import loops, numpy_ref
from convpset.solutions import torch_ref as tref
from convpset.solutions._params import (
    conv_output_size,
    conv_transpose_output_size,
    pair,
    resolve_padding,
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def ints(rng_draw, shape):
    return np.array(rng_draw(st.lists(st.integers(-3, 3), min_size=int(np.prod(shape)),
                                      max_size=int(np.prod(shape))))).reshape(shape).astype(float)


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = groups * draw(st.integers(1, 3 // groups if groups > 1 else 3))
    c_out = groups * draw(st.integers(1, 3 // groups if groups > 1 else 3))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = draw(st.sampled_from([1, 2, (1, 2), (2, 1)]))
    padding = draw(st.sampled_from([0, 1, 2, (0, 2), (1, 0), "same", "valid"]))
    stride = 1 if padding == "same" else draw(st.sampled_from([1, 2, 3, (1, 2), (3, 1)]))
    (pt, pb), (pl, pr) = resolve_padding(padding, k, dilation, stride)
    d, s = pair(dilation), pair(stride)
    ho = conv_output_size(h, k[0], s[0], pt + pb, d[0])
    wo = conv_output_size(w, k[1], s[1], pl + pr, d[1])
    assume(ho >= 1 and wo >= 1)
    x = ints(draw, (c_in, h, w))
    wt = ints(draw, (c_out, c_in // groups, *k))
    b = draw(st.none() | st.just(ints(draw, (c_out,))))
    return dict(x=x, w=wt, b=b, stride=stride, padding=padding, dilation=dilation,
                groups=groups, out=(c_out, ho, wo))


def _kw(cfg):
    return dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                groups=cfg["groups"])


@SETTINGS
@given(conv_configs())
def test_conv2d_forward_three_ways(cfg):
    y_loop = loops.conv2d(cfg["x"], cfg["w"], cfg["b"], **_kw(cfg))
    y_np = numpy_ref.conv2d(cfg["x"], cfg["w"], cfg["b"], **_kw(cfg))
    y_t = tref.conv2d(cfg["x"], cfg["w"], cfg["b"], **_kw(cfg))
    assert y_np.dtype == np.float64 and y_np.shape == cfg["out"]
    np.testing.assert_array_equal(y_loop, y_np)
    np.testing.assert_allclose(y_np, y_t, rtol=0, atol=1e-9)


@SETTINGS
@given(conv_configs())
def test_conv_matrix_three_ways(cfg):
    shape = cfg["x"].shape
    m_np = numpy_ref.conv_matrix(shape, cfg["w"], **_kw(cfg))
    c_out, ho, wo = cfg["out"]
    assert m_np.shape == (c_out * ho * wo, int(np.prod(shape)))
    np.testing.assert_array_equal(m_np, loops.conv_matrix(shape, cfg["w"], **_kw(cfg)))
    np.testing.assert_allclose(m_np, tref.conv_matrix(shape, cfg["w"], **_kw(cfg)), atol=1e-12)
    y = numpy_ref.conv2d(cfg["x"], cfg["w"], **_kw(cfg))
    np.testing.assert_array_equal(m_np @ cfg["x"].ravel(), y.ravel())
    # row-vector form of the course notes: h = x . W.T
    np.testing.assert_array_equal(cfg["x"].ravel() @ m_np.T, y.ravel())


@SETTINGS
@given(conv_configs(), st.data())
def test_conv2d_backward_vs_autograd(cfg, data):
    gy = ints(data.draw, cfg["out"])
    g_np = numpy_ref.conv2d_backward(cfg["x"], cfg["w"], gy, **_kw(cfg))
    g_t = tref.conv2d_backward(cfg["x"], cfg["w"], gy, **_kw(cfg))
    assert g_np.dx.shape == cfg["x"].shape and g_np.dw.shape == cfg["w"].shape
    for field in ("dx", "dw", "db"):
        np.testing.assert_allclose(getattr(g_np, field), getattr(g_t, field), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(g_np.db, gy.sum(axis=(1, 2)))
    # dx is the transpose of the conv matrix applied to grad_y
    m = numpy_ref.conv_matrix(cfg["x"].shape, cfg["w"], **_kw(cfg))
    np.testing.assert_allclose(g_np.dx.ravel(), m.T @ gy.ravel(), atol=1e-9)


def test_backward_uncovered_rows_get_zero_gradient():
    # 5x5 input, 2x2 kernel, stride 2: the last row and column are never read
    x = np.arange(25.0).reshape(1, 5, 5)
    w = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    gy = np.ones((1, 2, 2))
    g = numpy_ref.conv2d_backward(x, w, gy, stride=2)
    assert np.all(g.dx[0, 4, :] == 0) and np.all(g.dx[0, :, 4] == 0)
    np.testing.assert_array_equal(g.dx, tref.conv2d_backward(x, w, gy, stride=2).dx)


@st.composite
def transpose_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = groups * draw(st.integers(1, 3 // groups if groups > 1 else 3))
    c_out = groups * draw(st.integers(1, 3 // groups if groups > 1 else 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = pair(draw(st.sampled_from([1, 2, 3, (1, 2)])))
    dilation = pair(draw(st.sampled_from([1, 2, (2, 1)])))
    padding = pair(draw(st.sampled_from([0, 1, 2, (0, 1)])))
    op = tuple(draw(st.integers(0, max(stride[a], dilation[a]) - 1)) for a in range(2))
    out = tuple(
        conv_transpose_output_size((h, w)[a], k[a], stride[a], padding[a], op[a], dilation[a])
        for a in range(2)
    )
    assume(min(out) >= 1)
    x = ints(draw, (c_in, h, w))
    wt = ints(draw, (c_in, c_out // groups, *k))
    b = draw(st.none() | st.just(ints(draw, (c_out,))))
    return dict(x=x, w=wt, b=b, kw=dict(stride=stride, padding=padding, output_padding=op,
                                         dilation=dilation, groups=groups), out=(c_out, *out))


@SETTINGS
@given(transpose_configs())
def test_conv_transpose2d_three_ways(cfg):
    y_np = numpy_ref.conv_transpose2d(cfg["x"], cfg["w"], cfg["b"], **cfg["kw"])
    assert y_np.shape == cfg["out"] and y_np.dtype == np.float64
    np.testing.assert_array_equal(y_np, loops.conv_transpose2d(cfg["x"], cfg["w"], cfg["b"], **cfg["kw"]))
    np.testing.assert_allclose(y_np, tref.conv_transpose2d(cfg["x"], cfg["w"], cfg["b"], **cfg["kw"]),
                               atol=1e-9)


@SETTINGS
@given(conv_configs())
def test_conv_transpose_is_conv_input_gradient(cfg):
    """conv_transpose2d(gy, w) == dx of conv2d when the sizes match (no 'same')."""
    assume(not isinstance(cfg["padding"], str))
    p = pair(cfg["padding"])
    s, d = pair(cfg["stride"]), pair(cfg["dilation"])
    c_out, ho, wo = cfg["out"]
    gy = np.arange(c_out * ho * wo, dtype=float).reshape(cfg["out"])
    k = cfg["w"].shape[2:]
    h, w = cfg["x"].shape[1:]
    # rows not covered by the conv become output_padding of the transposed conv
    op = tuple(
        (h, w)[a] - conv_transpose_output_size((ho, wo)[a], k[a], s[a], p[a], 0, d[a])
        for a in range(2)
    )
    assume(all(op[a] < max(s[a], d[a]) for a in range(2)))
    dx = numpy_ref.conv2d_backward(cfg["x"], cfg["w"], gy, **_kw(cfg)).dx
    yt = numpy_ref.conv_transpose2d(gy, cfg["w"], stride=s, padding=p, output_padding=op,
                                    dilation=d, groups=cfg["groups"])
    np.testing.assert_allclose(dx, yt, atol=1e-9)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 10), k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
       d=st.integers(1, 2))
def test_output_size_formulas_match_torch(n, k, s, p, d):
    out = conv_output_size(n, k, s, 2 * p, d)
    assume(out >= 1)
    x = np.zeros((1, n, n))
    w = np.zeros((1, 1, k, k))
    assert tref.conv2d(x, w, stride=s, padding=p, dilation=d).shape == (1, out, out)
    op = 0 if s == 1 and d == 1 else min(s, d) - 1 if s > 1 and d > 1 else max(s, d) - 1
    t_out = conv_transpose_output_size(n, k, s, p, op, d)
    if t_out >= 1:
        y = tref.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op, dilation=d)
        assert y.shape == (1, t_out, t_out)


@pytest.mark.parametrize("k,d", [(1, 1), (2, 1), (3, 1), (4, 1), (2, 2), (3, 2), (2, 3), (4, 3)])
def test_same_padding_matches_torch_even_kernels(k, d):
    x = np.arange(36.0).reshape(1, 6, 6)
    w = np.arange(1.0, k * k + 1).reshape(1, 1, k, k)
    (pt, pb), (pl, pr) = resolve_padding("same", k, d, 1)
    assert pt + pb == d * (k - 1) and pb - pt in (0, 1) and (pt, pb) == (pl, pr)
    y = numpy_ref.conv2d(x, w, padding="same", dilation=d)
    assert y.shape == (1, 6, 6)
    np.testing.assert_array_equal(y, tref.conv2d(x, w, padding="same", dilation=d))
    np.testing.assert_array_equal(y, loops.conv2d(x, w, padding="same", dilation=d))


def test_same_padding_rejects_stride():
    with pytest.raises(ValueError):
        resolve_padding("same", 3, 1, 2)
    with pytest.raises(ValueError):
        numpy_ref.conv2d(np.zeros((1, 4, 4)), np.zeros((1, 1, 3, 3)), stride=2, padding="same")


def test_d2l_corr2d_example():
    x = np.arange(9.0).reshape(1, 3, 3)
    k = np.array([[[[0.0, 1.0], [2.0, 3.0]]]])
    expected = np.array([[[19.0, 25.0], [37.0, 43.0]]])
    for mod in (loops, numpy_ref, tref):
        np.testing.assert_array_equal(mod.conv2d(x, k), expected)


# ------------------------------------------------------------------ conv as a matrix
W = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # w11..w33 = 1..9


def _w(r, c):
    return W[0, 0, r - 1, c - 1]


def test_conv_matrix_course_example():
    m = numpy_ref.conv_matrix((1, 4, 4), W)
    assert m.shape == (4, 16)
    # expected W.T (16 x 4): row x_rc lists the weight multiplying x_rc for a, b, c, d
    # (outputs a=(1,1), b=(1,2), c=(2,1), d=(2,2)).
    expected = np.zeros((16, 4))
    for r in range(1, 5):
        for c in range(1, 5):
            for o, (orow, ocol) in enumerate([(1, 1), (1, 2), (2, 1), (2, 2)]):
                p, q = r - orow + 1, c - ocol + 1
                if 1 <= p <= 3 and 1 <= q <= 3:
                    expected[(r - 1) * 4 + (c - 1), o] = _w(p, q)
    np.testing.assert_array_equal(m.T, expected)
    mt = m.T
    np.testing.assert_array_equal(mt[0], [_w(1, 1), 0, 0, 0])  # x11
    np.testing.assert_array_equal(mt[5], [_w(2, 2), _w(2, 1), _w(1, 2), _w(1, 1)])  # x22
    np.testing.assert_array_equal(mt[15], [0, 0, 0, _w(3, 3)])  # x44
    np.testing.assert_array_equal(mt[3], [0, _w(1, 3), 0, 0])  # x14
    np.testing.assert_array_equal(m, loops.conv_matrix((1, 4, 4), W))


def test_conv_weight_gradient_course_example():
    # "symbolic-like" distinct numbers: x_rc = 10*r + c, dL/da.. = 1000, 2000, 3000, 4000
    x = np.array([[10.0 * r + c for c in range(1, 5)] for r in range(1, 5)])[None]
    ga, gb, gc, gd = 1000.0, 2000.0, 3000.0, 4000.0
    gy = np.array([[[ga, gb], [gc, gd]]])
    g = numpy_ref.conv2d_backward(x, W, gy)

    def xx(r, c):
        return x[0, r - 1, c - 1]

    dw = g.dw[0, 0]
    assert dw[0, 0] == ga * xx(1, 1) + gb * xx(1, 2) + gc * xx(2, 1) + gd * xx(2, 2)  # dL/dw11
    assert dw[0, 1] == ga * xx(1, 2) + gb * xx(1, 3) + gc * xx(2, 2) + gd * xx(2, 3)  # dL/dw12
    assert dw[1, 0] == ga * xx(2, 1) + gb * xx(2, 2) + gc * xx(3, 1) + gd * xx(3, 2)  # dL/dw21
    assert dw[1, 1] == ga * xx(2, 2) + gb * xx(2, 3) + gc * xx(3, 2) + gd * xx(3, 3)  # dL/dw22
    np.testing.assert_array_equal(g.dw, tref.conv2d_backward(x, W, gy).dw)
    # dL/dx22 = dL/da*w22 + dL/db*w21 + dL/dc*w12 + dL/dd*w11 (row x22 of W.T)
    assert g.dx[0, 1, 1] == ga * _w(2, 2) + gb * _w(2, 1) + gc * _w(1, 2) + gd * _w(1, 1)
    assert g.db[0] == ga + gb + gc + gd


def test_d2l_output_shapes():
    x = np.zeros((1, 8, 8))
    assert numpy_ref.conv2d(x, np.zeros((1, 1, 3, 3)), padding=1).shape == (1, 8, 8)
    assert numpy_ref.conv2d(x, np.zeros((1, 1, 3, 3)), padding=1, stride=2).shape == (1, 4, 4)
    y = numpy_ref.conv2d(x, np.zeros((1, 1, 3, 5)), padding=(0, 1), stride=(3, 4))
    assert y.shape == (1, 2, 2)


def test_errors():
    with pytest.raises(ValueError):
        numpy_ref.conv2d(np.zeros((2, 4, 4)), np.zeros((1, 1, 3, 3)))  # channels
    with pytest.raises(ValueError):
        numpy_ref.conv2d(np.zeros((1, 2, 2)), np.zeros((1, 1, 3, 3)))  # empty output
    with pytest.raises(ValueError):
        numpy_ref.conv_transpose2d(np.zeros((1, 2, 2)), np.zeros((1, 1, 3, 3)), stride=2,
                                   output_padding=2)
