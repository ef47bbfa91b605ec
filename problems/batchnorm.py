"""Batch normalization: what ``BatchNorm2d`` learns and keeps, what it computes, what it makes
redundant.

``torch.nn.BatchNorm2d(C)`` has 2·C trainable parameters (``weight`` γ and ``bias`` β, one
per channel) and 2·C + 1 buffer numbers, saved in the ``state_dict`` but never trained:
``running_mean`` and ``running_var`` (C each) and ``num_batches_tracked`` (one number).
In training mode it normalizes every channel with the batch's own mean and *biased*
variance (divided by n), then updates the running statistics with the *unbiased* one
(divided by n − 1): ``running = (1 − momentum)·running + momentum·batch`` with torch's
``momentum = 0.1``. In eval mode it uses the running statistics. ``eps = 1e-5`` sits under
the square root; the numbers are drawn so that it changes an answer only in the sixth
digit, and the answers are compared with a tolerance (``HAND_TOL``).

A bias added before BatchNorm is redundant: the batch mean absorbs any constant per
channel, so a ``Conv2d`` followed by ``BatchNorm2d`` is written with ``bias=False``.

Level 1: a conv + BN block's counts and the redundant bias, and BN in eval mode on a tiny
tensor. Level 2: BN in training mode on a tiny tensor and the running statistics after
that step. Level 3: the parameters of a network with BN layers, its buffers and its
redundant biases. The key is closed form (numpy, :func:`convpset.solutions.network.analyze`);
the oracle is torch: the layers themselves, ``numel()`` of parameters and buffers, and a
bias called redundant only when changing it leaves the network's output unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family
from convpset.problems.networks import layer_text, spec_code
from convpset.problems.render import latex_matrix, np_assign, num, shape_text
from convpset.problems.text import decimal, render
from convpset.solutions import network

NAME = "batchnorm"
EPS = 1e-5
MOMENTUM = 0.1
#: the hand answers ignore eps (it changes the sixth digit): two decimals are enough
HAND_TOL = {"rtol": 1e-3, "atol": 5e-3}
#: a ±1 pattern of 4 values per channel: its biased variance is exactly 1
PATTERNS = ((1, 1, -1, -1), (1, -1, 1, -1), (1, -1, -1, 1), (-1, 1, 1, -1), (-1, 1, -1, 1),
            (-1, -1, 1, 1))

FLAGS = ("eval_uses_batch_stats", "variance_not_sqrt", "affine_forgotten", "unbiased_var",
         "stats_over_all_channels", "eval_in_train", "momentum_reversed", "biased_running_var")

PARTS = {1: ("bn_params", "bn_buffers", "conv_params", "redundant", "y_eval"),
         2: ("y_train", "running_mean", "running_var"),
         3: ("params", "total", "buffers", "redundant")}


# ----------------------------------------------------------------------- the arithmetic
def _stats(x: np.ndarray, f: frozenset[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel (or, with the slip, whole-tensor) batch mean, biased and unbiased
    variance of an (N, C, H, W) tensor."""
    c = x.shape[1]
    if "stats_over_all_channels" in f:
        flat = np.broadcast_to(x.reshape(1, -1), (c, x.size))
    else:
        flat = np.moveaxis(x, 1, 0).reshape(c, -1)
    n = flat.shape[1]
    mean = flat.mean(axis=1)
    biased = ((flat - mean[:, None]) ** 2).mean(axis=1)
    return mean, biased, biased * n / (n - 1)


def _per_channel(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=float)[None, :, None, None]


def normalize(x: np.ndarray, mean: np.ndarray, var: np.ndarray, weight: np.ndarray,
              bias: np.ndarray, f: frozenset[str] = frozenset()) -> np.ndarray:
    """γ·(x − mean)/√(var + eps) + β, per channel (slips: the variance without the square
    root, γ and β left out)."""
    scale = var + EPS if "variance_not_sqrt" in f else np.sqrt(var + EPS)
    x_hat = (x - _per_channel(mean)) / _per_channel(scale)
    if "affine_forgotten" in f:
        return x_hat
    return _per_channel(weight) * x_hat + _per_channel(bias)


def bn_eval(p: Mapping[str, Any], flags: Iterable[str] = ()) -> np.ndarray:
    """BatchNorm2d in eval mode: the running statistics normalize."""
    f = frozenset(flags)
    x = np.asarray(p["x"], dtype=float)
    if "eval_uses_batch_stats" in f:
        mean, var, _ = _stats(x, f)
    else:
        mean, var = np.asarray(p["mean"], float), np.asarray(p["var"], float)
    return normalize(x, mean, var, np.asarray(p["weight"], float), np.asarray(p["bias"], float), f)


def bn_train(p: Mapping[str, Any], flags: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """BatchNorm2d in training mode: the output (batch mean, biased variance) and the
    running statistics after the step (unbiased variance, momentum 0.1)."""
    f = frozenset(flags)
    x = np.asarray(p["x"], dtype=float)
    mean0, var0 = np.asarray(p["mean"], float), np.asarray(p["var"], float)
    mean, biased, unbiased = _stats(x, f)
    if "eval_in_train" in f:
        y = normalize(x, mean0, var0, np.asarray(p["weight"], float), np.asarray(p["bias"], float), f)
    else:
        y = normalize(x, mean, unbiased if "unbiased_var" in f else biased,
                      np.asarray(p["weight"], float), np.asarray(p["bias"], float), f)
    m = 1 - MOMENTUM if "momentum_reversed" in f else MOMENTUM
    batch_var = biased if "biased_running_var" in f else unbiased
    return {"y_train": y, "running_mean": (1 - m) * mean0 + m * mean,
            "running_var": (1 - m) * var0 + m * batch_var}


# the counting slips of levels 1 and 3, per layer
COUNT_FLAGS = ("buffers_as_params", "scalar_affine", "forgot_num_batches",
               "kernel_without_depth", "no_bias")
REDUNDANT_FLAGS = ("none_redundant", "all_conv_biases", "affine_redundant")


def _followed_by_bn(layers: Sequence[Mapping[str, Any]]) -> list[bool]:
    return [i + 1 < len(layers) and layers[i + 1]["type"] == "batchnorm2d"
            for i in range(len(layers))]


def count(spec: Mapping[str, Any], flags: Iterable[str] = ()) -> dict[str, Any]:
    """Parameters per layer, their total, the buffer numbers and the redundant biases of
    ``spec``, counted as a student with the slips in ``flags`` would."""
    f = frozenset(flags)
    res = network.analyze(dict(spec))
    layers = spec["layers"]
    after_bn = _followed_by_bn(layers)
    params, buffers, redundant = [], 0, 0
    for i, (layer, r) in enumerate(zip(layers, res.layers, strict=True)):
        t, n, b = layer["type"], r.params, r.buffers
        if t == "batchnorm2d":
            if "scalar_affine" in f:
                n = 2
            if "buffers_as_params" in f:
                n, b = n + b, 0
            elif "forgot_num_batches" in f:
                b -= 1
        elif t == "conv2d":
            ci, co = r.input_shape[0], r.output_shape[0]
            k = int(layer["kernel_size"])
            has_bias = layer.get("bias", True)
            depth = 1 if "kernel_without_depth" in f else ci
            n = co * depth * k * k + (co if has_bias and "no_bias" not in f else 0)
            if has_bias and (after_bn[i] or "all_conv_biases" in f):
                redundant += co * (2 if "affine_redundant" in f and after_bn[i] else 1)
        elif t == "linear" and "no_bias" in f and layer.get("bias", True):
            n = r.weights
        params.append(n)
        buffers += b
    if "none_redundant" in f:
        redundant = 0
    return {"params": np.array(params, dtype=np.int64), "total": int(sum(params)),
            "buffers": int(buffers), "redundant": int(redundant)}


def block_spec(v: Variant) -> dict[str, Any]:
    """Level 1's conv + BN block as a network spec."""
    c = v.plain("block")
    return {"input": [c["in_channels"], 8, 8],
            "layers": [{"type": "conv2d", "out_channels": c["out_channels"],
                        "kernel_size": c["kernel_size"]}, {"type": "batchnorm2d"}]}


def answers(v: Variant, flags: Iterable[str] = ()) -> dict[str, Any]:
    """Every answer of ``v`` under the slips in ``flags``."""
    f = frozenset(flags)
    if v.level == 1:
        counted = count(block_spec(v), f)
        return {"conv_params": int(counted["params"][0]), "bn_params": int(counted["params"][1]),
                "bn_buffers": counted["buffers"], "redundant": counted["redundant"],
                "y_eval": bn_eval(v.plain("bn"), f)}
    if v.level == 2:
        return bn_train(v.plain("bn"), f)
    return count(v.plain("network"), f)


# ----------------------------------------------------------------------- torch oracle
def _torch_bn(p: Mapping[str, Any]) -> Any:
    import torch

    c = len(p["mean"])
    bn = torch.nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor(p["mean"], dtype=torch.float64))
        bn.running_var.copy_(torch.tensor(p["var"], dtype=torch.float64))
        bn.weight.copy_(torch.tensor(p["weight"], dtype=torch.float64))
        bn.bias.copy_(torch.tensor(p["bias"], dtype=torch.float64))
    return bn.double()


def torch_model(spec: Mapping[str, Any]) -> Any:
    """The spec's layers as a torch ``nn.Sequential`` (conv, BN, ReLU, pooling, linear)."""
    from torch import nn

    mods, shape = [], tuple(spec["input"])
    for layer, r in zip(spec["layers"], network.analyze(dict(spec)).layers, strict=True):
        t = layer["type"]
        if t == "conv2d":
            mods.append(nn.Conv2d(shape[0], layer["out_channels"], layer["kernel_size"],
                                  padding=layer.get("padding", 0), bias=layer.get("bias", True)))
        elif t == "batchnorm2d":
            mods.append(nn.BatchNorm2d(shape[0]))
        elif t == "relu":
            mods.append(nn.ReLU())
        elif t == "maxpool2d":
            mods.append(nn.MaxPool2d(layer["kernel_size"]))
        elif t == "flatten":
            mods.append(nn.Flatten())
        elif t == "linear":
            mods.append(nn.Linear(shape[0], layer["out_features"], bias=layer.get("bias", True)))
        else:
            raise ValueError(f"layer type {t!r} not modelled")
        shape = tuple(r.output_shape)
    return nn.Sequential(*mods)


def torch_redundant(model: Any, input_shape: Sequence[int]) -> int:
    """Bias numbers whose value cannot change the output in training mode: each layer's
    bias is shifted by +10, by −10 and by a random constant per channel, the batch run
    again each time; redundant when no shift changes anything.

    Run on a copy whose conv and linear weights are drawn positive (seeded): a +10 shift
    then raises its unit everywhere and every later unit it feeds, so a unit silenced by
    a ReLU (or by a negative weight after it, which no shift revives) is never mistaken
    for a redundant bias; only a BatchNorm2d before any nonlinearity cancels a shift."""
    import copy

    import torch

    torch.manual_seed(0)
    x = torch.randn(4, *input_shape, dtype=torch.float64)
    model = copy.deepcopy(model).double().train()
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                m.weight.copy_(torch.rand_like(m.weight) + 0.1)
        base = model(x)
        out = 0
        for m in model:
            bias = getattr(m, "bias", None)
            if bias is None or isinstance(m, torch.nn.BatchNorm2d):
                continue
            saved = bias.clone()
            same = True
            for shift in (torch.full_like(bias, 10.0), torch.full_like(bias, -10.0),
                          3 * torch.randn_like(bias)):
                bias.copy_(saved + shift)
                same = same and torch.allclose(model(x), base, atol=1e-9)
            bias.copy_(saved)
            out += bias.numel() if same else 0
    return out


def oracle_answers(v: Variant) -> dict[str, Any]:
    """The answers from torch's own layers."""
    import torch

    if v.level == 2:
        p = v.plain("bn")
        bn = _torch_bn(p).train()
        with torch.no_grad():
            y = bn(torch.tensor(p["x"], dtype=torch.float64))
        return {"y_train": y.numpy(), "running_mean": bn.running_mean.numpy(),
                "running_var": bn.running_var.numpy()}
    spec = block_spec(v) if v.level == 1 else v.plain("network")
    model = torch_model(spec)
    params = np.array([sum(p.numel() for p in m.parameters()) for m in model], dtype=np.int64)
    buffers = sum(b.numel() for b in model.buffers())
    redundant = torch_redundant(model, spec["input"])
    if v.level == 3:
        return {"params": params, "total": int(sum(p.numel() for p in model.parameters())),
                "buffers": int(buffers), "redundant": redundant}
    p = v.plain("bn")
    bn = _torch_bn(p).eval()
    with torch.no_grad():
        y = bn(torch.tensor(p["x"], dtype=torch.float64))
    return {"conv_params": int(params[0]), "bn_params": int(params[1]),
            "bn_buffers": int(buffers), "redundant": redundant, "y_eval": y.numpy()}


# ----------------------------------------------------------------------- generation
def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _tiny(rng: np.random.Generator, train: bool) -> dict[str, Any]:
    """A 1×2×2×2 input and the layer's numbers. Each channel is μ + a·(a ±1 pattern): its
    batch mean is μ and its biased variance a², so training-mode answers are whole
    numbers (up to eps); the running variances are 1/4, 1 or 4 (square roots by heart)."""
    chans, means = [], []
    mus = rng.choice(np.arange(-3, 5), size=2, replace=False)
    for mu in mus:
        a = int(_pick(rng, (1, 2, 3)))
        z = np.array(_pick(rng, PATTERNS)).reshape(2, 2)
        chans.append((int(mu) + a * z).tolist())
        means.append(int(mu))
    var_choices = (0.25, 1.0, 4.0)
    p = {"x": [chans],
         "mean": [int(rng.integers(-2, 3)) for _ in range(2)],
         "var": [float(_pick(rng, var_choices)) for _ in range(2)],
         "weight": [float(_pick(rng, (0.5, 1.0, 2.0, 3.0, -1.0))) for _ in range(2)],
         "bias": [int(rng.integers(-2, 3)) for _ in range(2)]}
    if not train:      # eval: a variance other than 1 somewhere, so that √ matters
        while all(x == 1.0 for x in p["var"]):
            p["var"] = [float(_pick(rng, var_choices)) for _ in range(2)]
    return p


def _network(rng: np.random.Generator) -> dict[str, Any]:
    """Two conv blocks (the second with BN or without), then a linear classifier; at least
    one biased convolution feeds a BN (something is redundant)."""
    while True:
        c_in = int(_pick(rng, (1, 3)))
        size = int(_pick(rng, (8, 12, 16)))
        layers: list[dict[str, Any]] = []
        for i in range(2):
            out = int(_pick(rng, (4, 6, 8, 12, 16) if i == 0 else (8, 12, 16, 24, 32)))
            conv = {"type": "conv2d", "out_channels": out, "kernel_size": 3, "padding": 1}
            if rng.random() < 0.5:
                conv["bias"] = False
            layers.append(conv)
            if i == 0 or rng.random() < 0.6:
                layers.append({"type": "batchnorm2d"})
            layers += [{"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2}]
        layers += [{"type": "flatten"}, {"type": "linear", "out_features": 10}]
        spec = {"input": [c_in, size, size], "layers": layers}
        if count(spec)["redundant"] > 0:
            return spec


def _relevant(v: Variant) -> list[str]:
    if v.level == 1:
        flags = ["buffers_as_params", "scalar_affine", "forgot_num_batches", "no_bias",
                 "none_redundant", "affine_redundant",
                 "eval_uses_batch_stats", "variance_not_sqrt", "affine_forgotten"]
        if v.params["block"]["in_channels"] > 1:
            flags.insert(3, "kernel_without_depth")
        return flags
    if v.level == 2:
        return ["unbiased_var", "stats_over_all_channels", "eval_in_train", "affine_forgotten",
                "momentum_reversed", "biased_running_var"]
    spec = v.plain("network")
    flags = ["buffers_as_params", "scalar_affine", "forgot_num_batches", "no_bias",
             "none_redundant", "affine_redundant"]
    if spec["input"][0] > 1 or len(spec["layers"]) > 1:
        flags.insert(3, "kernel_without_depth")
    if count(spec, ["all_conv_biases"])["redundant"] != count(spec)["redundant"]:
        flags.append("all_conv_biases")
    return flags


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=HAND_TOL["rtol"],
                                                   atol=HAND_TOL["atol"]))


def bn_layer_text(layer: Mapping[str, Any], channels: int) -> str:
    """torch's constructor as the table shows it: BatchNorm2d with its channel count."""
    if layer["type"] == "batchnorm2d":
        return f"BatchNorm2d(num_features={channels})"
    return layer_text(layer)


class BatchNorm(Family):
    name = NAME
    levels = (1, 2, 3)
    # shares of 1,000 seeds (measured; README's tables)
    advertised = {1: {"counts": (1.0, 1.0), "redundant_bias": (1.0, 1.0), "eval_mode": (1.0, 1.0),
                      "colour": (0.15, 0.35)},
                  2: {"train_mode": (1.0, 1.0), "running_stats": (1.0, 1.0)},
                  3: {"network": (1.0, 1.0), "redundant_bias": (1.0, 1.0),
                      "conv_without_bn": (0.2, 0.4), "colour": (0.4, 0.65)}}
    mistake_names = {
        1: ("buffers_as_params", "scalar_affine", "forgot_num_batches", "kernel_without_depth",
            "no_bias", "none_redundant", "affine_redundant", "eval_uses_batch_stats",
            "variance_not_sqrt", "affine_forgotten"),
        2: ("unbiased_var", "stats_over_all_channels", "eval_in_train", "affine_forgotten",
            "momentum_reversed", "biased_running_var"),
        3: ("buffers_as_params", "scalar_affine", "forgot_num_batches", "kernel_without_depth",
            "no_bias", "none_redundant", "affine_redundant", "all_conv_biases"),
    }
    budgets = {1: {"entries": 12, "largest": 20_000},
               2: {"entries": 12, "largest": 20},
               3: {"entries": 16, "largest": 20_000, "layers": 12}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        if level == 1:
            block = {"in_channels": int(_pick(rng, (1, 3, 4, 8))),
                     "out_channels": int(_pick(rng, (8, 16, 32, 64))),
                     "kernel_size": int(_pick(rng, (3, 5)))}
            return Variant(NAME, level, {"block": block, "bn": _tiny(rng, train=False)})
        if level == 2:
            return Variant(NAME, level, {"bn": _tiny(rng, train=True)})
        return Variant(NAME, level, {"network": _network(rng)})

    def parts(self, v: Variant) -> list[Part]:
        if v.level == 1:
            return [*(self.part(n, "int", 1.0, dtype="int")
                      for n in ("bn_params", "bn_buffers", "conv_params", "redundant")),
                    self.part("y_eval", "array", 2.0, shape=(1, 2, 2, 2), per_element=True,
                              **HAND_TOL)]
        if v.level == 2:
            return [self.part("y_train", "array", 2.0, shape=(1, 2, 2, 2), per_element=True,
                              **HAND_TOL),
                    self.part("running_mean", "array", 1.0, shape=(2,), per_element=True,
                              **HAND_TOL),
                    self.part("running_var", "array", 1.0, shape=(2,), per_element=True,
                              **HAND_TOL)]
        n = len(v.params["network"]["layers"])
        return [self.part("params", "array", 2.0, shape=(n,), dtype="int", per_element=True),
                self.part("total", "int", 1.0, dtype="int"),
                self.part("buffers", "int", 1.0, dtype="int"),
                self.part("redundant", "int", 1.0, dtype="int")]

    def solve(self, v: Variant) -> dict[str, Any]:
        return v.cached("answers", lambda: answers(v))

    def mistakes(self, v: Variant) -> list[Mistake]:
        truth = self.solve(v)
        out = []
        for flag in _relevant(v):
            wrong = answers(v, [flag])
            changed = {k: wrong[k] for k in PARTS[v.level] if not _same(wrong[k], truth[k])}
            if changed:
                out.append(Mistake(flag, changed))
        return out

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        ctx: dict[str, Any] = {"v": v, "level": v.level, "eps": "1e-5", "momentum": num(MOMENTUM)}
        if v.level in (1, 2):
            p = v.plain("bn")
            x = np.asarray(p["x"], dtype=float)
            ctx |= {"x0": latex_matrix(x[0, 0]), "x1": latex_matrix(x[0, 1]),
                    **{k: [decimal(a, lang, 4) for a in p[k]]
                       for k in ("mean", "var", "weight", "bias")}}
        if v.level == 1:
            ctx["block"] = v.plain("block")
        if v.level == 3:
            spec = v.plain("network")
            res = network.analyze(spec)
            chans = [spec["input"][0], *(r.output_shape[0] for r in res.layers)]
            head = render(lang, "network.table_head")
            rows = [f"| {i} | `{bn_layer_text(layer, chans[i - 1])}` |"
                    for i, layer in enumerate(spec["layers"], start=1)]
            ctx |= {"table": "\n".join([head, *rows]), "input": shape_text(spec["input"]),
                    "padding_note": render(lang, "network.padding_note", numeric=True, same=False)}
        return ctx

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        ans = self.solve(v)
        sep = "; " if lang == "ru" else ", "
        ctx: dict[str, Any] = {"ans": {
            k: (",\\ ".join(latex_matrix(np.round(ch, 4)) for ch in np.asarray(a)[0])
                if k.startswith("y_") else
                (sep.join(decimal(x, lang, 4) for x in a) if k.startswith("running") else a))
            for k, a in ans.items()}}
        if v.level in (1, 2):
            p = v.plain("bn")
            mean, biased, unbiased = _stats(np.asarray(p["x"], dtype=float), frozenset())
            ctx |= {"bmean": [decimal(a, lang, 4) for a in mean],
                    "bvar": [decimal(a, lang, 4) for a in biased],
                    "uvar": [decimal(a, lang, 4) for a in unbiased]}
        if v.level == 3:
            spec = v.plain("network")
            res = network.analyze(spec)
            ctx["rows"] = [(r.index, r.type, shape_text(r.output_shape), r.params, r.buffers)
                           for r in res.layers]
        return ctx

    def data_code(self, v: Variant) -> str:
        if v.level == 3:
            return spec_code(v.plain("network"))
        p = v.plain("bn")
        lines = ["import numpy as np", ""]
        if v.level == 1:
            b = v.plain("block")
            lines.append(f"conv = {{'in_channels': {b['in_channels']}, 'out_channels': "
                         f"{b['out_channels']}, 'kernel_size': {b['kernel_size']}}}  "
                         f"# Conv2d(**conv), then BatchNorm2d({b['out_channels']})")
        lines += [np_assign("x", p["x"]) + "  # (N, C, H, W)",
                  np_assign("running_mean", p["mean"]), np_assign("running_var", p["var"]),
                  np_assign("weight", p["weight"]) + "  # γ",
                  np_assign("bias", p["bias"]) + "  # β",
                  f"eps = {EPS}"]
        if v.level == 2:
            lines.append(f"momentum = {MOMENTUM}")
        return "\n".join(lines)

    def features(self, v: Variant) -> dict[str, float]:
        if v.level == 3:
            spec = v.params["network"]
            return {"layers": float(len(spec["layers"])),
                    "log_params": round(math.log10(self.solve(v)["total"]), 3)}
        p = v.params["bn"]
        return {"spread": float(np.ptp(np.asarray(p["x"], dtype=float)))}

    def traits(self, v: Variant) -> frozenset[str]:
        if v.level == 1:
            out = {"counts", "redundant_bias", "eval_mode"}
            if v.params["block"]["in_channels"] == 3:
                out.add("colour")
            return frozenset(out)
        if v.level == 2:
            return frozenset({"train_mode", "running_stats"})
        spec = v.params["network"]
        out = {"network"}
        if self.solve(v)["redundant"] > 0:
            out.add("redundant_bias")
        after = _followed_by_bn(spec["layers"])
        if any(la["type"] == "conv2d" and not after[i] for i, la in enumerate(spec["layers"])):
            out.add("conv_without_bn")
        if spec["input"][0] == 3:
            out.add("colour")
        return frozenset(out)

    def size_budget(self, v: Variant) -> dict[str, float]:
        from convpset.problems.contract import answer_entries

        key = self.solve(v)
        largest = max(float(np.max(np.abs(np.asarray(a, dtype=float)))) for a in key.values())
        out = {"entries": float(answer_entries(key)), "largest": largest}
        if v.level == 3:
            out["layers"] = float(len(v.params["network"]["layers"]))
        return out

    def torch_answer(self, v: Variant, suffix: str) -> str:
        code = TORCH_ANSWER[v.level]
        return code + "\n" + "\n".join(f"{name}{suffix} = _a[{name!r}]" for name in PARTS[v.level])

    def oracle(self, v: Variant) -> dict[str, Any]:
        return oracle_answers(v)


_BN = '''import torch
from torch import nn


def _bn():
    bn = nn.BatchNorm2d(len(running_mean), eps=eps).double()
    with torch.no_grad():
        for name, value in (('running_mean', running_mean), ('running_var', running_var),
                            ('weight', weight), ('bias', bias)):
            getattr(bn, name).copy_(torch.tensor(value))
    return bn
'''

_REDUNDANT = '''

def _redundant(model, shape):
    x = torch.randn(4, *shape, dtype=torch.float64)
    model = model.double().train()
    with torch.no_grad():
        base, n = model(x), 0
        for m in model:
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                keep, same = m.bias.clone(), True
                for shift in (10.0, -10.0, 3 * torch.randn_like(m.bias)):
                    m.bias.copy_(keep + shift)      # ±10 revives what a ReLU silenced
                    same = same and torch.allclose(model(x), base, atol=1e-9)
                m.bias.copy_(keep)
                n += m.bias.numel() if same else 0
    return n
'''

#: what `pset simulate` writes for a student who lets torch answer, per level
TORCH_ANSWER = {
    1: _BN + _REDUNDANT + '''

_block = nn.Sequential(nn.Conv2d(**conv), nn.BatchNorm2d(conv['out_channels']))
_a = {'conv_params': sum(p.numel() for p in _block[0].parameters()),
      'bn_params': sum(p.numel() for p in _block[1].parameters()),
      'bn_buffers': sum(b.numel() for b in _block[1].buffers()),
      'redundant': _redundant(_block, (conv['in_channels'], 8, 8)),
      'y_eval': _bn().eval()(torch.tensor(x)).detach()}''',
    2: _BN + '''

_layer = _bn().train()
_a = {'y_train': _layer(torch.tensor(x)).detach()}
_a |= {'running_mean': _layer.running_mean, 'running_var': _layer.running_var}''',
    3: '''import torch
from torch import nn
''' + _REDUNDANT + '''

def _model():
    mods, c = [], network['input'][0]
    size = network['input'][1]
    for l in network['layers']:
        t = l['type']
        if t == 'conv2d':
            mods.append(nn.Conv2d(c, l['out_channels'], l['kernel_size'], padding=l.get('padding', 0), bias=l.get('bias', True)))
            c = l['out_channels']
        elif t == 'batchnorm2d':
            mods.append(nn.BatchNorm2d(c))
        elif t == 'relu':
            mods.append(nn.ReLU())
        elif t == 'maxpool2d':
            mods.append(nn.MaxPool2d(l['kernel_size']))
            size //= l['kernel_size']
        elif t == 'flatten':
            mods.append(nn.Flatten())
            c = c * size * size
        else:
            mods.append(nn.Linear(c, l['out_features']))
            c = l['out_features']
    return nn.Sequential(*mods)


_net = _model()
_a = {'params': [sum(p.numel() for p in m.parameters()) for m in _net],
      'total': sum(p.numel() for p in _net.parameters()),
      'buffers': sum(b.numel() for b in _net.buffers()),
      'redundant': _redundant(_net, network['input'])}''',
}

FAMILY = BatchNorm()
