"""Network arithmetic: closed form == torch on random networks, plus the course examples."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convpset.solutions.network import SpecError, analyze, analyze_torch, parse_spec, to_json


def conv(out, k, **kw):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **kw}


LENET = {
    "input": [1, 28, 28],
    "layers": [
        conv(6, 5),
        {"type": "maxpool2d", "kernel_size": 2},
        conv(16, 5),
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "out_features": 120},
        {"type": "relu"},
        {"type": "linear", "out_features": 84},
        {"type": "linear", "out_features": 10},
    ],
}


def _both(spec):
    r, rt = analyze(spec), analyze_torch(spec)
    assert to_json(r) == to_json(rt)
    assert r == rt
    return r


def _shapes(r):
    return [layer.output_shape for layer in r.layers]


# ------------------------------------------------------------------ course examples
@pytest.mark.parametrize("spec", [
    {"input": [784], "layers": [{"type": "linear", "out_features": 1000},
                                {"type": "linear", "out_features": 10}]},
    {"input": [1, 28, 28], "layers": [{"type": "flatten"},
                                      {"type": "linear", "out_features": 1000},
                                      {"type": "linear", "out_features": 10}]},
])
def test_fully_connected_mnist(spec):
    r = _both(spec)
    assert r.valid and r.total_params == 795010
    assert r.layers[-2].params == 785000 and r.layers[-1].params == 10010


def test_lenet():
    r = _both(LENET)
    assert r.valid
    shapes = [s for s, layer in zip(_shapes(r), r.layers, strict=True) if layer.type != "relu"]
    assert shapes == [(6, 24, 24), (6, 12, 12), (16, 8, 8), (16, 4, 4), (256,), (120,), (84,),
                      (10,)]
    assert r.layers[0].params == 156 and r.layers[2].params == 2416 == (5 * 5 * 6 + 1) * 16
    assert sum(layer.params for layer in r.layers[4:]) == 41854
    assert r.total_params == 44426
    assert r.layers[0].receptive_field == (5, 5) and r.layers[3].receptive_field == (16, 16)
    assert r.layers[3].jump == (4, 4) and r.layers[4].receptive_field is None
    assert r.layers[0].macs == 6 * 24 * 24 * 25 and r.layers[5].macs == 256 * 120


@pytest.mark.parametrize("padding", [2, "same"])
def test_lenet_padded(padding):
    spec = copy.deepcopy(LENET)
    spec["layers"][0]["padding"] = padding
    spec["layers"][2]["padding"] = padding
    r = _both(spec)
    assert _shapes(r)[:5] == [(6, 28, 28), (6, 14, 14), (16, 14, 14), (16, 7, 7), (784,)]
    assert sum(layer.params for layer in r.layers[4:]) == 105214
    assert r.total_params == 107786


def test_lenet_strided_collapses():
    spec = copy.deepcopy(LENET)
    spec["layers"][0]["stride"] = 2
    spec["layers"][2]["stride"] = 2
    r = _both(spec)
    assert not r.valid and r.collapsed_at == 4
    assert _shapes(r) == [(6, 12, 12), (6, 6, 6), (16, 1, 1)]
    assert r.reason == "maxpool2d (kernel 2×2, stride 2×2) on a 1×1 input gives 0×0"
    j = to_json(r)
    assert set(j) == {"valid", "collapsed_at", "reason", "layers"}
    assert j["valid"] is False and j["collapsed_at"] == 4 and len(j["layers"]) == 3
    json.dumps(j)


def test_d2l_shapes():
    spec = {"input": [1, 8, 8], "layers": [conv(1, 3, padding=1)]}
    assert _shapes(_both(spec)) == [(1, 8, 8)]
    spec = {"input": [1, 8, 8], "layers": [conv(1, 3, padding=1, stride=2)]}
    assert _shapes(_both(spec)) == [(1, 4, 4)]
    spec = {"input": [1, 8, 8], "layers": [conv(1, [3, 5], padding=[0, 1], stride=[3, 4])]}
    assert _shapes(_both(spec)) == [(1, 2, 2)]


@pytest.mark.parametrize("layer,shape,params", [
    (conv(10, 3), (10, 26, 26), None),
    (conv(1, [2, 3]), (1, 27, 26), None),
    (conv(1, 2, stride=[2, 3]), (1, 14, 9), None),
    (conv(1, 2, padding="same"), (1, 28, 28), None),
    (conv(6, 2, groups=1), (6, 27, 27), 294),
    (conv(6, 2, groups=3), (6, 27, 27), 102),
    (conv(1, 3, dilation=4), (1, 20, 20), None),
    (conv(1, 3, stride=2), (1, 13, 13), None),
    ({"type": "conv_transpose2d", "out_channels": 1, "kernel_size": 3, "stride": 2},
     (1, 57, 57), 12 * 9 + 1),
    ({"type": "conv_transpose2d", "out_channels": 1, "kernel_size": 3, "dilation": 2},
     (1, 32, 32), None),
    ({"type": "separable_conv2d", "out_channels": 6, "kernel_size": 2}, (6, 27, 27),
     48 + 72 + 6),
])
def test_keras_examples(layer, shape, params):
    r = _both({"input": [12, 28, 28], "layers": [layer]})
    assert r.layers[0].output_shape == shape
    if params is not None:
        assert r.layers[0].params == params == r.total_params
    if layer["type"] == "separable_conv2d":
        assert (r.layers[0].weights, r.layers[0].biases) == (48 + 72, 6)


def test_to_json_valid_form():
    j = to_json(analyze(LENET))
    assert set(j) == {"valid", "layers", "total_params", "total_buffers"} and j["valid"] is True
    assert j["layers"][0] == {"type": "conv2d", "output_shape": [6, 24, 24], "params": 156,
                              "weights": 150, "biases": 6, "macs": 86400,
                              "receptive_field": [5, 5], "buffers": 0}
    assert j["total_buffers"] == 0
    assert j["layers"][4]["receptive_field"] is None
    json.dumps(j)


@pytest.mark.parametrize(("extra", "params", "buffers"), [
    ({}, 2 * 12, 2 * 12 + 1),                         # γ, β; running mean, var, num_batches
    ({"affine": False}, 0, 2 * 12 + 1),
    ({"track_running_stats": False}, 2 * 12, 0),
    ({"affine": False, "track_running_stats": False}, 0, 0),
])
def test_batchnorm2d_parameters_and_buffers(extra, params, buffers):
    import torch

    r = _both({"input": [12, 5, 5], "layers": [{"type": "batchnorm2d", **extra}]})
    layer = r.layers[0]
    assert layer.output_shape == (12, 5, 5) and layer.macs == 0
    assert (layer.params, layer.buffers) == (params, buffers) == (r.total_params, r.total_buffers)
    bn = torch.nn.BatchNorm2d(12, **extra)         # the torch count, written out once more
    assert sum(p.numel() for p in bn.parameters()) == params
    assert sum(b.numel() for b in bn.buffers()) == buffers
    assert layer.receptive_field == (1, 1) and layer.jump == (1, 1)


def test_batchnorm2d_after_a_1x1_map_in_torch_is_not_a_collapse():
    # torch refuses BatchNorm2d in training mode on one value per channel; the counts
    # are those of the layer, whatever the mode
    r = _both({"input": [3, 1, 1], "layers": [conv(4, 1), {"type": "batchnorm2d"}]})
    assert r.valid and r.layers[1].params == 8 and r.total_buffers == 9


def test_transposed_conv_collapse_and_fractional_jump():
    spec = {"input": [1, 1, 1], "layers": [{"type": "conv_transpose2d", "out_channels": 1,
                                            "kernel_size": 1, "padding": 1}]}
    r = _both(spec)
    assert not r.valid and r.collapsed_at == 1 and r.layers == ()
    spec = {"input": [1, 4, 4], "layers": [{"type": "conv_transpose2d", "out_channels": 1,
                                            "kernel_size": 2, "stride": 2}]}
    r = _both(spec)
    assert r.layers[0].jump == (0.5, 0.5) and r.layers[0].receptive_field == (1, 1)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("spec,field", [
    ({"input": [1, 8, 8]}, "layers"),
    ({"input": [1, 8], "layers": []}, "input"),
    ({"input": [1, 8, 8], "layers": [], "extra": 1}, "extra"),
    ({"input": [1, 8, 8], "layers": [{"type": "conv3d"}]}, "layers[0].type"),
    ({"input": [1, 8, 8], "layers": [{"kernel_size": 3}]}, "layers[0].type"),
    ({"input": [1, 8, 8], "layers": [conv(2, 3, padd=1)]}, "layers[0].padd"),
    ({"input": [1, 8, 8], "layers": [{"type": "conv2d", "kernel_size": 3}]},
     "layers[0].out_channels"),
    ({"input": [1, 8, 8], "layers": [conv(2, 0)]}, "layers[0].kernel_size"),
    ({"input": [1, 8, 8], "layers": [conv(2, 3), conv(3, [3, -1])]}, "layers[1].kernel_size"),
    ({"input": [4, 8, 8], "layers": [conv(6, 3, groups=4)]}, "layers[0].groups"),
    ({"input": [4, 8, 8], "layers": [conv(6, 3, stride=2, padding="same")]},
     "layers[0].padding"),
    ({"input": [4, 8, 8], "layers": [conv(6, 3, padding="full")]}, "layers[0].padding"),
    ({"input": [4, 8, 8], "layers": [conv(6, 3, bias=1)]}, "layers[0].bias"),
    ({"input": [1, 8, 8], "layers": [{"type": "linear", "out_features": 3}]}, "layers[0].type"),
    ({"input": [1, 8, 8], "layers": [{"type": "flatten"}, conv(1, 1)]}, "layers[1].type"),
    ({"input": [1, 8, 8], "layers": [{"type": "maxpool2d", "kernel_size": 3, "padding": 2}]},
     "layers[0].padding"),
    ({"input": [1, 8, 8], "layers": [{"type": "conv_transpose2d", "out_channels": 1,
                                      "kernel_size": 3, "stride": 2, "output_padding": 2}]},
     "layers[0].output_padding"),
    ({"input": [1, 8, 8], "layers": ["conv2d"]}, "layers[0]"),
    ({"input": [8], "layers": [{"type": "batchnorm2d"}]}, "layers[0].type"),
    ({"input": [2, 8, 8], "layers": [{"type": "batchnorm2d", "num_features": 2}]},
     "layers[0].num_features"),
    ({"input": [2, 8, 8], "layers": [{"type": "batchnorm2d", "affine": "no"}]},
     "layers[0].affine"),
])
def test_spec_errors(spec, field):
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert info.value.field == field
    assert info.value.message and field in str(info.value)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------ random networks
@st.composite
def networks(draw):
    if draw(st.integers(0, 9)) == 0:
        shape = [draw(st.integers(1, 30))]
    else:
        shape = [draw(st.integers(1, 4)), draw(st.integers(1, 14)), draw(st.integers(1, 14))]
    layers = []
    channels = shape[0] if len(shape) == 3 else None
    sizes = st.integers(1, 4) | st.lists(st.integers(1, 4), min_size=2, max_size=2)
    for _ in range(draw(st.integers(1, 6))):
        if channels is None:
            kind = draw(st.sampled_from(["linear", "relu", "softmax", "flatten"]))
        else:
            kind = draw(st.sampled_from(["conv2d", "conv2d", "conv_transpose2d",
                                         "separable_conv2d", "maxpool2d", "avgpool2d", "relu",
                                         "softmax", "flatten", "batchnorm2d"]))
        layer = {"type": kind}
        if kind in ("conv2d", "conv_transpose2d"):
            groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
            layer.update(out_channels=groups * draw(st.integers(1, 2)), kernel_size=draw(sizes))
            if groups > 1 or draw(st.booleans()):
                layer["groups"] = groups
            stride = draw(st.integers(1, 3))
            dilation = draw(st.integers(1, 2))
            if stride > 1:
                layer["stride"] = stride
            if dilation > 1:
                layer["dilation"] = dilation
            if kind == "conv2d":
                pads = [0, 1, 2, [0, 1]] + (["same", "valid"] if stride == 1 else [])
                layer["padding"] = draw(st.sampled_from(pads))
            else:
                layer["padding"] = draw(st.integers(0, 2))
                layer["output_padding"] = draw(st.integers(0, max(stride, dilation) - 1))
            layer["bias"] = draw(st.booleans())
            channels = layer["out_channels"]
        elif kind == "separable_conv2d":
            layer.update(out_channels=draw(st.integers(1, 4)), kernel_size=draw(sizes),
                         depth_multiplier=draw(st.integers(1, 2)), bias=draw(st.booleans()))
            stride = draw(st.integers(1, 2))
            layer["stride"] = stride
            layer["padding"] = draw(st.sampled_from([0, 1] + (["same"] if stride == 1 else [])))
            channels = layer["out_channels"]
        elif kind in ("maxpool2d", "avgpool2d"):
            k = draw(st.integers(1, 4))
            layer.update(kernel_size=k, padding=draw(st.integers(0, k // 2)),
                         ceil_mode=draw(st.booleans()))
            if draw(st.booleans()):
                layer["stride"] = draw(st.integers(1, 3))
            if kind == "maxpool2d" and draw(st.booleans()):
                layer["dilation"] = 2
        elif kind == "batchnorm2d":
            for key in ("affine", "track_running_stats"):
                if draw(st.booleans()):
                    layer[key] = draw(st.booleans())
        elif kind == "flatten":
            channels = None
        elif kind == "linear":
            layer.update(out_features=draw(st.integers(1, 20)), bias=draw(st.booleans()))
        layers.append(layer)
    return {"input": shape, "layers": layers}


@settings(max_examples=120, deadline=None)
@given(networks())
def test_closed_form_matches_torch(spec):
    r, rt = analyze(spec), analyze_torch(spec)
    assert r.valid == rt.valid
    assert r.collapsed_at == rt.collapsed_at
    assert r.reason == rt.reason
    assert _shapes(r) == _shapes(rt)
    assert [(x.weights, x.biases) for x in r.layers] == [(x.weights, x.biases) for x in rt.layers]
    assert r.total_params == rt.total_params
    assert [x.buffers for x in r.layers] == [x.buffers for x in rt.layers]
    assert r.total_buffers == rt.total_buffers
    assert to_json(r) == to_json(rt)
    if not r.valid:
        assert r.collapsed_at == len(r.layers) + 1 and "gives" in r.reason



def test_importing_solutions_does_not_import_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, convpset.solutions, convpset.solutions.numpy_ref, convpset.solutions.loops, convpset.solutions.network; "
        "assert 'torch' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
