"""The families added through the contract, every level, through the real tools:
``pset generate`` → ``pset simulate`` → ``grade`` → ``pset report``, in en and ru, and
real ``nbgrader autograde`` on a few of the same returns (its totals equal ours).

Each group of :data:`GROUPS` is one course (its families × three levels, 3 points each).
The simulated class includes students who answer with torch (each family's
``torch_answer``: autograd for the field, ``conv_transpose2d`` and its Jacobian,
``FlopCounterMode``, ``F.unfold``, shapes of ``conv2d`` on zeros), run in the sandbox like
any return.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb"}
#: one course per group (add a line for the next families)
GROUPS = {
    "notes": ("receptive_field", "transposed_conv", "conv_cost"),
    "issue23": ("im2col", "conv_design", "stacked_kernels"),
    "issue23b": ("conv_memory", "batchnorm"),
}
#: the title of each family's statement, as the feedback pages show it
TITLES = {
    "receptive_field": {"en": "Receptive field", "ru": "Рецептивное поле"},
    "transposed_conv": {"en": "Transposed convolution", "ru": "Транспонированная свёртка"},
    "conv_cost": {"en": "What a convolution costs", "ru": "Сколько стоит свёртка"},
    "im2col": {"en": "a convolution as one matrix product",
               "ru": "свёртка как одно умножение матриц"},
    "conv_design": {"en": "Designing a convolution", "ru": "Проектируем свёртку"},
    "stacked_kernels": {"en": "Small kernels stacked against one large kernel",
                        "ru": "Стопка маленьких ядер против одного большого"},
    "conv_memory": {"en": "Memory of a training step", "ru": "Память шага обучения"},
    "batchnorm": {"en": "Batch normalization", "ru": "Пакетная нормализация"},
}
N_STUDENTS = 12          # the simulation's first 12 kinds: correct, torch, lists, mistakes, …
#: the returns nbgrader grades too: correct, correct_torch, mistakes:0, partial
NBGRADER_STUDENTS = ("n000", "n001", "n002", "n004")
SAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "course" / "nbgrader_config.py"


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, env=ENV,
                          timeout=600)


def make_course(root: Path, lang: str, new: tuple[str, ...]) -> Path:
    root.mkdir(parents=True)
    probs = "\n".join(f'    {{ family = "{f}", level = {lv}, points = 3 }},'
                      for f in new for lv in (1, 2, 3))
    (root / "pset.toml").write_text(
        f'[course]\nname = "new-{lang}"\nsecret = "new-families-secret-{lang}-0123"\n'
        f'language = "{lang}"\nroster = "roster.csv"\n\n[assignments.new]\n'
        f'title = "New families"\nproblems = [\n{probs}\n]\n', encoding="utf-8")
    rows = ["student_id,first_name,last_name,email"] + [
        f"n{i:03d},First{i},Last{i},n{i}@example.edu" for i in range(N_STUDENTS)]
    (root / "roster.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module", params=[(g, lang) for g in GROUPS for lang in ("en", "ru")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def course(request, tmp_path_factory):
    group, lang = request.param
    new = GROUPS[group]
    root = make_course(tmp_path_factory.mktemp(f"new_{group}_{lang}") / "course", lang, new)
    for args in (("pset", "generate", "new", "--course", str(root), "--solutions"),
                 ("pset", "simulate", "new", "--course", str(root)),
                 # a cell limit a busy machine's first torch call cannot trip: this test
                 # compares grades with the simulation, not the sandbox's limits
                 ("grade", str(root / "submitted"), "--cell-timeout", "120"),
                 ("pset", "report", "new", "--course", str(root), "--lang", lang)):
        r = run(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert "Traceback" not in r.stderr
    return lang, root, new


@pytest.mark.slow
def test_grades_equal_the_simulated_scores(course):
    _, root, new = course
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
            assert float(rows[sid]["total"]) == s["max_score"] == 9 * len(new), (sid, rows[sid])


@pytest.mark.slow
def test_mistakes_are_named_in_the_course_language(course):
    from convpset.problems.text import render

    lang, root, new = course
    named: dict[str, set[str]] = {fam: set() for fam in new}
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
    for fam in new:
        assert TITLES[fam][lang] in pages, (fam, lang)


@pytest.mark.slow
def test_report_covers_every_new_family(course):
    lang, root, new = course
    page = (root / "grades" / "new" / "report.html").read_text(encoding="utf-8")
    for fam in new:
        assert fam in page
    if "receptive_field" in new:
        label = {"en": "final receptive field", "ru": "итоговое рецептивное поле"}[lang]
        assert label in page


@pytest.mark.slow
def test_nbgrader_autograde_agrees_with_grade(course, tmp_path):
    """Real ``nbgrader generate_assignment`` + ``autograde`` on four of the same returns
    (correct, torch, a named mistake, partial): every part's score from the hidden tests
    equals what ``grade`` wrote in its journal, and so do the totals."""
    import shutil

    from nbgrader.api import Gradebook

    from convpset.notebooks.cells import test_cell_id
    from convpset.problems.text import render
    from tests.test_course_family import nbgrader_autograde

    lang, root, new = course
    nbg = tmp_path / "course"
    shutil.copytree(root, nbg, ignore=shutil.ignore_patterns("submitted", "grades"))
    for sid in NBGRADER_STUDENTS:
        shutil.copytree(root / "submitted" / sid, nbg / "submitted" / sid)
    (nbg / "nbgrader_config.py").write_text(
        SAMPLE_CONFIG.read_text(encoding="utf-8").replace("sample-course", f"new-{lang}"),
        encoding="utf-8")
    nbgrader_autograde(nbg, "new", timeout=900)
    with open(root / "grades" / "new" / "grades.csv", newline="") as f:
        ours = {row["student_id"]: float(row["total"]) for row in csv.DictReader(f)}
    parts: dict[str, dict[str, float]] = {}
    for line in (root / "grades" / "new" / "journal.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("student_id") in NBGRADER_STUDENTS:
            parts[entry["student_id"]] = {
                test_cell_id(prob["number"], part["part"]): part["score"]
                for prob in entry.get("problems", []) for part in prob["parts"]}
    assert set(parts) == set(NBGRADER_STUDENTS)
    with Gradebook(f"sqlite:///{nbg / 'gradebook.db'}") as gb:
        theirs = {}
        for sid in NBGRADER_STUDENTS:
            sub = gb.find_submission("new", sid)
            cells = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
            for name, score in parts[sid].items():
                assert cells[name] == pytest.approx(score, abs=0.011), (sid, name)
            theirs[sid] = round(sub.score, 2)
    assert theirs == {sid: round(ours[sid], 2) for sid in NBGRADER_STUDENTS}
    # n001 answers with torch: for conv_design its own valid layer, not the key's
    full = 9 * len(new)
    assert theirs["n000"] == theirs["n001"] == full and theirs["n002"] < full
    # the autograded notebook shows our verdicts, never the hidden test code
    graded = nbformat.read(nbg / "autograded" / "n002" / "new" / "new.ipynb", as_version=4)
    assert not any("_pset_score" in c.source or "BEGIN HIDDEN" in c.source
                   for c in graded.cells)
    printed = {c.id: "".join(o.get("text", "") for o in c.get("outputs", []))
               for c in graded.cells if c.id in parts["n002"]}
    assert set(printed) == set(parts["n002"])
    for cell, text in printed.items():
        part = cell.split("_", 2)[2]
        head = render(lang, "nbgrader.part_verdict", part=part, score=f"{parts['n002'][cell]:g}",
                      max="\0", message="").split("\0")[0]        # "W_1: 2 / " in lang
        assert text.startswith(head), (cell, text)
