"""Answer forms a student naturally writes are read as numbers (issue 23), without ever
running a student's code: a list of ``torch.Size`` (``[t.shape for t in outs]``), a
``y.shape``, a list of numpy arrays (one per channel), a ragged object array of shapes.

The conversion is the sandbox's own (:mod:`convpset.autograder.sandbox.convert`, bound
before student code runs); the end-to-end test grades a returned notebook written that
way with the real ``grade``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convpset.autograder.sandbox.convert import to_plain

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "course"
GRADE = str(Path(sys.executable).with_name("grade"))
SIM = {s["student_id"]: s for s in json.loads((EXAMPLE / "simulated.json").read_text())}


def _same(got, plain) -> None:
    want = to_plain(plain)
    assert got[3] is None and want[3] is None, (got, want)
    np.testing.assert_array_equal(got[1], want[1])
    assert got[2] == want[2]


def test_torch_sizes_and_shapes_read_as_tuples():
    _same(to_plain([torch.Size([6, 24, 24]), torch.Size([256])]), [(6, 24, 24), (256,)])
    _same(to_plain(torch.zeros(2, 3).shape), (2, 3))


def test_a_list_of_arrays_is_one_array():
    parts = [np.arange(4).reshape(2, 2), np.arange(4, 8).reshape(2, 2)]
    got = to_plain(parts)
    assert got[3] is None and got[1].shape == (2, 2, 2)
    np.testing.assert_array_equal(got[1], np.stack(parts))


def test_a_ragged_object_array_of_shapes_reads_as_rows():
    a = np.empty(2, dtype=object)
    a[0], a[1] = (6, 24, 24), (256,)
    _same(to_plain(a), [(6, 24, 24), (256,)])


def test_student_classes_are_never_iterated():
    ran = []

    class Shape(tuple):           # a class written in Python: its code must not run
        def __iter__(self):
            ran.append(1)
            return iter(())

    a = np.empty(2, dtype=object)
    a[0], a[1] = Shape((1, 2)), (3,)
    for value in ([Shape((1, 2))], Shape((1, 2)), a):
        assert to_plain(value)[3] is not None
    assert ran == []
    b = np.empty(1, dtype=object)
    b[0] = object()
    assert to_plain(b)[3] is not None
    assert to_plain([np.array(["x"])])[3] is not None


@pytest.mark.slow
def test_a_notebook_answering_in_these_forms_gets_full_marks(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    for name in ("pset.toml", "roster.csv"):
        shutil.copy2(EXAMPLE / name, course / name)
    sid = "s001"
    assert SIM[sid]["kind"] == "correct"
    nb = json.loads((EXAMPLE / "submitted" / sid / "conv1" / "conv1.ipynb").read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell.get("id") == "answer_3":          # shapes as torch.Size, the way y.shape gives
            src = src.replace("shapes_3 = [", "import torch\nshapes_3 = [torch.Size(_s) for _s in [")
            src = src.replace("]\ncollapse_layer_3", "]]\ncollapse_layer_3")
        if cell.get("id") == "answer_4":          # dX as a list of per-channel arrays
            src += "\ndX_4 = list(np.asarray(dX_4))"
        if cell.get("id") == "answer_5":          # Y as a list of arrays too
            src += "\nY_5 = [np.asarray(_c) for _c in Y_5]"
        cell["source"] = src
    out = course / "submitted" / sid / "conv1"
    out.mkdir(parents=True)
    (out / "conv1.ipynb").write_text(json.dumps(nb))
    r = subprocess.run([GRADE, str(course / "submitted"), "--course", str(course),
                        "--out", str(tmp_path / "g"), "--cell-timeout", "120"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / "g" / "results.json").read_text())[sid]
    assert res["score"] == SIM[sid]["expected_score"], [
        (t["name"], t["output"]) for t in res["tests"] if t["status"] != "passed"]
