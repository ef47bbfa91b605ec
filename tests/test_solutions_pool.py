"""Pooling: loops == numpy_ref == torch_ref, forward and backward, incl. the tie rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convpset.solutions import loops, numpy_ref
from convpset.solutions import torch_ref as tref
from convpset.solutions._params import pair, pool_output_size

SETTINGS = settings(max_examples=80, deadline=None)
SMALL_INTS = st.integers(-2, 2)


@st.composite
def pool_configs(draw, values=SMALL_INTS):
    c = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.sampled_from([None, 1, 2, 3, (1, 2), (2, 1)]))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    s = pair(k if stride is None else stride)
    out = tuple(pool_output_size((h, w)[a], k[a], s[a], 2 * padding[a]) for a in range(2))
    assume(min(out) >= 1)
    # few distinct values -> many ties inside windows
    x = np.array(draw(st.lists(values, min_size=c * h * w, max_size=c * h * w)), float)
    gy = np.array(draw(st.lists(st.integers(1, 5), min_size=c * out[0] * out[1],
                                max_size=c * out[0] * out[1])), float)
    return dict(x=x.reshape(c, h, w), gy=gy.reshape(c, *out), kw=dict(
        kernel_size=k, stride=stride, padding=padding), out=(c, *out))


@SETTINGS
@given(pool_configs())
def test_maxpool_forward_three_ways(cfg):
    y = numpy_ref.maxpool2d(cfg["x"], **cfg["kw"])
    assert y.shape == cfg["out"] and y.dtype == np.float64
    np.testing.assert_array_equal(y, loops.maxpool2d(cfg["x"], **cfg["kw"]))
    np.testing.assert_array_equal(y, tref.maxpool2d(cfg["x"], **cfg["kw"]))


@SETTINGS
@given(pool_configs())
def test_maxpool_backward_matches_torch_including_ties(cfg):
    dx = numpy_ref.maxpool2d_backward(cfg["x"], cfg["gy"], **cfg["kw"])
    np.testing.assert_array_equal(dx, tref.maxpool2d_backward(cfg["x"], cfg["gy"], **cfg["kw"]))
    assert dx.sum() == cfg["gy"].sum()  # every output's gradient lands somewhere


@settings(max_examples=30, deadline=None)
@given(pool_configs(values=st.sampled_from([-np.inf, 0.0])))
def test_maxpool_backward_all_minus_inf_windows(cfg):
    # windows full of -inf: torch picks the first real pixel, never the padding
    dx = numpy_ref.maxpool2d_backward(cfg["x"], cfg["gy"], **cfg["kw"])
    np.testing.assert_array_equal(dx, tref.maxpool2d_backward(cfg["x"], cfg["gy"], **cfg["kw"]))


@SETTINGS
@given(pool_configs(), st.booleans())
def test_avgpool_forward_backward_three_ways(cfg, cip):
    kw = dict(cfg["kw"], count_include_pad=cip)
    y = numpy_ref.avgpool2d(cfg["x"], **kw)
    assert y.shape == cfg["out"]
    np.testing.assert_allclose(y, loops.avgpool2d(cfg["x"], **kw), atol=1e-12)
    np.testing.assert_allclose(y, tref.avgpool2d(cfg["x"], **kw), atol=1e-12)
    dx = numpy_ref.avgpool2d_backward(cfg["x"].shape, cfg["gy"], **kw)
    np.testing.assert_allclose(dx, tref.avgpool2d_backward(cfg["x"].shape, cfg["gy"], **kw),
                               atol=1e-12)


def test_tie_rule_first_maximum_row_major():
    """torch CPU sends the gradient to the first maximum of the window (row-major)."""
    x = np.ones((1, 3, 3))
    dx = numpy_ref.maxpool2d_backward(x, np.ones((1, 2, 2)), 2, stride=1)
    expected = np.array([[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    np.testing.assert_array_equal(dx, expected)
    xt = torch.ones(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    F.max_pool2d(xt, 2, 1).sum().backward()
    np.testing.assert_array_equal(xt.grad[0].numpy(), expected)
    # a tie between (0,1) and (1,0) inside one 2x2 window: (0,1) comes first
    x = np.array([[[0.0, 5.0], [5.0, 1.0]]])
    np.testing.assert_array_equal(
        numpy_ref.maxpool2d_backward(x, np.array([[[1.0]]]), 2), [[[0.0, 1.0], [0.0, 0.0]]]
    )


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 10), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
       ceil=st.booleans(), data=st.data())
def test_pool_output_size_matches_torch(n, k, s, d, ceil, data):
    p = data.draw(st.integers(0, k // 2))
    out = pool_output_size(n, k, s, 2 * p, d, ceil)
    x = torch.zeros(1, 1, n, n)
    try:
        y = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil)
    except RuntimeError:
        assert out < 1
        return
    assert out >= 1 and y.shape[-1] == out
    if d == 1:
        assert F.avg_pool2d(x, k, s, p, ceil_mode=ceil).shape[-1] == out


def test_course_maxpool_examples():
    x = np.arange(16.0).reshape(1, 4, 4)
    for mod in (loops, numpy_ref, tref):
        np.testing.assert_array_equal(mod.maxpool2d(x, 3, stride=2, padding=1), [[[5, 7], [13, 15]]])
        np.testing.assert_array_equal(
            mod.maxpool2d(x + 1, 3, stride=2, padding=1), [[[6, 8], [14, 16]]]
        )
        x3 = np.arange(9.0).reshape(1, 3, 3)
        np.testing.assert_array_equal(mod.maxpool2d(x3, 2, stride=1), [[[4, 5], [7, 8]]])


def test_overlapping_windows_add_up():
    x = np.array([[[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]]])
    dx = numpy_ref.maxpool2d_backward(x, np.array([[[1.0, 2.0], [3.0, 4.0]]]), 2, stride=1)
    assert dx[0, 1, 1] == 10.0 and dx.sum() == 10.0


def test_pool_padding_rule():
    with pytest.raises(ValueError):
        numpy_ref.maxpool2d(np.zeros((1, 5, 5)), 3, padding=2)
    with pytest.raises(ValueError):
        loops.avgpool2d(np.zeros((1, 5, 5)), 2, padding=(0, 2))
