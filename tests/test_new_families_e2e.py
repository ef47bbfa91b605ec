"""The families added through the contract alone (receptive_field, transposed_conv,
conv_cost, conv_memory, batchnorm) at every level, through the real tools:
``pset generate`` → ``pset simulate`` → ``grade`` → ``pset report``, in en and ru, and
the same returns under real ``nbgrader autograde``.

The simulated class includes students who answer with torch (each family's
``torch_answer``: autograd for the field, ``conv_transpose2d`` and its Jacobian,
``FlopCounterMode``), run in the sandbox like any return.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb"}
NEW = ("receptive_field", "transposed_conv", "conv_cost",
       "conv_memory", "batchnorm")
N_STUDENTS = 12          # the simulation's first 12 kinds: correct, torch, lists, mistakes, …


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, env=ENV,
                          timeout=600)


def make_course(root: Path, lang: str) -> Path:
    root.mkdir(parents=True)
    probs = "\n".join(f'    {{ family = "{f}", level = {lv}, points = 3 }},'
                      for f in NEW for lv in (1, 2, 3))
    (root / "pset.toml").write_text(
        f'[course]\nname = "new-{lang}"\nsecret = "new-families-secret-{lang}-0123"\n'
        f'language = "{lang}"\nroster = "roster.csv"\n\n[assignments.new]\n'
        f'title = "New families"\nproblems = [\n{probs}\n]\n', encoding="utf-8")
    rows = ["student_id,first_name,last_name,email"] + [
        f"n{i:03d},First{i},Last{i},n{i}@example.edu" for i in range(N_STUDENTS)]
    (root / "roster.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module", params=["en", "ru"])
def course(request, tmp_path_factory):
    lang = request.param
    root = make_course(tmp_path_factory.mktemp(f"new_{lang}") / "course", lang)
    for args in (("pset", "generate", "new", "--course", str(root), "--solutions"),
                 ("pset", "simulate", "new", "--course", str(root)),
                 # a cell limit a busy machine's first torch call cannot trip: this test
                 # compares grades with the simulation, not the sandbox's limits
                 ("grade", str(root / "submitted"), "--cell-timeout", "120"),
                 ("pset", "report", "new", "--course", str(root), "--lang", lang)):
        r = run(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert "Traceback" not in r.stderr
    return lang, root


@pytest.mark.slow
def test_grades_equal_the_simulated_scores(course):
    _, root = course
    sim = {s["student_id"]: s for s in json.loads((root / "simulated.json").read_text())}
    with open(root / "grades" / "new" / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(sim)
    kinds = {s["kind"] for s in sim.values()}
    assert {"correct", "correct_torch", "correct_lists"} <= kinds
    for sid, s in sim.items():
        if s["expected_score"] is not None:
            assert abs(float(rows[sid]["total"]) - s["expected_score"]) < 0.011, (sid, s)
        if s["kind"].startswith("correct"):
            assert float(rows[sid]["total"]) == s["max_score"] == 9 * len(NEW), (sid, rows[sid])


@pytest.mark.slow
def test_mistakes_are_named_in_the_course_language(course):
    from convpset.problems.text import render

    lang, root = course
    named: dict[str, set[str]] = {fam: set() for fam in NEW}
    for line in (root / "grades" / "new" / "journal.jsonl").read_text().splitlines():
        for prob in json.loads(line).get("problems", []):
            for part in prob["parts"]:
                if part["mistake"]:
                    named[prob["family"]].add(part["mistake"])
                    text = part["message"][lang]
                    if "{{" not in render("en", f"{prob['family']}.mistake.{part['mistake']}"):
                        # the family's own sentence, then the course's credit rule
                        assert text == " ".join([
                            render(lang, f"{prob['family']}.mistake.{part['mistake']}"),
                            render(lang, "credit.partial")])
    assert all(named.values()), named
    pages = "".join(p.read_text(encoding="utf-8")
                    for p in (root / "grades" / "new" / "feedback").glob("*.html"))
    if lang == "ru":
        assert "Рецептивное поле" in pages
        assert "Транспонированная свёртка" in pages and "Сколько стоит свёртка" in pages
        assert "Память шага обучения" in pages and "Пакетная нормализация" in pages
    else:
        assert "Receptive field" in pages and "Transposed convolution" in pages
        assert "Memory of a training step" in pages and "Batch normalization" in pages


@pytest.mark.slow
def test_report_covers_every_new_family(course):
    lang, root = course
    page = (root / "grades" / "new" / "report.html").read_text(encoding="utf-8")
    for fam in NEW:
        assert fam in page
    label = {"en": "final receptive field", "ru": "итоговое рецептивное поле"}[lang]
    assert label in page


#: the kinds whose notebooks are run under nbgrader as they are (swapped returns are
#: graded by path in both, but their stamps are another student's: left to test_nbgrader)
NBGRADER_KINDS = ("correct", "correct_torch", "correct_lists", "partial", "empty",
                  "wrong_format", "mistakes:0", "mistakes:1", "mistakes:2", "mistakes:3")


@pytest.mark.slow
def test_nbgrader_autograde_agrees_with_grade(course, tmp_path):
    """Real `nbgrader generate_assignment` + `autograde` on a copy of the graded course:
    every part's score from the hidden tests equals what `grade` wrote in its journal."""
    import shutil

    from nbgrader.api import Gradebook

    from convpset.notebooks.cells import test_cell_id

    lang, root = course
    copy = tmp_path / "course"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("grades", "feedback"))
    sim = {s["student_id"]: s["kind"] for s in json.loads((root / "simulated.json").read_text())}
    keep = {sid for sid, kind in sim.items() if kind in NBGRADER_KINDS}
    for sid in set(sim) - keep:
        shutil.rmtree(copy / "submitted" / sid)
    assert run("pset", "nbgrader", "config", "--course", str(copy),
               "--course-id", f"new-{lang}").returncode == 0
    env = {**ENV, "PATH": f"{BIN}{os.pathsep}{ENV.get('PATH', '')}"}
    for args in (("generate_assignment", "new", "--force"),
                 ("autograde", "new", "--create", "--force")):
        r = subprocess.run([str(BIN / "nbgrader"), *args], cwd=copy, env=env,
                           capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stderr[-3000:]
    ours: dict[str, dict[str, float]] = {}
    for line in (root / "grades" / "new" / "journal.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("student_id") in keep:
            ours[entry["student_id"]] = {
                test_cell_id(prob["number"], part["part"]): part["score"]
                for prob in entry.get("problems", []) for part in prob["parts"]}
    assert set(ours) == keep
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}") as gb:
        for sid in sorted(keep):
            sub = gb.find_submission("new", sid)
            theirs = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
            for name, score in ours[sid].items():
                assert theirs[name] == pytest.approx(score, abs=0.011), (sid, sim[sid], name)
            assert sub.score == pytest.approx(sum(ours[sid].values()), abs=0.05), sid
