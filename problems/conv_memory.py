"""Memory of a training step: activations, what backward keeps, parameters, gradients, peak.

A float32 number takes 4 bytes. The forward pass of a small convolutional network
writes one output per layer; backward needs only some of them. The convention the key
follows is torch's own (checked against ``torch.autograd.graph.saved_tensors_hooks``):

* ``Conv2d`` keeps its input (and its weight: a parameter, counted with the parameters);
* ``ReLU`` keeps its output;
* ``MaxPool2d`` keeps its input and the indices of the maxima (int64: 8 bytes, one per
  output number);
* ``AvgPool2d`` keeps its input;
* a tensor kept by two layers (a ReLU's output is the next layer's input) is stored
  once; the network input counts (the first convolution keeps it).

So a convolution's own output, followed by a ReLU, is freed during the forward pass. The
peak of a training step is counted as parameters + their gradients (one float32 per
parameter) + the optimizer's buffers (SGD with momentum: one per parameter; Adam: two —
its one-number step counters are not counted) + everything backward keeps, as if all of
it were held at once (an upper bound: backward frees saved tensors as it goes).

Level 1: one sample, activations per layer and the parameter memory. Level 2: a batch,
plus the gradient memory and what backward keeps. Level 3: a deeper network trained by
SGD with momentum or Adam: backward's memory, the optimizer's buffers and the peak. The
key is closed form (:func:`account` on :func:`convpset.solutions.network.analyze`); the
oracle (:func:`torch_account`) runs torch: forward hooks for the activations, saved-tensor
hooks for what backward keeps, ``p.grad`` after ``backward()`` and the optimizer's state
after ``step()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family
from convpset.problems.networks import network_table, spec_code
from convpset.problems.render import shape_text
from convpset.problems.text import render
from convpset.solutions import network

NAME = "conv_memory"
FLOAT = 4            # bytes of a float32
INDEX = 8            # bytes of an int64 (max pooling's indices)
BATCHES = (3, 5, 6, 8)   # never 2 or 4: ×N must differ from ×2 (float64) and ÷4 (entries)
OPTIMIZERS = ("sgd_momentum", "adam")
STATE_BUFFERS = {"sgd_momentum": 1, "adam": 2}

#: misconceptions a student's accounting may hold (see :func:`account`)
FLAGS = ("entries_not_bytes", "float64", "batch_forgotten", "batch_in_params", "no_bias",
         "kernel_without_depth", "all_outputs", "double_counted", "forgot_indices",
         "indices_as_float", "forgot_input", "state_count", "peak_no_grads", "peak_no_state",
         "peak_no_saved")

#: the peak's slips, one named mistake: a term of the sum left out (with SGD the gradients
#: and the momentum buffers take the same bytes, so which term is missing cannot be told)
PEAK_TERMS = ("peak_no_grads", "peak_no_state", "peak_no_saved")

#: the parts each level asks, in order
PARTS = {1: ("act_bytes", "param_bytes"),
         2: ("act_bytes", "param_bytes", "grad_bytes", "saved_bytes"),
         3: ("act_bytes", "param_bytes", "saved_bytes", "state_bytes", "peak_bytes")}


def _shapes(spec: Mapping[str, Any]) -> tuple[list[tuple[int, ...]], network.NetworkResult]:
    res = network.analyze(dict(spec))
    return [tuple(spec["input"]), *(tuple(r.output_shape) for r in res.layers)], res


def kept_tensors(layers: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """What each layer keeps for backward, in layer order: ``("out", i)`` is the output of
    layer i (0: the network input), ``("idx", i)`` the max-pooling indices of layer i.
    Parameters are left out (they are counted as parameters)."""
    out: list[tuple[str, int]] = []
    for i, layer in enumerate(layers, start=1):
        t = layer["type"]
        if t in ("conv2d", "avgpool2d"):
            out.append(("out", i - 1))
        elif t == "relu":
            out.append(("out", i))
        elif t == "maxpool2d":
            out += [("out", i - 1), ("idx", i)]
        else:
            raise ValueError(f"layer type {t!r} not modelled")
    return out


def account(spec: Mapping[str, Any], batch: int, optimizer: str | None,
            flags: Iterable[str] = ()) -> dict[str, Any]:
    """Every answer of the family, counted the way a student with the misconceptions in
    ``flags`` would (no flags: the truth). Bytes throughout."""
    f = frozenset(flags)
    unknown = f - set(FLAGS)
    if unknown:
        raise ValueError(f"unknown flags {sorted(unknown)}")
    shapes, res = _shapes(spec)
    n = 1 if "batch_forgotten" in f else int(batch)
    fb = 1 if "entries_not_bytes" in f else (8 if "float64" in f else FLOAT)
    ib = 1 if "entries_not_bytes" in f else (FLOAT if "indices_as_float" in f else INDEX)
    if "float64" in f and "entries_not_bytes" not in f:
        ib = INDEX
    entries = [n * math.prod(s) for s in shapes]
    act = [fb * e for e in entries[1:]]

    params = 0
    for layer, r in zip(spec["layers"], res.layers, strict=True):
        if layer["type"] != "conv2d":
            continue
        k, co, ci = int(layer["kernel_size"]), int(layer["out_channels"]), r.input_shape[0]
        depth = 1 if "kernel_without_depth" in f else ci
        bias = co if layer.get("bias", True) and "no_bias" not in f else 0
        params += co * depth * k * k + bias
    if "batch_in_params" in f:
        params *= int(batch)
    param_bytes = fb * params

    kept = kept_tensors(spec["layers"])
    if "all_outputs" in f:
        kept = [("out", i) for i in range(len(shapes))]
    if "forgot_indices" in f:
        kept = [t for t in kept if t[0] != "idx"]
    if "forgot_input" in f:
        kept = [t for t in kept if t != ("out", 0)]
    if "double_counted" not in f:
        kept = list(dict.fromkeys(kept))
    saved = sum(fb * entries[i] if kind == "out" else ib * entries[i] for kind, i in kept)

    buffers = STATE_BUFFERS.get(optimizer or "", 0)
    if "state_count" in f:
        buffers -= 1                   # Adam taken for one buffer, momentum SGD for none
    state = buffers * param_bytes
    peak = (param_bytes + (0 if "peak_no_grads" in f else param_bytes)
            + (0 if "peak_no_state" in f else state) + (0 if "peak_no_saved" in f else saved))
    return {"act_bytes": np.array(act, dtype=np.int64), "param_bytes": param_bytes,
            "grad_bytes": param_bytes, "saved_bytes": saved, "state_bytes": state,
            "peak_bytes": peak}


# ------------------------------------------------------------------------- torch oracle
def _torch_model(spec: Mapping[str, Any]) -> Any:
    from torch import nn

    mods, c = [], int(spec["input"][0])
    for layer in spec["layers"]:
        t = layer["type"]
        if t == "conv2d":
            mods.append(nn.Conv2d(c, layer["out_channels"], layer["kernel_size"],
                                  padding=layer.get("padding", 0), bias=layer.get("bias", True)))
            c = layer["out_channels"]
        elif t == "relu":
            mods.append(nn.ReLU())
        elif t == "maxpool2d":
            mods.append(nn.MaxPool2d(layer["kernel_size"]))
        elif t == "avgpool2d":
            mods.append(nn.AvgPool2d(layer["kernel_size"]))
        else:
            raise ValueError(f"layer type {t!r} not modelled")
    return nn.Sequential(*mods)


def torch_account(spec: Mapping[str, Any], batch: int, optimizer: str | None) -> dict[str, Any]:
    """The same answers measured in torch: output sizes from forward hooks, what backward
    keeps from ``saved_tensors_hooks`` (one count per storage, parameters left out), the
    gradients after ``backward()`` and the optimizer's per-parameter buffers after
    ``step()``."""
    import torch

    torch.manual_seed(0)
    model = _torch_model(spec)
    acts: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: acts.append(out.nbytes))
             for m in model]
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_ptrs:
            storages[ptr] = max(storages.get(ptr, 0), t.nbytes)
        return t

    x = torch.randn(int(batch), *spec["input"])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = model(x)
    for h in hooks:
        h.remove()
    y.sum().backward()
    params = sum(p.nbytes for p in model.parameters())
    grads = sum(p.grad.nbytes for p in model.parameters())
    state = 0
    if optimizer is not None:
        opt = (torch.optim.Adam(model.parameters()) if optimizer == "adam"
               else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        opt.step()
        for p in model.parameters():      # the per-parameter buffers, not the step counter
            state += sum(s.nbytes for s in opt.state[p].values()
                         if torch.is_tensor(s) and s.shape == p.shape)
    saved = sum(storages.values())
    return {"act_bytes": np.array(acts, dtype=np.int64), "param_bytes": params,
            "grad_bytes": grads, "saved_bytes": saved, "state_bytes": state,
            "peak_bytes": params + grads + state + saved}


# ------------------------------------------------------------------------- generation
def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _conv(out: int, k: int, padding: int) -> dict[str, Any]:
    layer: dict[str, Any] = {"type": "conv2d", "out_channels": out, "kernel_size": k}
    if padding:
        layer["padding"] = padding
    return layer


def _network(rng: np.random.Generator, level: int) -> dict[str, Any]:
    """conv → ReLU → 2×2 max pooling (→ conv → ReLU (→ pooling)), every pooling on an
    even size so that no floor is needed."""
    c_in = int(_pick(rng, (1, 3)))
    k1 = int(_pick(rng, (3, 5)))
    p1 = int(_pick(rng, (0, k1 // 2)))
    blocks = 2 if level >= 2 or rng.random() < 0.5 else 1
    while True:
        h1 = int(rng.integers(3, 9)) * 2                  # the first conv's output: even
        p2 = int(_pick(rng, (0, 1)))
        h2 = h1 // 2 - 2 + 2 * p2                         # after the second 3×3 conv
        if blocks == 1 or (h2 >= 2 and (level < 3 or h2 % 2 == 0)):
            break
    size = h1 + k1 - 1 - 2 * p1
    layers = [_conv(int(rng.integers(2, 9)), k1, p1), {"type": "relu"},
              {"type": "maxpool2d", "kernel_size": 2}]
    if blocks == 2:
        layers += [_conv(int(rng.integers(4, 13)), 3, p2), {"type": "relu"}]
    if level == 3:
        layers.append({"type": _pick(rng, ("maxpool2d", "avgpool2d")), "kernel_size": 2})
    return {"input": [c_in, size, size], "layers": layers}


def _relevant(v: Variant) -> list[str]:
    flags = ["entries_not_bytes", "float64", "no_bias", "kernel_without_depth"]
    if v.level >= 2:
        flags += ["batch_forgotten", "batch_in_params", "all_outputs", "double_counted",
                  "forgot_indices", "indices_as_float", "forgot_input"]
    if v.level == 3:
        flags.append("state_count")
    return flags


class ConvMemory(Family):
    name = NAME
    levels = (1, 2, 3)
    # shares of 1,000 seeds (measured; README's tables)
    advertised = {1: {"padding": (0.45, 0.8), "two_blocks": (0.35, 0.65)},
                  2: {"batch": (1.0, 1.0), "backward_memory": (1.0, 1.0),
                      "padding": (0.55, 0.9)},
                  3: {"batch": (1.0, 1.0), "adam": (0.35, 0.65), "sgd_momentum": (0.35, 0.65),
                      "avgpool": (0.35, 0.65), "peak": (1.0, 1.0)}}
    mistake_names = {
        1: ("entries_not_bytes", "float64", "no_bias", "kernel_without_depth"),
        2: ("entries_not_bytes", "float64", "no_bias", "kernel_without_depth",
            "batch_forgotten", "batch_in_params", "all_outputs", "double_counted",
            "forgot_indices", "indices_as_float", "forgot_input"),
        3: ("entries_not_bytes", "float64", "no_bias", "kernel_without_depth",
            "batch_forgotten", "batch_in_params", "all_outputs", "double_counted",
            "forgot_indices", "indices_as_float", "forgot_input", "state_count",
            "peak_missing_term"),
    }
    #: hand work: the largest number (bytes: a product of small factors), the input side,
    #: the layers
    budgets = {1: {"largest": 20_000, "input_side": 20, "layers": 5},
               2: {"largest": 250_000, "input_side": 20, "layers": 5},
               3: {"largest": 300_000, "input_side": 20, "layers": 6}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        spec = _network(rng, level)
        batch = 1 if level == 1 else int(_pick(rng, BATCHES))
        optimizer = _pick(rng, OPTIMIZERS) if level == 3 else None
        return Variant(NAME, level, {"network": spec, "batch": batch, "optimizer": optimizer})

    def _args(self, v: Variant) -> tuple[dict[str, Any], int, str | None]:
        return v.plain("network"), int(v.params["batch"]), v.params["optimizer"]

    def parts(self, v: Variant) -> list[Part]:
        n = len(v.params["network"]["layers"])
        out = [self.part("act_bytes", "array", 2.0, shape=(n,), dtype="int", per_element=True)]
        return out + [self.part(name, "int", 1.0, dtype="int") for name in PARTS[v.level][1:]]

    def solve(self, v: Variant) -> dict[str, Any]:
        full = v.cached("account", lambda: account(*self._args(v)))
        return {k: full[k] for k in PARTS[v.level]}

    def mistakes(self, v: Variant) -> list[Mistake]:
        """Each slip changes every answer computed from what it miscounts (a missing bias
        changes the parameters, the gradients, the optimizer's buffers and the peak) —
        except ``state_count``, named on the buffers alone: its peak is that of a missing
        term. The peak's missing terms come last, the gradients first (the screen holds
        that one), the others only where their peak differs from every answer listed."""
        truth = self.solve(v)
        parts = PARTS[v.level]
        out = []
        for flag in _relevant(v):
            wrong = account(*self._args(v), [flag])
            changed = {k: wrong[k] for k in parts
                       if not np.array_equal(np.asarray(wrong[k]), np.asarray(truth[k]))}
            if flag == "state_count":
                changed.pop("peak_bytes", None)
            if changed:
                out.append(Mistake(flag, changed))
        if "peak_bytes" in parts:
            for i, flag in enumerate(PEAK_TERMS):
                peak = account(*self._args(v), [flag])["peak_bytes"]
                if i and any(m.answers.get("peak_bytes") == peak for m in out):
                    continue
                if i and peak == truth["peak_bytes"]:
                    continue
                out.append(Mistake("peak_missing_term", {"peak_bytes": peak}))
        return out

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        spec, batch, optimizer = self._args(v)
        pads = any(layer.get("padding", 0) for layer in spec["layers"])
        return {"v": v, "level": v.level, "table": network_table(spec, lang),
                "input": shape_text(spec["input"]), "batch": batch, "optimizer": optimizer,
                "n_layers": len(spec["layers"]),
                "padding_note": render(lang, "network.padding_note", numeric=True, same=False)
                if pads else "",
                "has_avg": any(la["type"] == "avgpool2d" for la in spec["layers"])}

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        spec, batch, optimizer = self._args(v)
        shapes, res = _shapes(spec)
        key = account(spec, batch, optimizer)
        rows = [{"i": r.index, "type": r.type, "shape": shape_text((batch, *r.output_shape)),
                 "entries": batch * math.prod(r.output_shape), "bytes": int(key["act_bytes"][i]),
                 "params": r.params}
                for i, r in enumerate(res.layers)]
        kept = []
        for kind, i in dict.fromkeys(kept_tensors(spec["layers"])):
            entries = batch * math.prod(shapes[i])
            kept.append({"what": kind, "layer": i, "shape": shape_text((batch, *shapes[i])),
                         "bytes": entries * (FLOAT if kind == "out" else INDEX)})
        return {"rows": rows, "kept": kept, "ans": key, "n_params": key["param_bytes"] // FLOAT,
                "buffers": STATE_BUFFERS.get(optimizer or "", 0)}

    def data_code(self, v: Variant) -> str:
        spec, batch, optimizer = self._args(v)
        lines = [f"batch = {batch}  # samples per batch", spec_code(spec)]
        if optimizer is not None:
            lines.append(f"optimizer = {optimizer!r}  # 'sgd_momentum' or 'adam'")
        return "\n".join(lines)

    def features(self, v: Variant) -> dict[str, float]:
        return {"log_act_bytes": round(math.log10(float(self.solve(v)["act_bytes"].sum())), 3),
                "layers": float(len(v.params["network"]["layers"]))}

    def traits(self, v: Variant) -> frozenset[str]:
        spec, batch, optimizer = self._args(v)
        types = [la["type"] for la in spec["layers"]]
        out = {"padding": any(la.get("padding", 0) for la in spec["layers"]),
               "two_blocks": types.count("conv2d") == 2, "batch": batch > 1,
               "backward_memory": "saved_bytes" in PARTS[v.level],
               "avgpool": "avgpool2d" in types, "adam": optimizer == "adam",
               "sgd_momentum": optimizer == "sgd_momentum",
               "peak": "peak_bytes" in PARTS[v.level]}
        return frozenset(k for k, on in out.items() if on)

    def size_budget(self, v: Variant) -> dict[str, float]:
        key = self.solve(v)
        numbers = [float(np.max(key["act_bytes"]))] + [float(x) for k, x in key.items()
                                                        if k != "act_bytes"]
        spec = v.params["network"]
        return {"largest": max(numbers), "input_side": float(spec["input"][1]),
                "layers": float(len(spec["layers"]))}

    def torch_answer(self, v: Variant, suffix: str) -> str:
        code = TORCH_ANSWER + "\n" + "\n".join(
            f"{name}{suffix} = _m[{name!r}]" for name in PARTS[v.level])
        if v.params["optimizer"] is None:
            code = code.replace("_m = _measure()", "optimizer = None\n_m = _measure()")
        return code

    def oracle(self, v: Variant) -> dict[str, Any]:
        full = torch_account(*self._args(v))
        return {k: full[k] for k in PARTS[v.level]}


# What `pset simulate` writes for a student who measures the answers with torch (the
# data cell defines `batch`, `network` and, at level 3, `optimizer`).
TORCH_ANSWER = '''import torch
from torch import nn


def _measure():
    mods, c = [], network['input'][0]
    for l in network['layers']:
        if l['type'] == 'conv2d':
            mods.append(nn.Conv2d(c, l['out_channels'], l['kernel_size'], padding=l.get('padding', 0)))
            c = l['out_channels']
        elif l['type'] == 'relu':
            mods.append(nn.ReLU())
        else:
            mods.append((nn.MaxPool2d if l['type'] == 'maxpool2d' else nn.AvgPool2d)(l['kernel_size']))
    model = nn.Sequential(*mods)
    acts = []
    for m in model:
        m.register_forward_hook(lambda m, i, out: acts.append(out.nbytes))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:   # one count per storage
            kept[t.untyped_storage().data_ptr()] = t.nbytes
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(batch, *network['input'])).sum().backward()
    p_bytes = sum(p.nbytes for p in model.parameters())
    state = 0
    if optimizer is not None:
        opt = torch.optim.Adam(model.parameters()) if optimizer == 'adam' else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        opt.step()
        state = sum(s.nbytes for p in model.parameters() for s in opt.state[p].values() if s.shape == p.shape)
    saved = sum(kept.values())
    return {'act_bytes': acts, 'param_bytes': p_bytes, 'grad_bytes': p_bytes, 'saved_bytes': saved,
            'state_bytes': state, 'peak_bytes': 2 * p_bytes + state + saved}


_m = _measure()'''

FAMILY = ConvMemory()
