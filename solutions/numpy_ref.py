"""Loop-free numpy reference implementations (``sliding_window_view`` + ``einsum``).

Conventions (the same as :mod:`convpset.solutions.loops` and :mod:`convpset.solutions.torch_ref`):

* one sample, no batch axis: ``x`` has shape ``(C_in, H, W)``;
* ``conv2d`` computes a cross-correlation exactly like ``torch.nn.functional.conv2d``
  with ``w`` of shape ``(C_out, C_in // groups, kh, kw)`` and optional bias ``(C_out,)``;
* ``conv_transpose2d`` takes ``w`` of shape ``(C_in, C_out // groups, kh, kw)`` (torch);
* every public function returns a ``float64`` numpy array.

All the layers are built from one primitive, :func:`_windows`, which returns the view
``V[c, i, j, p, q] = xp[c, i*stride + p*dilation, j*stride + q*dilation]`` of a padded
input.  A correlation is then a single ``einsum`` of those windows with a kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._params import (
    ConvGrads,
    Padding,
    Pair,
    check_pool_padding,
    check_positive,
    conv_output_size,
    conv_transpose_output_size,
    pair,
    pool_output_size,
    resolve_padding,
)

__all__ = [
    "ConvGrads",
    "avgpool2d",
    "avgpool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv_matrix",
    "conv_output_size",
    "conv_transpose2d",
    "conv_transpose_output_size",
    "maxpool2d",
    "maxpool2d_backward",
    "pair",
    "pool_output_size",
    "resolve_padding",
]


# ----------------------------------------------------------------------------- helpers
def _f64(a: Any, ndim: int, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return a


def _check_conv(x_channels: int, w: np.ndarray, groups: int) -> None:
    c_out, cpg = w.shape[:2]
    if groups < 1 or c_out % groups or x_channels != cpg * groups:
        raise ValueError(
            f"groups={groups} is incompatible with {x_channels} input channels and a weight "
            f"of shape {w.shape} (expected C_in = w.shape[1] * groups and C_out % groups == 0)"
        )


def _windows(xp: np.ndarray, out: Pair, k: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """View ``V[c, i, j, p, q] = xp[c, i*stride + p*dilation, j*stride + q*dilation]``.

    Shape ``(C, out_h, out_w, k_h, k_w)``.  Rows/columns of ``xp`` beyond the last
    window are ignored (they are "not covered").
    """
    span = tuple((k[a] - 1) * dilation[a] + 1 for a in range(2))
    need = tuple((out[a] - 1) * stride[a] + span[a] for a in range(2))
    assert need[0] <= xp.shape[1] and need[1] <= xp.shape[2], (need, xp.shape)
    xp = xp[:, : need[0], : need[1]]
    v = sliding_window_view(xp, span, axis=(1, 2))  # (C, ., ., span_h, span_w)
    return v[:, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


def _pad(x: np.ndarray, pads: Padding, value: float = 0.0) -> np.ndarray:
    """Pad the spatial axes (a plain slice assignment: np.pad costs more than the
    convolution itself on hand-sized inputs)."""
    (t, b), (lft, r) = pads
    out = np.full((x.shape[0], x.shape[1] + t + b, x.shape[2] + lft + r), value, dtype=x.dtype)
    out[:, t : t + x.shape[1], lft : lft + x.shape[2]] = x
    return out


def _out_size(x_hw: Pair, k: Pair, stride: Pair, pads: Padding, dilation: Pair) -> Pair:
    ho = conv_output_size(x_hw[0], k[0], stride[0], sum(pads[0]), dilation[0])
    wo = conv_output_size(x_hw[1], k[1], stride[1], sum(pads[1]), dilation[1])
    if ho < 1 or wo < 1:
        raise ValueError(
            f"input {x_hw[0]}x{x_hw[1]} with padding {pads} is too small for kernel {k} "
            f"with dilation {dilation}: output would be {ho}x{wo}"
        )
    return (ho, wo)


def _correlate(xp: np.ndarray, w: np.ndarray, out: Pair, stride: Pair, dilation: Pair, groups: int):
    """Grouped correlation of an already padded input with ``w`` (C_out, C_in/g, kh, kw)."""
    c_in = xp.shape[0]
    c_out, cpg, kh, kw = w.shape
    win = _windows(xp, out, (kh, kw), stride, dilation).reshape(groups, cpg, *out, kh, kw)
    wg = w.reshape(groups, c_out // groups, cpg, kh, kw)
    y = np.einsum("gcijpq,gocpq->goij", win, wg, optimize=False)
    assert c_in == cpg * groups
    return y.reshape(c_out, *out)


def _input_grad(
    gy: np.ndarray, w: np.ndarray, in_hw: Pair, stride: Pair, pads: Padding, dilation: Pair,
    groups: int,
) -> np.ndarray:
    """dL/dx of ``y = conv2d(x, w)`` for ``x`` of spatial size ``in_hw`` given ``gy = dL/dy``.

    Full convolution of the stride-dilated ``gy`` with the 180°-rotated kernel (in/out
    channel roles swapped, per group), then crop the padding; input rows/columns that
    no window covered get gradient 0.
    """
    c_out, cpg, kh, kw = w.shape
    c_in = cpg * groups
    ho, wo = gy.shape[1:]
    s, d = stride, dilation
    # 1. insert stride-1 zeros between the entries of gy
    gd = np.zeros((c_out, (ho - 1) * s[0] + 1, (wo - 1) * s[1] + 1))
    gd[:, :: s[0], :: s[1]] = gy
    # 2. rotate the kernel by 180° and swap in/out channels inside each group
    wr = (
        w.reshape(groups, c_out // groups, cpg, kh, kw)
        .transpose(0, 2, 1, 3, 4)
        .reshape(c_in, c_out // groups, kh, kw)[:, :, ::-1, ::-1]
    )
    # 3. "full" correlation: pad by d*(k-1) on every side, stride 1, dilation d
    full_pad = ((d[0] * (kh - 1),) * 2, (d[1] * (kw - 1),) * 2)
    span = (gd.shape[1] + d[0] * (kh - 1), gd.shape[2] + d[1] * (kw - 1))
    dxp = _correlate(_pad(gd, full_pad), wr, span, (1, 1), d, groups)
    # 4. rows/columns of the padded input not covered by any window: gradient 0
    hp = in_hw[0] + sum(pads[0])
    wp = in_hw[1] + sum(pads[1])
    dxp = _pad(dxp, ((0, hp - span[0]), (0, wp - span[1])))
    # 5. crop the padding
    (pt, _), (pl, _) = pads
    return dxp[:, pt : pt + in_hw[0], pl : pl + in_hw[1]]


# ----------------------------------------------------------------------------- forward
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """Cross-correlation exactly as ``torch.nn.functional.conv2d`` for one sample."""
    x = _f64(x, 3, "x")
    w = _f64(w, 4, "w")
    _check_conv(x.shape[0], w, groups)
    s = check_positive("stride", pair(stride))
    d = check_positive("dilation", pair(dilation))
    k = (w.shape[2], w.shape[3])
    pads = resolve_padding(padding, k, d, s)
    out = _out_size(x.shape[1:], k, s, pads, d)
    y = _correlate(_pad(x, pads), w, out, s, d, groups)
    if b is not None:
        y = y + np.asarray(b, dtype=np.float64).reshape(-1, 1, 1)
    return y


def conv_transpose2d(
    x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1
) -> np.ndarray:
    """``torch.nn.functional.conv_transpose2d`` for one sample.

    ``w`` has shape ``(C_in, C_out // groups, kh, kw)``.  The transposed convolution is
    the gradient (w.r.t. its input) of ``conv2d(·, w, stride, padding, dilation, groups)``
    evaluated at ``grad_y = x``; ``output_padding`` adds rows/columns at the bottom/right
    that no window of that convolution covers.
    """
    x = _f64(x, 3, "x")
    w = _f64(w, 4, "w")
    if x.shape[0] != w.shape[0] or groups < 1 or w.shape[0] % groups:
        raise ValueError(
            f"conv_transpose2d: x has {x.shape[0]} channels, weight shape {w.shape}, groups={groups}"
        )
    s = check_positive("stride", pair(stride))
    d = check_positive("dilation", pair(dilation))
    p = pair(padding)
    op = pair(output_padding)
    for a in range(2):
        if p[a] < 0 or op[a] < 0 or not (op[a] < s[a] or op[a] < d[a]):
            raise ValueError(
                f"output_padding {op} must be smaller than either stride {s} or dilation {d}"
                f" (padding {p} must be >= 0)"
            )
    k = (w.shape[2], w.shape[3])
    out = tuple(
        conv_transpose_output_size(x.shape[1 + a], k[a], s[a], p[a], op[a], d[a]) for a in range(2)
    )
    if out[0] < 1 or out[1] < 1:
        raise ValueError(f"conv_transpose2d output would be {out[0]}x{out[1]}")
    y = _input_grad(x, w, out, s, ((p[0], p[0]), (p[1], p[1])), d, groups)
    if b is not None:
        y = y + np.asarray(b, dtype=np.float64).reshape(-1, 1, 1)
    return np.ascontiguousarray(y)


def _pool_setup(x_hw: Pair, kernel_size, stride, padding):
    k = check_positive("kernel_size", pair(kernel_size))
    s = check_positive("stride", pair(kernel_size if stride is None else stride))
    p = check_pool_padding(k, padding)
    out = tuple(pool_output_size(x_hw[a], k[a], s[a], 2 * p[a]) for a in range(2))
    if out[0] < 1 or out[1] < 1:
        raise ValueError(f"pooling output would be {out[0]}x{out[1]}")
    pads = ((p[0], p[0]), (p[1], p[1]))
    return k, s, pads, out


def maxpool2d(x, kernel_size, stride=None, padding=0) -> np.ndarray:
    """``torch.nn.functional.max_pool2d`` (padding with -inf; stride defaults to the kernel)."""
    x = _f64(x, 3, "x")
    k, s, pads, out = _pool_setup(x.shape[1:], kernel_size, stride, padding)
    return _windows(_pad(x, pads, -np.inf), out, k, s, (1, 1)).max(axis=(-2, -1))


def _avg_divisor(x_hw, k, s, pads, out, count_include_pad):
    if count_include_pad:
        return float(k[0] * k[1])
    ones = _pad(np.ones((1, *x_hw)), pads)
    return _windows(ones, out, k, s, (1, 1)).sum(axis=(-2, -1))[0]


def avgpool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True) -> np.ndarray:
    """``torch.nn.functional.avg_pool2d`` (zero padding; divisor k*k or the count of real pixels)."""
    x = _f64(x, 3, "x")
    k, s, pads, out = _pool_setup(x.shape[1:], kernel_size, stride, padding)
    total = _windows(_pad(x, pads), out, k, s, (1, 1)).sum(axis=(-2, -1))
    return total / _avg_divisor(x.shape[1:], k, s, pads, out, count_include_pad)


# ----------------------------------------------------------------------------- matrix form
def conv_matrix(input_shape, w, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """Matrix ``M`` of shape ``(C_out*H_out*W_out, C_in*H*W)`` with
    ``conv2d(x, w).ravel() == M @ x.ravel()`` (C order, no bias).

    ``M[(o, i, j), (c, r, t)] = w[o, c - g*C_in/groups, p, q]`` whenever
    ``r = i*s_h - pad_top + p*d_h`` and ``t = j*s_w - pad_left + q*d_w`` for some
    kernel position ``(p, q)`` (``g`` = group of output channel ``o``), else 0.
    ``M.T`` is the row-vector form ``h = x · M.T`` of the course notes.
    """
    w = _f64(w, 4, "w")
    c_in, h, wd = (int(v) for v in input_shape)
    _check_conv(c_in, w, groups)
    c_out, cpg, kh, kw = w.shape
    s = check_positive("stride", pair(stride))
    d = check_positive("dilation", pair(dilation))
    pads = resolve_padding(padding, (kh, kw), d, s)
    ho, wo = _out_size((h, wd), (kh, kw), s, pads, d)
    o, i, j, c, p, q = np.ix_(
        np.arange(c_out), np.arange(ho), np.arange(wo), np.arange(cpg), np.arange(kh), np.arange(kw)
    )
    ci = (o // (c_out // groups)) * cpg + c
    r = i * s[0] - pads[0][0] + p * d[0]
    t = j * s[1] - pads[1][0] + q * d[1]
    valid = (r >= 0) & (r < h) & (t >= 0) & (t < wd)
    rows = (o * ho + i) * wo + j
    cols = (ci * h + r) * wd + t
    vals = w[o, c, p, q]
    rows, cols, vals, valid = np.broadcast_arrays(rows, cols, vals, valid)
    m = np.zeros((c_out * ho * wo, c_in * h * wd))
    m[rows[valid], cols[valid]] = vals[valid]  # each (row, col) pair occurs at most once
    return m


# ----------------------------------------------------------------------------- backward
def conv2d_backward(x, w, grad_y, stride=1, padding=0, dilation=1, groups=1) -> ConvGrads:
    """Gradients of ``L`` through ``y = conv2d(x, w, b, stride, padding, dilation, groups)``
    given ``grad_y = dL/dy``; "the gradient of a correlation is a correlation":

    * ``dw[o, c, p, q] = sum_ij grad_y[o, i, j] * xp[c, i*s + p*d, j*s + q*d]``: the padded
      input ``xp`` correlated with ``grad_y`` as the kernel, that kernel dilated by the
      conv's *stride*, its window moving with the conv's *dilation* as stride
      (stride and dilation swap roles); per group.
    * ``dx = crop_padding( full_conv(dilate_s(grad_y), w) )``: insert ``s-1`` zeros between
      the entries of ``grad_y``, pad by ``d*(k-1)`` on every side and correlate with the
      kernel rotated by 180° (in/out channels swapped within each group) at dilation ``d``;
      input rows/columns not covered by any window (when the stride does not fit) get 0;
      finally crop the padding.  This is ``conv_transpose2d(grad_y, w, ...)``.
    * ``db[o] = sum_ij grad_y[o, i, j]``.
    """
    x = _f64(x, 3, "x")
    w = _f64(w, 4, "w")
    gy = _f64(grad_y, 3, "grad_y")
    _check_conv(x.shape[0], w, groups)
    s = check_positive("stride", pair(stride))
    d = check_positive("dilation", pair(dilation))
    c_out, cpg, kh, kw = w.shape
    pads = resolve_padding(padding, (kh, kw), d, s)
    out = _out_size(x.shape[1:], (kh, kw), s, pads, d)
    if gy.shape != (c_out, *out):
        raise ValueError(f"grad_y must have shape {(c_out, *out)}, got {gy.shape}")
    # dw: correlation of xp with grad_y (stride and dilation swapped)
    win = _windows(_pad(x, pads), (kh, kw), out, d, s)  # (C_in, kh, kw, Ho, Wo)
    win = win.reshape(groups, cpg, kh, kw, *out)
    gyg = gy.reshape(groups, c_out // groups, *out)
    dw = np.einsum("gcpqij,goij->gocpq", win, gyg, optimize=True).reshape(w.shape)
    dx = _input_grad(gy, w, x.shape[1:], s, pads, d, groups)
    return ConvGrads(dx=np.ascontiguousarray(dx), dw=dw, db=gy.sum(axis=(1, 2)))


def maxpool2d_backward(x, grad_y, kernel_size, stride=None, padding=0) -> np.ndarray:
    """Gradient of ``max_pool2d``: each output's gradient goes to its window's maximum.

    Tie rule (as torch CPU): the *first* maximum of the window in row-major order,
    among real (non-padding) pixels.  Overlapping windows add up.  NaN inputs are
    not supported.
    """
    x = _f64(x, 3, "x")
    gy = _f64(grad_y, 3, "grad_y")
    k, s, pads, out = _pool_setup(x.shape[1:], kernel_size, stride, padding)
    if gy.shape != (x.shape[0], *out):
        raise ValueError(f"grad_y must have shape {(x.shape[0], *out)}, got {gy.shape}")
    xw = _windows(_pad(x, pads, -np.inf), out, k, s, (1, 1))
    real = _windows(_pad(np.ones((1, *x.shape[1:]), bool), pads, False), out, k, s, (1, 1))
    is_max = (xw == xw.max(axis=(-2, -1), keepdims=True)) & real
    idx = is_max.reshape(*is_max.shape[:3], -1).argmax(axis=-1)  # first True, row-major
    p, q = np.divmod(idx, k[1])
    c, i, j = np.ix_(np.arange(x.shape[0]), np.arange(out[0]), np.arange(out[1]))
    rows = i * s[0] - pads[0][0] + p
    cols = j * s[1] - pads[1][0] + q
    dx = np.zeros_like(x)
    np.add.at(dx, (np.broadcast_to(c, idx.shape), rows, cols), gy)
    return dx


def avgpool2d_backward(
    input_shape, grad_y, kernel_size, stride=None, padding=0, count_include_pad=True
) -> np.ndarray:
    """Gradient of ``avg_pool2d``: ``grad_y / divisor`` spread uniformly over each window,
    i.e. a transposed depthwise convolution of ``grad_y / divisor`` with a kernel of ones."""
    c, h, wd = (int(v) for v in input_shape)
    gy = _f64(grad_y, 3, "grad_y")
    k, s, pads, out = _pool_setup((h, wd), kernel_size, stride, padding)
    if gy.shape != (c, *out):
        raise ValueError(f"grad_y must have shape {(c, *out)}, got {gy.shape}")
    g = gy / _avg_divisor((h, wd), k, s, pads, out, count_include_pad)
    dx = _input_grad(g, np.ones((c, 1, *k)), (h, wd), s, pads, (1, 1), c)
    return np.ascontiguousarray(dx)
