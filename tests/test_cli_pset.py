"""The ``pset`` console script (pyproject: pset = "convpset.cli:pset_main") run as a
subprocess: list, preview (ru) and solve, and its one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convpset.problems import family_names, get_family, variant_from_seed
from convpset.solutions import torch_ref as tref


def _pset_cmd() -> list[str]:
    script = Path(sys.executable).parent / "pset"
    if script.exists():
        return [str(script)]
    found = shutil.which("pset")
    if found:
        return [found]
    return [sys.executable, "-c", "from convpset.cli import pset_main; pset_main()"]


ENV = {**os.environ, "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb"}


def pset(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_pset_cmd(), *args], capture_output=True, text=True, env=ENV,
                          timeout=120)


def conv(out, k, **kw):
    return {"type": "conv2d", "out_channels": out, "kernel_size": k, **kw}


def lenet(**kw):
    return {"input": [1, 28, 28], "layers": [
        conv(6, 5, **kw), {"type": "maxpool2d", "kernel_size": 2},
        conv(16, 5, **kw), {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"}, {"type": "linear", "out_features": 120},
        {"type": "linear", "out_features": 84}, {"type": "linear", "out_features": 10}]}


def test_list_shows_all_families():
    r = pset("list")
    assert r.returncode == 0, r.stderr
    for name in family_names():
        assert name in r.stdout


CYRILLIC = re.compile(r"[а-яА-ЯёЁ]{4,}")


@pytest.mark.parametrize("name", family_names())
def test_preview_in_russian_prints_text_and_answers(name):
    seed, level = 7, 2
    r = pset("preview", name, "--seed", str(seed), "--level", str(level), "--lang", "ru")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    head, _, answers = r.stdout.rpartition("answers")
    assert len(CYRILLIC.findall(head)) >= 5, head
    fam = get_family(name)
    v = variant_from_seed(name, seed, level)
    printed = {}
    for line in answers.splitlines():
        m = re.match(r"^(\w+) = (.*)$", line.strip())
        if m:
            printed[m.group(1)] = json.loads(m.group(2))
    assert set(printed) == {p.name for p in fam.parts(v)}
    for key, value in fam.solve(v).items():
        want = [list(s) for s in value] if key == "shapes" else np.asarray(value).tolist()
        assert printed[key] == want


def test_preview_english_differs_from_russian():
    en = pset("preview", "pooling", "--seed", "3", "--lang", "en").stdout
    ru = pset("preview", "pooling", "--seed", "3", "--lang", "ru").stdout
    assert en != ru and not CYRILLIC.search(en.rpartition("answers")[0])


def test_solve_network_lenet():
    r = pset("solve", "network", "--params", json.dumps(lenet()))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"valid", "layers", "total_params", "total_buffers"}
    assert out["valid"] is True
    assert out["total_params"] == 44426 and out["total_buffers"] == 0
    assert [layer["params"] for layer in out["layers"]] == [156, 0, 2416, 0, 0, 30840, 10164, 850]
    assert [layer["output_shape"] for layer in out["layers"]][:5] == [
        [6, 24, 24], [6, 12, 12], [16, 8, 8], [16, 4, 4], [256]]


def test_solve_network_learns_batchnorm2d():
    """LeNet with a BatchNorm2d after each convolution (whose bias it makes redundant)."""
    spec = lenet(bias=False)
    spec["layers"][1:1] = [{"type": "batchnorm2d"}]
    spec["layers"][4:4] = [{"type": "batchnorm2d"}]
    r = pset("solve", "network", "--params", json.dumps(spec))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # 44426 − the conv biases (6 + 16) + γ and β of both layers (2·6 + 2·16)
    assert out["total_params"] == 44426 - 22 + 44
    assert [layer["buffers"] for layer in out["layers"]][:5] == [0, 13, 0, 0, 33]
    assert out["total_buffers"] == 2 * 6 + 1 + 2 * 16 + 1
    spec["layers"][1]["affine"] = 1
    r = pset("solve", "network", "--params", json.dumps(spec))
    assert r.returncode == 2 and "layers[1].affine" in r.stderr and "Traceback" not in r.stderr


def test_solve_network_params_from_file(tmp_path):
    f = tmp_path / "lenet.json"
    f.write_text(json.dumps(lenet()), encoding="utf-8")
    r = pset("solve", "network", "--params", f"@{f}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total_params"] == 44426


def test_solve_network_collapse_is_not_an_error():
    r = pset("solve", "network", "--params", json.dumps(lenet(stride=2)))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["valid"] is False
    assert out["collapsed_at"] == 4
    assert isinstance(out["reason"], str) and "maxpool2d" in out["reason"]
    assert {"valid", "collapsed_at", "reason"} <= set(out) <= {
        "valid", "collapsed_at", "reason", "layers"}
    assert r.stderr == ""


def test_solve_conv_as_matrix():
    kernel = [[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]]
    params = {"input_shape": [1, 4, 4], "kernel": kernel, "stride": 1, "padding": 0}
    r = pset("solve", "conv_as_matrix", "--params", json.dumps(params))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"W", "output_shape"}
    assert out["output_shape"] == [1, 2, 2]
    np.testing.assert_array_equal(out["W"], tref.conv_matrix((1, 4, 4), np.array(kernel, float)))
    assert np.asarray(out["W"]).shape == (4, 16)


def test_solve_conv_as_matrix_with_x_returns_y():
    """Given x, `pset solve` also returns y: torch's conv2d of x, which is W·vec(x)."""
    rng = np.random.default_rng(7)
    kernel = rng.integers(-3, 4, size=(2, 2, 2, 2)).tolist()
    x = rng.integers(-5, 6, size=(2, 4, 5)).tolist()
    params = {"x": x, "kernel": kernel, "stride": [1, 2], "padding": 1}
    r = pset("solve", "conv_as_matrix", "--params", json.dumps(params))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"W", "output_shape", "y"}
    want = tref.conv2d(np.array(x, float), np.array(kernel, float), None, stride=(1, 2), padding=1)
    np.testing.assert_allclose(out["y"], want, atol=1e-9)
    assert list(want.shape) == out["output_shape"]
    np.testing.assert_allclose(np.asarray(out["W"]) @ np.array(x, float).ravel(), want.ravel(),
                               atol=1e-9)
    bad = pset("solve", "conv_as_matrix", "--params",
               json.dumps({**params, "input_shape": [2, 4, 4]}))
    assert bad.returncode == 2 and "x" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("kind", "params", "field"), [
    ("network", "{bad json", "params"),
    ("conv_as_matrix", json.dumps({"kernel": [[[[1]]]]}), "input_shape"),
    ("network", json.dumps({"input": [1, 8, 8], "layers": [conv(2, 0)]}),
     "layers[0].kernel_size"),
    ("network", json.dumps({"input": [1, 8, 8], "layers": [{"type": "dense"}]}),
     "layers[0].type"),
    ("conv_as_matrix", json.dumps({"input_shape": [1, 3, 3], "kernel": [[1, 2], [3, 4]]}),
     "kernel"),
    ("conv_backward", json.dumps({"x": [[1, 2], [3, 4]], "kernel": [[[[1]]]],
                                  "grad_y": [[[1]]]}), "x"),
    ("pooling", json.dumps({"x": [[[1, 2], [3, 4]]], "kernel_size": 2, "mode": "min"}), "mode"),
    ("network", json.dumps({"input": [1, 8, 8]}), "layers"),
    ("nonsense", "{}", "kind"),
])
def test_bad_params_one_line_exit_2(kind, params, field):
    r = pset("solve", kind, "--params", params)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert field in lines[0]
    assert r.stdout == ""
