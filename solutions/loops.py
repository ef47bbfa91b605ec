"""Plain-loop, "obviously right" versions of the layers (in the spirit of d2l's ``corr2d``).

Slow; used only as ground truth in the tests.  Same conventions and signatures as
:mod:`convpset.solutions.numpy_ref`: one sample ``x`` of shape ``(C_in, H, W)``, conv weights
``(C_out, C_in // groups, kh, kw)``, transposed-conv weights ``(C_in, C_out // groups,
kh, kw)``, float64 outputs.
"""

from __future__ import annotations

import numpy as np

from ._params import (
    check_pool_padding,
    conv_output_size,
    conv_transpose_output_size,
    pair,
    pool_output_size,
    resolve_padding,
)

__all__ = ["avgpool2d", "conv2d", "conv_matrix", "conv_transpose2d", "maxpool2d"]


def _conv_geometry(input_shape, w, stride, padding, dilation, groups):
    c_in, h, wd = (int(v) for v in input_shape)
    c_out, cpg, kh, kw = w.shape
    if groups < 1 or c_out % groups or cpg * groups != c_in:
        raise ValueError(f"groups={groups} incompatible with C_in={c_in}, weight {w.shape}")
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    (pt, pb), (pl, pr) = resolve_padding(padding, (kh, kw), (dh, dw), (sh, sw))
    ho = conv_output_size(h, kh, sh, pt + pb, dh)
    wo = conv_output_size(wd, kw, sw, pl + pr, dw)
    if ho < 1 or wo < 1:
        raise ValueError(f"empty output {ho}x{wo}")
    return c_in, h, wd, c_out, cpg, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    c_in, h, wd, c_out, cpg, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo = _conv_geometry(
        x.shape, w, stride, padding, dilation, groups
    )
    out_per_group = c_out // groups
    y = np.zeros((c_out, ho, wo))
    for o in range(c_out):
        g = o // out_per_group
        for i in range(ho):
            for j in range(wo):
                total = 0.0 if b is None else float(b[o])
                for c in range(cpg):
                    for p in range(kh):
                        for q in range(kw):
                            r = i * sh - pt + p * dh
                            t = j * sw - pl + q * dw
                            if 0 <= r < h and 0 <= t < wd:  # outside: zero padding
                                total += w[o, c, p, q] * x[g * cpg + c, r, t]
                y[o, i, j] = total
    return y


def conv_transpose2d(
    x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1
) -> np.ndarray:
    """Scatter form: input pixel (i, j) adds ``x[c, i, j] * w[c, o, p, q]`` to output
    position ``(i*s - pad + p*d, j*s - pad + q*d)`` (positions outside are dropped)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    c_in, h, wd = x.shape
    _, opg, kh, kw = w.shape
    if w.shape[0] != c_in or c_in % groups:
        raise ValueError("conv_transpose2d: channel/groups mismatch")
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    ph, pw = pair(padding)
    oph, opw = pair(output_padding)
    ho = conv_transpose_output_size(h, kh, sh, ph, oph, dh)
    wo = conv_transpose_output_size(wd, kw, sw, pw, opw, dw)
    if ho < 1 or wo < 1:
        raise ValueError(f"empty output {ho}x{wo}")
    in_per_group = c_in // groups
    y = np.zeros((opg * groups, ho, wo))
    for c in range(c_in):
        g = c // in_per_group
        for i in range(h):
            for j in range(wd):
                for o in range(opg):
                    for p in range(kh):
                        for q in range(kw):
                            r = i * sh - ph + p * dh
                            t = j * sw - pw + q * dw
                            if 0 <= r < ho and 0 <= t < wo:
                                y[g * opg + o, r, t] += x[c, i, j] * w[c, o, p, q]
    if b is not None:
        for o in range(y.shape[0]):
            y[o] += b[o]
    return y


def _pool_geometry(shape, kernel_size, stride, padding):
    _, h, wd = shape
    kh, kw = pair(kernel_size)
    sh, sw = pair(kernel_size if stride is None else stride)
    ph, pw = check_pool_padding((kh, kw), padding)
    ho = pool_output_size(h, kh, sh, 2 * ph)
    wo = pool_output_size(wd, kw, sw, 2 * pw)
    if ho < 1 or wo < 1:
        raise ValueError(f"empty output {ho}x{wo}")
    return h, wd, kh, kw, sh, sw, ph, pw, ho, wo


def maxpool2d(x, kernel_size, stride=None, padding=0) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    h, wd, kh, kw, sh, sw, ph, pw, ho, wo = _pool_geometry(x.shape, kernel_size, stride, padding)
    y = np.full((x.shape[0], ho, wo), -np.inf)
    for c in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                for p in range(kh):
                    for q in range(kw):
                        r, t = i * sh - ph + p, j * sw - pw + q
                        if 0 <= r < h and 0 <= t < wd:  # padding counts as -inf
                            y[c, i, j] = max(y[c, i, j], x[c, r, t])
    return y


def avgpool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    h, wd, kh, kw, sh, sw, ph, pw, ho, wo = _pool_geometry(x.shape, kernel_size, stride, padding)
    y = np.zeros((x.shape[0], ho, wo))
    for c in range(x.shape[0]):
        for i in range(ho):
            for j in range(wo):
                total, count = 0.0, 0
                for p in range(kh):
                    for q in range(kw):
                        r, t = i * sh - ph + p, j * sw - pw + q
                        if 0 <= r < h and 0 <= t < wd:
                            total += x[c, r, t]
                            count += 1
                y[c, i, j] = total / (kh * kw if count_include_pad else count)
    return y


def conv_matrix(input_shape, w, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """One row per output position ``(o, i, j)``: the kernel weights placed at the input
    pixels that window reads (C-order flattening on both sides)."""
    w = np.asarray(w, dtype=np.float64)
    c_in, h, wd, c_out, cpg, kh, kw, sh, sw, dh, dw, pt, pl, ho, wo = _conv_geometry(
        input_shape, w, stride, padding, dilation, groups
    )
    out_per_group = c_out // groups
    m = np.zeros((c_out * ho * wo, c_in * h * wd))
    for o in range(c_out):
        g = o // out_per_group
        for i in range(ho):
            for j in range(wo):
                row = (o * ho + i) * wo + j
                for c in range(cpg):
                    for p in range(kh):
                        for q in range(kw):
                            r = i * sh - pt + p * dh
                            t = j * sw - pl + q * dw
                            if 0 <= r < h and 0 <= t < wd:
                                m[row, ((g * cpg + c) * h + r) * wd + t] = w[o, c, p, q]
    return m
