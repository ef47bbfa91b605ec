"""Network arithmetic: output shapes, parameter counts, MACs and receptive fields.

A network is described by a JSON-like dict, e.g.::

    {"input": [1, 28, 28],
     "layers": [{"type": "conv2d", "out_channels": 6, "kernel_size": 5},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "linear", "out_features": 10}]}

Layer keys and defaults follow the torch.nn constructors (``in_channels`` /
``in_features`` are implied by the previous layer and are not accepted):

=================  =========================================================================
conv2d             out_channels, kernel_size, stride=1, padding=0 (int, pair, "same",
                   "valid"), dilation=1, groups=1, bias=True
conv_transpose2d   out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                   groups=1, bias=True, dilation=1
separable_conv2d   Keras ``SeparableConv2D``: out_channels, kernel_size, stride=1,
                   padding=0, dilation=1, depth_multiplier=1, bias=True — a depthwise conv
                   (groups=C_in, C_in*depth_multiplier channels, no bias) followed by a
                   pointwise 1×1 conv with the bias
maxpool2d          kernel_size, stride=None (= kernel_size), padding=0, dilation=1,
                   ceil_mode=False
avgpool2d          kernel_size, stride=None, padding=0, ceil_mode=False,
                   count_include_pad=True
flatten            —
linear             out_features, bias=True (needs a 1-D input: after flatten or
                   ``"input": [N]``)
batchnorm2d        affine=True, track_running_stats=True (``num_features`` is implied by
                   the previous layer): 2·C trainable parameters (weight γ and bias β,
                   when affine) and 2·C + 1 buffer numbers (running_mean, running_var and
                   the one-number ``num_batches_tracked``, when tracking); shape unchanged,
                   no MACs counted
relu, softmax      — (no parameters, shape unchanged; softmax over the last axis)
=================  =========================================================================

:func:`analyze` uses closed-form formulas, :func:`analyze_torch` builds the torch.nn
model (torch is imported lazily, only there).  Parameters are counted as torch's
``sum(p.numel() for p in model.parameters())``, buffers (not trained, but saved in the
``state_dict``) as ``sum(b.numel() for b in model.buffers())``.  A network whose spatial size drops
below 1 "collapses": the result is ``valid=False`` with the 1-based layer index and a
one-line reason; this is never an exception.  Invalid specs raise :class:`SpecError`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ._params import (
    _is_int,
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
    resolve_padding,
)

__all__ = [
    "LayerResult",
    "LayerSpec",
    "NetworkResult",
    "NetworkSpec",
    "SpecError",
    "analyze",
    "analyze_torch",
    "parse_spec",
    "to_json",
]


# ============================================================================ spec
class SpecError(ValueError):
    """Invalid network spec; ``field`` is a path such as ``"layers[2].kernel_size"``
    (0-based index into the ``layers`` list)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


Size = tuple[int, int]


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer; sizes are normalised to pairs (``stride`` of pools resolved)."""

    type: str
    out_channels: int | None = None
    out_features: int | None = None
    kernel_size: Size | None = None
    stride: Size = (1, 1)
    padding: Size | str = (0, 0)
    output_padding: Size = (0, 0)
    dilation: Size = (1, 1)
    groups: int = 1
    depth_multiplier: int = 1
    bias: bool = True
    ceil_mode: bool = False
    count_include_pad: bool = True
    affine: bool = True
    track_running_stats: bool = True


@dataclass(frozen=True)
class NetworkSpec:
    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]


_REQUIRED = {
    "conv2d": ("out_channels", "kernel_size"),
    "conv_transpose2d": ("out_channels", "kernel_size"),
    "separable_conv2d": ("out_channels", "kernel_size"),
    "maxpool2d": ("kernel_size",),
    "avgpool2d": ("kernel_size",),
    "flatten": (),
    "linear": ("out_features",),
    "relu": (),
    "softmax": (),
    "batchnorm2d": (),
}
_OPTIONAL = {
    "conv2d": ("stride", "padding", "dilation", "groups", "bias"),
    "conv_transpose2d": ("stride", "padding", "output_padding", "groups", "bias", "dilation"),
    "separable_conv2d": ("stride", "padding", "dilation", "depth_multiplier", "bias"),
    "maxpool2d": ("stride", "padding", "dilation", "ceil_mode"),
    "avgpool2d": ("stride", "padding", "ceil_mode", "count_include_pad"),
    "flatten": (),
    "linear": ("bias",),
    "relu": (),
    "softmax": (),
    "batchnorm2d": ("affine", "track_running_stats"),
}
_SPATIAL = {"conv2d", "conv_transpose2d", "separable_conv2d", "maxpool2d", "avgpool2d",
            "batchnorm2d"}
LAYER_TYPES = tuple(_REQUIRED)


def _pos_int(v: Any, field: str, what: str = "a positive int") -> int:
    if not _is_int(v) or v < 1:
        raise SpecError(field, f"expected {what}, got {v!r}")
    return int(v)


def _size(v: Any, field: str, minimum: int = 1) -> Size:
    what = "a positive int or a pair of positive ints" if minimum == 1 else (
        "a non-negative int or a pair of non-negative ints"
    )
    if _is_int(v):
        v = (v, v)
    if (
        not isinstance(v, list | tuple)
        or len(v) != 2
        or not all(_is_int(e) and e >= minimum for e in v)
    ):
        raise SpecError(field, f"expected {what}, got {v!r}")
    return (int(v[0]), int(v[1]))


def _bool(v: Any, field: str) -> bool:
    if not isinstance(v, bool):
        raise SpecError(field, f"expected true or false, got {v!r}")
    return v


def _fmt(p: Size) -> str:
    return f"{p[0]}×{p[1]}"


def parse_spec(spec: dict | NetworkSpec) -> NetworkSpec:
    """Validate a spec dict and return a :class:`NetworkSpec` (raises :class:`SpecError`).

    Checks: top-level keys (``input``, ``layers``), the input shape ([C, H, W] or [N],
    positive ints), each layer's ``type`` and keys (unknown or missing), sizes (positive;
    padding non-negative, pooling padding at most half the kernel as torch requires),
    ``padding="same"`` only with stride 1, ``output_padding`` smaller than stride or
    dilation, groups dividing the input and output channels, booleans, and that spatial
    layers get a 3-D input and ``linear`` a 1-D one.  Spatial sizes that become too
    small are *not* an error (see :func:`analyze`).
    """
    if isinstance(spec, NetworkSpec):
        return spec
    if not isinstance(spec, dict):
        raise SpecError("spec", f"expected a dict with keys 'input' and 'layers', got {type(spec).__name__}")
    for key in spec:
        if key not in ("input", "layers"):
            raise SpecError(str(key), f"unknown key {key!r}; expected only 'input' and 'layers'")
    for key in ("input", "layers"):
        if key not in spec:
            raise SpecError(key, f"missing required key {key!r}")
    inp = spec["input"]
    if (
        not isinstance(inp, list | tuple)
        or len(inp) not in (1, 3)
        or not all(_is_int(v) and v >= 1 for v in inp)
    ):
        raise SpecError("input", f"expected [C, H, W] or [N] with positive ints, got {inp!r}")
    input_shape = tuple(int(v) for v in inp)
    layers_raw = spec["layers"]
    if not isinstance(layers_raw, list | tuple):
        raise SpecError("layers", f"expected a list of layer dicts, got {type(layers_raw).__name__}")

    channels: int | None = input_shape[0] if len(input_shape) == 3 else None  # None: 1-D
    layers = []
    for i, raw in enumerate(layers_raw):
        where = f"layers[{i}]"
        if not isinstance(raw, dict):
            raise SpecError(where, f"expected a dict with a 'type', got {raw!r}")
        if "type" not in raw:
            raise SpecError(f"{where}.type", "missing required key 'type'")
        typ = raw["type"]
        if typ not in _REQUIRED:
            raise SpecError(
                f"{where}.type", f"unknown layer type {typ!r}; expected one of {', '.join(LAYER_TYPES)}"
            )
        allowed = ("type", *_REQUIRED[typ], *_OPTIONAL[typ])
        for key in raw:
            if key not in allowed:
                raise SpecError(
                    f"{where}.{key}",
                    f"unknown key {key!r} for {typ}; allowed: {', '.join(allowed[1:]) or 'none'}",
                )
        for key in _REQUIRED[typ]:
            if key not in raw:
                raise SpecError(f"{where}.{key}", f"missing required key {key!r} for {typ}")
        if typ in _SPATIAL and channels is None:
            raise SpecError(
                f"{where}.type", f"{typ} needs a 3-D input (C, H, W) but gets a 1-D input"
            )
        if typ == "linear" and channels is not None:
            raise SpecError(
                f"{where}.type",
                "linear needs a 1-D input (add a flatten layer before it) but gets a 3-D input",
            )
        kw: dict[str, Any] = {"type": typ}

        def f(key: str, _where: str = where) -> str:
            return f"{_where}.{key}"

        if "out_channels" in raw:
            kw["out_channels"] = _pos_int(raw["out_channels"], f("out_channels"))
        if "out_features" in raw:
            kw["out_features"] = _pos_int(raw["out_features"], f("out_features"))
        if "kernel_size" in raw:
            kw["kernel_size"] = _size(raw["kernel_size"], f("kernel_size"))
        for key in ("dilation",):
            if key in raw:
                kw[key] = _size(raw[key], f(key))
        if typ in ("maxpool2d", "avgpool2d"):
            stride = raw.get("stride")
            kw["stride"] = kw["kernel_size"] if stride is None else _size(stride, f("stride"))
        elif "stride" in raw:
            kw["stride"] = _size(raw["stride"], f("stride"))
        if "padding" in raw:
            pad = raw["padding"]
            if typ in ("conv2d", "separable_conv2d") and isinstance(pad, str):
                if pad not in ("same", "valid"):
                    raise SpecError(f("padding"), f"expected an int, a pair, 'same' or 'valid', got {pad!r}")
                if pad == "same" and kw.get("stride", (1, 1)) != (1, 1):
                    raise SpecError(
                        f("padding"),
                        f"padding 'same' needs stride 1 (as in torch), got stride {kw['stride']}",
                    )
                kw["padding"] = pad
            else:
                kw["padding"] = _size(pad, f("padding"), minimum=0)
        if typ in ("maxpool2d", "avgpool2d"):
            k, p = kw["kernel_size"], kw.get("padding", (0, 0))
            if p[0] > k[0] // 2 or p[1] > k[1] // 2:
                raise SpecError(
                    f("padding"),
                    f"pooling padding must be at most half the kernel size (kernel {_fmt(k)} "
                    f"allows at most {_fmt((k[0] // 2, k[1] // 2))}), got {_fmt(p)}",
                )
        if "output_padding" in raw:
            op = _size(raw["output_padding"], f("output_padding"), minimum=0)
            s, d = kw.get("stride", (1, 1)), kw.get("dilation", (1, 1))
            if any(op[a] >= s[a] and op[a] >= d[a] for a in range(2)):
                raise SpecError(
                    f("output_padding"),
                    f"output_padding must be smaller than either stride or dilation "
                    f"(stride {_fmt(s)}, dilation {_fmt(d)}), got {_fmt(op)}",
                )
            kw["output_padding"] = op
        if "depth_multiplier" in raw:
            kw["depth_multiplier"] = _pos_int(raw["depth_multiplier"], f("depth_multiplier"))
        for key in ("bias", "ceil_mode", "count_include_pad", "affine", "track_running_stats"):
            if key in raw:
                kw[key] = _bool(raw[key], f(key))
        if "groups" in raw:
            g = _pos_int(raw["groups"], f("groups"))
            if channels % g or kw["out_channels"] % g:
                raise SpecError(
                    f("groups"),
                    f"groups must divide both the input channels ({channels}) and "
                    f"out_channels ({kw['out_channels']}), got {g}",
                )
            kw["groups"] = g
        layer = LayerSpec(**kw)
        layers.append(layer)
        if typ in ("conv2d", "conv_transpose2d", "separable_conv2d"):
            channels = layer.out_channels
        elif typ in ("flatten", "linear"):
            channels = None
    return NetworkSpec(input_shape=input_shape, layers=tuple(layers))


# ============================================================================ results
@dataclass(frozen=True)
class LayerResult:
    """Per-layer numbers.  ``index`` is 1-based.  ``receptive_field`` is the size (h, w)
    in input pixels seen by one output unit and ``jump`` the cumulative stride (distance
    in input pixels between neighbouring output units); both are None from a flatten
    layer on (and for a 1-D input).  After a transposed convolution the jump is
    fractional (reported as a float) and the receptive field is the continuous estimate
    ``rf_in + (k_eff - 1) * jump`` rounded down (exact for ordinary convs and pools).
    ``buffers`` counts the numbers a layer keeps that are not trained (batchnorm2d's
    running statistics); they are not in ``params``."""

    index: int
    type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weights: int
    biases: int
    params: int
    macs: int
    receptive_field: tuple[int, int] | None
    jump: tuple[int | float, int | float] | None
    buffers: int = 0


@dataclass(frozen=True)
class NetworkResult:
    valid: bool
    layers: tuple[LayerResult, ...]
    total_params: int
    collapsed_at: int | None = None
    reason: str | None = None
    total_buffers: int = 0


@dataclass(frozen=True)
class _Closed:
    output_shape: tuple[int, ...]  # spatial sizes may be < 1 (collapse)
    weights: int
    biases: int
    macs: int
    buffers: int = 0


def _pads_total(layer: LayerSpec) -> Size:
    (pt, pb), (pl, pr) = resolve_padding(layer.padding, layer.kernel_size, layer.dilation, layer.stride)
    return (pt + pb, pl + pr)


def _closed_form(layer: LayerSpec, shape: tuple[int, ...]) -> _Closed:
    t = layer.type
    if t in ("relu", "softmax"):
        return _Closed(shape, 0, 0, 0)
    if t == "flatten":
        return _Closed((math.prod(shape),), 0, 0, 0)
    if t == "linear":
        n = shape[0]
        m = layer.out_features
        return _Closed((m,), n * m, m if layer.bias else 0, n * m)
    if t == "batchnorm2d":
        c = shape[0]
        gamma_beta = c if layer.affine else 0
        return _Closed(shape, gamma_beta, gamma_beta, 0,
                       2 * c + 1 if layer.track_running_stats else 0)
    c, h, w = shape
    k, s, d = layer.kernel_size, layer.stride, layer.dilation
    if t == "conv2d":
        pt = _pads_total(layer)
        ho = conv_output_size(h, k[0], s[0], pt[0], d[0])
        wo = conv_output_size(w, k[1], s[1], pt[1], d[1])
        co, g = layer.out_channels, layer.groups
        weights = co * (c // g) * k[0] * k[1]
        return _Closed((co, ho, wo), weights, co if layer.bias else 0, max(ho, 0) * max(wo, 0) * weights)
    if t == "conv_transpose2d":
        p, op = layer.padding, layer.output_padding
        ho = conv_transpose_output_size(h, k[0], s[0], p[0], op[0], d[0])
        wo = conv_transpose_output_size(w, k[1], s[1], p[1], op[1], d[1])
        co, g = layer.out_channels, layer.groups
        weights = c * (co // g) * k[0] * k[1]
        return _Closed((co, ho, wo), weights, co if layer.bias else 0, h * w * weights)
    if t == "separable_conv2d":
        pt = _pads_total(layer)
        ho = conv_output_size(h, k[0], s[0], pt[0], d[0])
        wo = conv_output_size(w, k[1], s[1], pt[1], d[1])
        mid = c * layer.depth_multiplier
        co = layer.out_channels
        dw, pw = mid * k[0] * k[1], mid * co
        n = max(ho, 0) * max(wo, 0)
        return _Closed((co, ho, wo), dw + pw, co if layer.bias else 0, n * (dw + pw))
    if t in ("maxpool2d", "avgpool2d"):
        p = layer.padding
        ho = pool_output_size(h, k[0], s[0], 2 * p[0], d[0], layer.ceil_mode)
        wo = pool_output_size(w, k[1], s[1], 2 * p[1], d[1], layer.ceil_mode)
        return _Closed((c, ho, wo), 0, 0, 0)
    raise AssertionError(t)  # pragma: no cover


def _rf_step(layer: LayerSpec, rf, jump):
    """Receptive field / jump update (Fractions); None stays None."""
    if rf is None or layer.type in ("relu", "softmax", "batchnorm2d"):
        return rf, jump
    if layer.type in ("flatten", "linear"):
        return None, None
    k, s, d = layer.kernel_size, layer.stride, layer.dilation
    keff = tuple(d[a] * (k[a] - 1) + 1 for a in range(2))
    if layer.type == "conv_transpose2d":
        jump = tuple(jump[a] / s[a] for a in range(2))
        rf = tuple(rf[a] + (keff[a] - 1) * jump[a] for a in range(2))
        return rf, jump
    rf = tuple(rf[a] + (keff[a] - 1) * jump[a] for a in range(2))
    jump = tuple(jump[a] * s[a] for a in range(2))
    return rf, jump


def _report_rf(rf):
    return None if rf is None else tuple(int(math.floor(v)) for v in rf)


def _report_jump(jump):
    if jump is None:
        return None
    return tuple(int(v) if Fraction(v).denominator == 1 else float(v) for v in jump)


def _describe(layer: LayerSpec) -> str:
    t = layer.type
    parts = [f"kernel {_fmt(layer.kernel_size)}", f"stride {_fmt(layer.stride)}"]
    if isinstance(layer.padding, str):
        parts.append(f"padding {layer.padding!r}")
    elif layer.padding != (0, 0):
        parts.append(f"padding {_fmt(layer.padding)}")
    if layer.output_padding != (0, 0):
        parts.append(f"output_padding {_fmt(layer.output_padding)}")
    if layer.dilation != (1, 1):
        parts.append(f"dilation {_fmt(layer.dilation)}")
    if layer.ceil_mode:
        parts.append("ceil_mode")
    return f"{t} ({', '.join(parts)})"


def _collapse_reason(layer: LayerSpec, in_shape, out_shape) -> str:
    ho, wo = max(out_shape[1], 0), max(out_shape[2], 0)
    return f"{_describe(layer)} on a {in_shape[1]}×{in_shape[2]} input gives {ho}×{wo}"


def _collapsed(out_shape) -> bool:
    return len(out_shape) == 3 and (out_shape[1] < 1 or out_shape[2] < 1)


def _start_rf(spec: NetworkSpec):
    if len(spec.input_shape) == 3:
        return (Fraction(1), Fraction(1)), (Fraction(1), Fraction(1))
    return None, None


def analyze(spec: dict | NetworkSpec) -> NetworkResult:
    """Shapes, parameters, MACs and receptive fields by closed-form formulas.

    MACs (multiply-adds for one sample, bias additions not counted): conv2d
    ``C_out*H_out*W_out*(C_in/groups)*kh*kw``; conv_transpose2d (input-centred: every
    input pixel times the whole kernel) ``C_in*H_in*W_in*(C_out/groups)*kh*kw``;
    separable_conv2d depthwise + pointwise; linear ``in*out``; 0 for the others.
    """
    net = parse_spec(spec)
    shape = net.input_shape
    rf, jump = _start_rf(net)
    results: list[LayerResult] = []
    for idx, layer in enumerate(net.layers, start=1):
        cf = _closed_form(layer, shape)
        if _collapsed(cf.output_shape):
            return NetworkResult(
                valid=False,
                layers=tuple(results),
                total_params=sum(r.params for r in results),
                total_buffers=sum(r.buffers for r in results),
                collapsed_at=idx,
                reason=_collapse_reason(layer, shape, cf.output_shape),
            )
        rf, jump = _rf_step(layer, rf, jump)
        results.append(
            LayerResult(
                index=idx, type=layer.type, input_shape=shape, output_shape=cf.output_shape,
                weights=cf.weights, biases=cf.biases, params=cf.weights + cf.biases, macs=cf.macs,
                receptive_field=_report_rf(rf), jump=_report_jump(jump), buffers=cf.buffers,
            )
        )
        shape = cf.output_shape
    return NetworkResult(valid=True, layers=tuple(results), total_params=sum(r.params for r in results),
                         total_buffers=sum(r.buffers for r in results))


def _torch_module(layer: LayerSpec, in_shape):
    from torch import nn

    t = layer.type
    if t == "conv2d":
        return nn.Conv2d(
            in_shape[0], layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
            layer.dilation, layer.groups, layer.bias,
        )
    if t == "conv_transpose2d":
        return nn.ConvTranspose2d(
            in_shape[0], layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
            layer.output_padding, layer.groups, layer.bias, layer.dilation,
        )
    if t == "separable_conv2d":
        mid = in_shape[0] * layer.depth_multiplier
        return nn.Sequential(
            nn.Conv2d(
                in_shape[0], mid, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                groups=in_shape[0], bias=False,
            ),
            nn.Conv2d(mid, layer.out_channels, 1, bias=layer.bias),
        )
    if t == "maxpool2d":
        return nn.MaxPool2d(
            layer.kernel_size, layer.stride, layer.padding, layer.dilation, ceil_mode=layer.ceil_mode
        )
    if t == "avgpool2d":
        return nn.AvgPool2d(
            layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad
        )
    if t == "flatten":
        return nn.Flatten()
    if t == "linear":
        return nn.Linear(in_shape[0], layer.out_features, bias=layer.bias)
    if t == "relu":
        return nn.ReLU()
    if t == "softmax":
        return nn.Softmax(dim=-1)
    if t == "batchnorm2d":
        return nn.BatchNorm2d(in_shape[0], affine=layer.affine,
                              track_running_stats=layer.track_running_stats)
    raise AssertionError(t)  # pragma: no cover


def analyze_torch(spec: dict | NetworkSpec) -> NetworkResult:
    """Like :func:`analyze`, but output shapes and parameter counts come from torch.

    The torch.nn model is built layer by layer (separable = depthwise + pointwise
    ``nn.Conv2d``), a zeros tensor of shape ``(1, *input)`` is run through it, and the
    parameters are counted with ``p.numel()`` (``bias`` tensors vs the rest).  The
    collapse layer is the one where torch raises or returns a size < 1.  MACs,
    receptive field and jump are taken from the closed form (given torch's shapes), as
    is the collapse reason text (or torch's message if the closed form sees no collapse).
    """
    import torch

    net = parse_spec(spec)
    rf, jump = _start_rf(net)
    x = torch.zeros((1, *net.input_shape))
    results: list[LayerResult] = []
    for idx, layer in enumerate(net.layers, start=1):
        shape = tuple(x.shape[1:])
        cf = _closed_form(layer, shape)
        module = _torch_module(layer, shape).eval()   # eval: BatchNorm2d on one sample of 1×1
        error = None
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*padding='same'.*")
                y = module(x)
        except (RuntimeError, ValueError) as exc:
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if error is not None or min(y.shape[1:], default=1) < 1:
            if _collapsed(cf.output_shape):
                reason = _collapse_reason(layer, shape, cf.output_shape)
            else:
                reason = f"{_describe_any(layer)}: torch raised: {error}"
            return NetworkResult(
                valid=False,
                layers=tuple(results),
                total_params=sum(r.params for r in results),
                total_buffers=sum(r.buffers for r in results),
                collapsed_at=idx,
                reason=reason,
            )
        weights = biases = 0
        for name, p in module.named_parameters():
            if name.rsplit(".", 1)[-1] == "bias":
                biases += p.numel()
            else:
                weights += p.numel()
        buffers = sum(b.numel() for b in module.buffers())
        rf, jump = _rf_step(layer, rf, jump)
        results.append(
            LayerResult(
                index=idx, type=layer.type, input_shape=shape, output_shape=tuple(y.shape[1:]),
                weights=weights, biases=biases, params=weights + biases, macs=cf.macs,
                receptive_field=_report_rf(rf), jump=_report_jump(jump), buffers=buffers,
            )
        )
        x = y
    return NetworkResult(valid=True, layers=tuple(results), total_params=sum(r.params for r in results),
                         total_buffers=sum(r.buffers for r in results))


def _describe_any(layer: LayerSpec) -> str:
    return _describe(layer) if layer.kernel_size is not None else layer.type


def to_json(result: NetworkResult) -> dict:
    """JSON-ready dict (see the module docstring of the project for the exact form)."""
    layers = [
        {
            "type": r.type,
            "output_shape": list(r.output_shape),
            "params": r.params,
            "weights": r.weights,
            "biases": r.biases,
            "macs": r.macs,
            "receptive_field": None if r.receptive_field is None else list(r.receptive_field),
            "buffers": r.buffers,
        }
        for r in result.layers
    ]
    if result.valid:
        return {"valid": True, "layers": layers, "total_params": result.total_params,
                "total_buffers": result.total_buffers}
    return {
        "valid": False,
        "collapsed_at": result.collapsed_at,
        "reason": result.reason,
        "layers": layers,
    }
