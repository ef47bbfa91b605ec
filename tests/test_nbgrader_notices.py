"""The pieces of issue 24 that need no server: the fetch notice page, the released
source of a test cell, the format check of a ragged list, wrapped verdicts, the
gradebook written for roster students only. The clicking is in
tests/test_nbgrader_browser.py, the real commands in tests/test_nbgrader_loop.py."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convpset.autograder.nbgrader_bridge import WRAP, verdict_text, wrapped
from convpset.notebooks.cells import BEGIN_HIDDEN, END_HIDDEN, is_notice
from convpset.notebooks.course import init_course
from convpset.notebooks.generate import notebook_text


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_notice_page_says_why_and_what_to_do_and_is_recognised(lang):
    from convpset.integrations.nbgrader.exchange import notice_notebook

    nb = notice_notebook(lang, "not_on_roster", "mal`lory <img src=x>", "phys101", "conv1")
    nbformat.validate(nb)
    [cell] = nb.cells
    assert cell.cell_type == "markdown" and cell.metadata["editable"] is False
    assert "Fetch" in cell.source and "**conv1**" in cell.source
    # the login is the user's text: literal in markdown (a code span), never an element,
    # even where raw HTML passes (as in Jupyter's renderer)
    import cmarkgfm
    from cmarkgfm.cmark import Options

    html = cmarkgfm.markdown_to_html(cell.source, options=Options.CMARK_OPT_UNSAFE)
    assert "<img" not in html and "&lt;img src=x&gt;" in html
    assert is_notice(json.loads(nbformat.writes(nb)))
    assert not is_notice({"metadata": {}, "cells": []}) and not is_notice([1])


def test_released_source_is_the_personal_test_cell(tmp_path):
    """What nbgrader releases from a source test cell (hidden test removed) is exactly the
    personal notebook's cell: the condition under which OverwriteOurCells stays quiet."""
    from convpset.integrations.nbgrader.autograde import released_source

    course = init_course(tmp_path / "c", students=2, seed=5)
    src = nbformat.reads(notebook_text(course, "conv1", "template", "template", "en", "source"), 4)
    personal = nbformat.reads(notebook_text(course, "conv1", "s001", "s001", "en", "personal"), 4)
    tests = {c.id: c.source for c in personal.cells if c.id.startswith("test_")}
    hidden = {c.id: c.source for c in src.cells if c.id.startswith("test_")}
    assert tests.keys() == hidden.keys() and len(tests) == 12
    for cid, source in hidden.items():
        assert BEGIN_HIDDEN in source and END_HIDDEN in source
        assert released_source(source) == tests[cid], cid
        assert "_pset_score" not in tests[cid]


def _setup_ns(course, lang: str = "en") -> dict:
    nb = nbformat.reads(notebook_text(course, "conv1", "s001", "s001", lang, "personal"), 4)
    ns: dict = {}
    exec(nb.cells[1].source, ns)
    return ns


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_a_ragged_list_is_named_as_such(tmp_path, lang):
    ns = _setup_ns(init_course(tmp_path / "c", students=1, seed=6), lang)
    ns["W"] = [[1, 2, 3], [4, 5]]
    msg = ns["_pset_format"]("W", "array", [2, 3], False)
    assert ("ragged list" if lang == "en" else "разной длины") in msg
    ns["W"] = {"a": 1}
    assert "dict" in ns["_pset_format"]("W", "array", [2, 3], False)
    ns["W"] = np.zeros((2, 3))
    assert ns["_pset_format"]("W", "array", [2, 3], False) == ""


def test_selfcheck_prints_one_line_per_answer_and_test_cell_raises_only_in_validate(
        tmp_path, monkeypatch, capsys):
    course = init_course(tmp_path / "c", students=1, seed=7)
    ns = _setup_ns(course)
    spec = ns["_PSET_SPEC"]
    names = [name for name, *_ in spec[1]]
    ns["_pset_selfcheck"](1)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(names) + 1 and all(n in o for n, o in zip(names, out, strict=False))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert ns["_pset_check"](1, names[0]) is None            # Jupyter: quiet
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert ns["_pset_check"](1, names[0]) is None            # the hidden test scores
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    with pytest.raises(Exception) as err:
        ns["_pset_check"](1, names[0])
    assert type(err.value).__name__ == "AnswerFormatError"
    assert err.value._render_traceback_() == [str(err.value)] and names[0] in str(err.value)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
               max_size=600))
def test_wrapped_verdicts_keep_every_word_and_fit(message):
    text = verdict_text("en", "W_1", 1.5, 3, message)
    for line in text.splitlines():
        assert len(line) <= WRAP
    assert "".join(text.split()) == "".join(
        f"W_1: 1.5 / 3 — {message}".split())               # nothing lost, nothing added
    assert wrapped("short") == "short"


def test_gradebook_gets_roster_students_only(tmp_path):
    """A graded id the roster lacks (a collected `submitted/mallory/`) is listed, never
    written to nbgrader's gradebook as "None, None mallory"."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from nbgrader.api import Gradebook

    from convpset.integrations.nbgrader.gradebook import after_grade
    from convpset.notebooks.course import load_course

    root = tmp_path / "c"
    init_course(root, students=2, seed=8)
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "20000",
           "NO_COLOR": "1", "TERM": "dumb"}
    subprocess.run([str(bin_dir / "pset"), "generate", "conv1", "--course", str(root)],
                   check=True, capture_output=True, timeout=300, env=env)
    r = subprocess.run([str(bin_dir / "nbgrader"), "generate_assignment", "conv1"], cwd=root,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    for sid in ("s001", "mallory"):
        dest = root / "submitted" / sid / "conv1"
        dest.mkdir(parents=True)
        shutil.copy(root / "personalized" / "s001" / "conv1" / "conv1.ipynb", dest / "conv1.ipynb")
    r = subprocess.run([str(bin_dir / "grade"), str(root / "submitted"), "--course", str(root)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "mallory" in r.stdout and "not written to the gradebook" in r.stdout
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        ids = sorted(s.id for s in gb.students)
        assert ids == ["s001", "s002"]
        assert gb.find_submission("conv1", "s001").max_score == 21
    assert not (root / "autograded" / "mallory").exists()
    assert after_grade(load_course(root), "conv1", [], None, "en", False)


@pytest.mark.parametrize(("value", "lengths"), [([[1, 2, 3], [4, 5]], "2, 3"),
                                                 ([[1], [2, 3], [4, 5, 6]], "1, 2, 3")])
def test_grade_names_a_ragged_list_answer(tmp_path, value, lengths):
    """`grade`'s judge (the same conversion as the sandbox) says "a ragged list", with the
    row lengths, for an array answer given as rows of different lengths."""
    from convpset.autograder.nbgrader_bridge import submitted_from
    from convpset.notebooks.variants import problems_for

    course = init_course(tmp_path / "c", students=1, seed=3)
    prob = problems_for(course, course.assignment("conv1"), "s001")[0]
    name = prob.parts()[0].name
    [first, *_] = prob.judge({name: submitted_from({name: value}, name)})
    assert first.status == "format_error" and first.score == 0
    assert "ragged list" in first.message["en"] and f"row lengths {lengths}" in first.message["en"]
    assert "разной длины" in first.message["ru"] and "found list" not in first.message["en"]


class _Source:
    def __init__(self, source: str, checksum: str) -> None:
        self.source, self.checksum, self.cell_type, self.locked = source, checksum, "code", True


class _Gradebook:
    """The two look-ups OverwriteCells makes, for one cell."""

    def __init__(self, source: _Source, points: float) -> None:
        self.source, self.points = source, points

    def find_source_cell(self, *_):
        return self.source

    def find_graded_cell(self, *_):
        return type("G", (), {"max_score": self.points})()


def test_overwrite_warns_only_for_a_test_cell_the_student_changed(tmp_path, monkeypatch):
    """The released cell (hidden test removed) is restored silently; a cell whose source
    the student edited still gets nbgrader's warning; both end with the hidden test."""
    from nbgrader import utils
    from nbgrader.preprocessors import OverwriteCells

    from convpset.integrations.nbgrader.autograde import OverwriteOurCells

    course = init_course(tmp_path / "c", students=1, seed=9)
    src = nbformat.reads(notebook_text(course, "conv1", "template", "template", "en", "source"), 4)
    personal = nbformat.reads(notebook_text(course, "conv1", "s001", "s001", "en", "personal"), 4)
    [hidden] = [c for c in src.cells if c.id == "test_1_W_1"]
    [given] = [c for c in personal.cells if c.id == "test_1_W_1"]
    warned: list[tuple[str, str]] = []
    monkeypatch.setattr(OverwriteCells, "report_change",
                        lambda self, name, attr, old, new: warned.append((name, attr)))
    pp = OverwriteOurCells()
    pp.gradebook = _Gradebook(_Source(hidden.source, utils.compute_checksum(hidden)),
                              hidden.metadata["nbgrader"]["points"])
    pp.notebook_id = pp.assignment_id = "conv1"
    cell, _ = pp.preprocess_cell(nbformat.from_dict(dict(given)), {}, 0)
    assert warned == [] and cell.source == hidden.source
    edited = nbformat.from_dict(dict(given))
    edited.source = given.source.replace("_pset_check", "print")
    cell, _ = pp.preprocess_cell(edited, {}, 0)
    assert warned == [("test_1_W_1", "checksum")] and cell.source == hidden.source
