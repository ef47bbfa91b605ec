"""The same API as :mod:`convpset.solutions.numpy_ref`, computed with torch (float64, CPU).

Forward passes call ``torch.nn.functional``; ``conv_matrix`` is the autograd Jacobian of
the (bias-free) convolution; backward passes use autograd on ``(y * grad_y).sum()``.
Inputs are single samples ``(C, H, W)``; every function returns numpy float64.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ._params import ConvGrads, pair

__all__ = [
    "ConvGrads",
    "avgpool2d",
    "avgpool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv_matrix",
    "conv_transpose2d",
    "maxpool2d",
    "maxpool2d_backward",
]


def _t(a, grad: bool = False) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a, dtype=np.float64)).clone()
    return t.requires_grad_(grad)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _padding(padding):
    return padding if isinstance(padding, str) else pair(padding)


def _conv(*args) -> torch.Tensor:
    # torch warns that padding='same' with an even kernel copies the input; harmless here
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*padding='same'.*")
        return F.conv2d(*args)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    y = _conv(
        _t(x)[None], _t(w), None if b is None else _t(b), pair(stride), _padding(padding),
        pair(dilation), groups,
    )
    return _np(y[0])


def conv_transpose2d(
    x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1
) -> np.ndarray:
    y = F.conv_transpose2d(
        _t(x)[None], _t(w), None if b is None else _t(b), pair(stride), pair(padding),
        pair(output_padding), groups, pair(dilation),
    )
    return _np(y[0])


def maxpool2d(x, kernel_size, stride=None, padding=0) -> np.ndarray:
    s = pair(kernel_size if stride is None else stride)
    return _np(F.max_pool2d(_t(x)[None], pair(kernel_size), s, pair(padding))[0])


def avgpool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True) -> np.ndarray:
    s = pair(kernel_size if stride is None else stride)
    y = F.avg_pool2d(
        _t(x)[None], pair(kernel_size), s, pair(padding), count_include_pad=count_include_pad
    )
    return _np(y[0])


def conv_matrix(input_shape, w, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """Jacobian of ``x.ravel() -> conv2d(x, w).ravel()``: shape (C_out*H_out*W_out, C_in*H*W)."""
    shape = tuple(int(v) for v in input_shape)
    wt = _t(w)

    def f(flat: torch.Tensor) -> torch.Tensor:
        y = _conv(
            flat.reshape(1, *shape), wt, None, pair(stride), _padding(padding), pair(dilation),
            groups,
        )
        return y.reshape(-1)

    jac = torch.autograd.functional.jacobian(f, torch.zeros(int(np.prod(shape)), dtype=torch.float64))
    return _np(jac)


def conv2d_backward(x, w, grad_y, stride=1, padding=0, dilation=1, groups=1) -> ConvGrads:
    xt, wt = _t(x, True), _t(w, True)
    bt = torch.zeros(wt.shape[0], dtype=torch.float64, requires_grad=True)
    y = _conv(xt[None], wt, bt, pair(stride), _padding(padding), pair(dilation), groups)[0]
    (y * _t(grad_y)).sum().backward()
    return ConvGrads(dx=_np(xt.grad), dw=_np(wt.grad), db=_np(bt.grad))


def maxpool2d_backward(x, grad_y, kernel_size, stride=None, padding=0) -> np.ndarray:
    xt = _t(x, True)
    s = pair(kernel_size if stride is None else stride)
    y = F.max_pool2d(xt[None], pair(kernel_size), s, pair(padding))[0]
    (y * _t(grad_y)).sum().backward()
    return _np(xt.grad)


def avgpool2d_backward(
    input_shape, grad_y, kernel_size, stride=None, padding=0, count_include_pad=True
) -> np.ndarray:
    xt = torch.zeros(tuple(int(v) for v in input_shape), dtype=torch.float64, requires_grad=True)
    s = pair(kernel_size if stride is None else stride)
    y = F.avg_pool2d(
        xt[None], pair(kernel_size), s, pair(padding), count_include_pad=count_include_pad
    )[0]
    (y * _t(grad_y)).sum().backward()
    return _np(xt.grad)
