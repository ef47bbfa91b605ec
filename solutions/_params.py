"""Small shared helpers: size normalisation and output-size formulas.

Only numpy and the standard library (no torch), so it can be imported cheaply
from every other module of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]  # ((top, bottom), (left, right))


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def pair(v: Any) -> Pair:
    """Return ``(v, v)`` for an int, ``(a, b)`` for a pair of ints (as torch's ``_pair``)."""
    if _is_int(v):
        return (int(v), int(v))
    if isinstance(v, list | tuple) and len(v) == 2 and all(_is_int(e) for e in v):
        return (int(v[0]), int(v[1]))
    raise ValueError(f"expected an int or a pair of ints, got {v!r}")


def resolve_padding(padding: Any, kernel_size: Any, dilation: Any = 1, stride: Any = 1) -> Padding:
    """Turn a torch-style ``padding`` argument into ``((top, bottom), (left, right))``.

    * int / pair: symmetric padding ``p`` on both sides of each axis;
    * ``"valid"``: no padding;
    * ``"same"``: (stride 1 only, as torch) total padding ``d*(k-1)`` per axis, of which
      ``total // 2`` goes to the top/left and the rest (the extra row/column for an
      odd total, i.e. an even effective kernel) to the bottom/right — exactly what
      ``torch.nn.functional.conv2d(..., padding="same")`` does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if pair(stride) != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            out = []
            for k, d in zip(pair(kernel_size), pair(dilation), strict=True):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return (out[0], out[1])
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = pair(padding)
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return ((ph, ph), (pw, pw))


def conv_output_size(n: int, k: int, stride: int, pad_total: int, dilation: int = 1) -> int:
    """``floor((n + pad_total - dilation*(k-1) - 1) / stride) + 1`` (may be < 1: empty output)."""
    return (n + pad_total - dilation * (k - 1) - 1) // stride + 1


def pool_output_size(
    n: int, k: int, stride: int, pad_total: int, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """torch's ``pooling_output_shape`` with ``pad_total = 2 * pad``.

    With ``ceil_mode`` the division rounds up, and the last window is dropped if it
    would start beyond the input plus the left padding.
    """
    pad_l = pad_total // 2
    num = n + pad_total - dilation * (k - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= n + pad_l:
        out -= 1
    return out


def conv_transpose_output_size(
    n: int, k: int, stride: int, pad_per_side: int, output_padding: int = 0, dilation: int = 1
) -> int:
    """``(n-1)*s - 2p + d*(k-1) + output_padding + 1``."""
    return (n - 1) * stride - 2 * pad_per_side + dilation * (k - 1) + output_padding + 1


def check_pool_padding(kernel_size: Any, padding: Any) -> Pair:
    """torch's rule: pooling padding must be at most half the kernel (``p <= k // 2``)."""
    kh, kw = pair(kernel_size)
    ph, pw = pair(padding)
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"pool padding must be at most half of the kernel size, got padding {(ph, pw)} "
            f"for kernel {(kh, kw)}"
        )
    return (ph, pw)


def check_positive(name: str, v: Pair) -> Pair:
    if v[0] < 1 or v[1] < 1:
        raise ValueError(f"{name} must be positive, got {v}")
    return v


@dataclass(frozen=True)
class ConvGrads:
    """Gradients of a scalar loss through ``y = conv2d(x, w, b)``."""

    dx: np.ndarray
    dw: np.ndarray
    db: np.ndarray
