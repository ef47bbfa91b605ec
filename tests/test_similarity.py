"""Copied answers: a wrong answer that is exactly another roster student's right answer
is flagged ``answers_match`` for the instructor, never shown to either student."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convpset.autograder import similarity
from convpset.autograder.batch import BatchOptions, grade_folder
from convpset.autograder.outputs import Journal
from convpset.autograder.report import build_report
from convpset.autograder.sandbox import Limits
from convpset.notebooks.build import answer_cell_id
from convpset.notebooks.course import init_course, load_course
from convpset.notebooks.simulate import simulate
from convpset.problems.base import Part


def _p(right: dict, wrong: dict | None = None) -> dict:
    return {"right": right, "wrong": wrong or {}}


def test_copier_is_flagged_and_the_source_is_not():
    prints = {"a": _p({"W_1": "ha", "n_2": "3"}),
              "b": _p({"W_1": "hb", "n_2": "3"}, {"W_1": "ha"}),
              "c": _p({"W_1": "hc", "n_2": "4"}),
              "d": _p({"W_1": "hd", "n_2": "3"})}
    f = similarity.find_matches(prints)
    assert f.matches == [similarity.Match("b", "a", "W_1")]
    assert f.pairs() == [("b", "a", ["W_1"])]


def test_parts_whose_answers_coincide_across_variants_are_no_evidence():
    # n_2's right answers: 2 distinct values over 6 students -> ignored, even if unique
    prints = {s: _p({"W_1": f"h{s}", "n_2": "3" if s in "abcde" else "9"}) for s in "abcdef"}
    prints["b"]["wrong"] = {"n_2": "9", "W_1": "hz"}       # 'hz' is nobody's right answer
    f = similarity.find_matches(prints)
    assert f.matches == [] and f.ignored_parts == ["n_2"]


def test_an_answer_right_for_several_variants_names_nobody():
    prints = {s: _p({"W_1": f"h{s}"}) for s in "abcdefgh"}
    prints["a"]["right"]["W_1"] = prints["b"]["right"]["W_1"] = "shared"
    prints["c"]["wrong"] = {"W_1": "shared"}
    assert similarity.find_matches(prints).matches == []


def test_clusters_link_three_or_more():
    prints = {s: _p({"W_1": f"h{s}", "y_1": f"y{s}"}) for s in "abcde"}
    prints["b"]["wrong"] = {"W_1": "ha"}
    prints["c"]["wrong"] = {"y_1": "yb"}
    f = similarity.find_matches(prints)
    assert f.clusters() == [["a", "b", "c"]]


def test_prints_equal_within_tolerance_only():
    part = Part("Y_5", "array", 2.0, {"en": "", "ru": ""}, shape=(2,), rtol=1e-3, atol=5e-3)
    a = similarity.value_print(part, np.array([7 / 9, -0.0]))
    assert a == similarity.value_print(part, np.array([0.78, 0.0]))
    assert a != similarity.value_print(part, np.array([0.75, 0.0]))
    ints = Part("total_2", "int", 1.0, {"en": "", "ru": ""}, dtype="int")
    assert similarity.value_print(ints, 44426) == similarity.value_print(ints, 44426.0)
    assert similarity.value_print(ints, 44426) != similarity.value_print(ints, 44427)


def test_cost_is_linear_in_students_times_parts():
    """Not a timing: the index holds one entry per (student, part) right answer."""
    prints = {f"s{i}": _p({f"p{j}": f"{i}-{j}" for j in range(10)}) for i in range(2000)}
    prints["s1"]["wrong"] = {"p3": "7-3"}
    f = similarity.find_matches(prints)
    assert f.matches == [similarity.Match("s1", "s7", "p3")]


@pytest.mark.slow
def test_batch_flags_the_copier_for_the_instructor_only(tmp_path):
    c = init_course(tmp_path / "course", students=6, seed=5)
    simulate(c, "conv1")            # s001 correct (literal values) ... s006 empty
    sub = c.root / "submitted"
    src = json.loads((sub / "s001/conv1/conv1.ipynb").read_text())
    dst_path = sub / "s006/conv1/conv1.ipynb"
    dst = json.loads(dst_path.read_text())
    answers = {cell["id"]: cell["source"] for cell in src["cells"]
               if cell.get("id", "").startswith("answer_")}
    for cell in dst["cells"]:
        if cell.get("id") in answers:
            cell["source"] = answers[cell["id"]]
    dst_path.write_text(json.dumps(dst))
    assert answer_cell_id(1) in answers

    course = load_course(c.root)
    out = c.root / "grades" / "conv1"
    grade_folder(sub, course, "conv1", BatchOptions(out=out, jobs=1,
                                                    limits=Limits(wall_s=30, cell_s=2, cpu_s=5)))
    rows = similarity.apply_saved(out, Journal(out).load())
    assert similarity.MATCH in rows["s006"].flags
    details = rows["s006"].extra[similarity.MATCH]
    assert details["sources"] == ["s001"] and len(details["parts"]) >= 3
    assert "s001" in details["note"]["en"] and "s001" in details["note"]["ru"]
    saved = json.loads((out / similarity.FILE).read_text())
    assert saved["pairs"] == [{"student": "s006", "source": "s001", "parts": details["parts"]}]
    # the journal stays the record of grading: one line per graded notebook
    assert len((out / "journal.jsonl").read_text().splitlines()) == 6
    flagged = {sid for sid, r in rows.items() if similarity.MATCH in r.flags}
    assert flagged == {"s006"}                      # the source s001 is not flagged
    csv_row = next(ln for ln in (out / "grades.csv").read_text().splitlines()
                   if ln.startswith("s006,"))
    assert "answers_match" in csv_row
    # never in either student's feedback page, nor in results.json
    for sid in ("s001", "s006"):
        page = (out / "feedback" / f"{sid}.html").read_text()
        assert "answers_match" not in page and ("s006" if sid == "s001" else "s001") not in page
    results = (out / "results.json").read_text()
    assert "answers_match" not in results
    # the instructor's report lists the pair
    html = build_report(course, "conv1", out, "en")
    assert 'id="copied"' in html and 'data-student="s006"' in html
    section = html[html.index('id="copied"'):]
    assert "s001" in section.split("</table>")[0]
    # a second run (nothing to grade) keeps the flag, once
    grade_folder(sub, course, "conv1", BatchOptions(out=out, jobs=1))
    again = similarity.apply_saved(out, Journal(out).load())
    assert again["s006"].flags.count(similarity.MATCH) == 1
    assert (out / "grades.csv").read_text().count("answers_match") == 1
