"""Real nbgrader against our notebooks: generate_assignment, autograde (hidden tests call
autograder.nbgrader_bridge), and agreement with our own grader and its gradebook export.

SLOW: this module runs the nbgrader CLI (one Jupyter kernel per submission, about ten
seconds each) on a tmp copy of the sample course; expect two to four minutes. It is not
skipped: it is the only check that our notebooks work under real nbgrader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from convpset.autograder.batch import BatchOptions, grade_folder
from convpset.notebooks.build import test_cell_id as grade_cell_id
from convpset.notebooks.course import load_course
from convpset.notebooks.variants import problems_for

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "course"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb"}
ASSIGNMENT = "conv1"

EXPECTED = {d["student_id"]: d for d in
            json.loads((SAMPLE / "simulated.json").read_text(encoding="utf-8"))}
KINDS = {"correct", "correct_torch", "correct_lists", "mistakes:0", "partial", "empty",
         "wrong_format", "edited_data", "tampered_stamp", "swap_a", "raises"}
FIRST_OF_KIND: dict[str, str] = {}
for _sid, _d in EXPECTED.items():
    if _d["kind"] in KINDS:
        FIRST_OF_KIND.setdefault(_d["kind"], _sid)
STUDENTS = sorted(FIRST_OF_KIND.values())
assert len(STUDENTS) == len(KINDS), STUDENTS


def run(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"{args} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


def nbgrader(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = BIN / "nbgrader"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "nbgrader"]
    return run(*cmd, *args, cwd=cwd)


def copy_course(dest: Path, students: list[str]) -> Path:
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns(
        "submitted", "personalized*", "autograded", "feedback", "release", "grades",
        "gradebook.db", ".nbgrader.log"))
    for sid in students:
        shutil.copytree(SAMPLE / "submitted" / sid, dest / "submitted" / sid)
    return dest


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    """(autograded course, course with only the assignment released) — both tmp copies."""
    base = tmp_path_factory.mktemp("nbgrader")
    course = copy_course(base / "course", STUDENTS)
    nbgrader("generate_assignment", ASSIGNMENT, "--force", cwd=course)
    fresh = base / "fresh"
    shutil.copytree(course, fresh)
    nbgrader("autograde", ASSIGNMENT, "--create", "--force", cwd=course)
    return course, fresh


def gradebook_scores(root: Path) -> dict[str, dict[str, float | None]]:
    """student -> {grade cell name: auto score, "total": score} from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    out: dict[str, dict[str, float | None]] = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            row: dict[str, float | None] = {"total": round(sub.score, 2)}
            for nb in sub.notebooks:
                for g in nb.grades:
                    row[g.name] = None if g.auto_score is None else round(g.auto_score, 2)
            out[sub.student.id] = row
    return out


def our_scores(results) -> dict[str, dict[str, float]]:
    out = {}
    for r in results:
        row = {grade_cell_id(p.number, part.part): round(part.score, 2)
               for p in r.problems for part in p.parts}
        row["total"] = round(r.score, 2)
        out[r.student_id] = row
    return out


@pytest.fixture(scope="module")
def ours(courses, tmp_path_factory):
    course, _ = courses
    c = load_course(course)
    report = grade_folder(course / "submitted", c, ASSIGNMENT,
                          BatchOptions(out=tmp_path_factory.mktemp("ours"), jobs=2))
    return {sid: row for sid, row in our_scores(report.results).items() if sid in STUDENTS}


def test_release_has_no_solutions_or_hidden_tests(courses):
    course, _ = courses
    release = course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    text = release.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "_pset_score",
                   "nbgrader_bridge"):
        assert marker not in text, marker
    nb = nbformat.reads(text, as_version=4)
    source = nbformat.read(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    assert [c.id for c in nb.cells] == [c.id for c in source.cells]
    answers = [c for c in nb.cells if c.id.startswith("answer_")]
    assert len(answers) == 5
    assert all("raise NotImplementedError()" in c.source for c in answers)
    c = load_course(course)
    parts = [(p.number, part) for p in problems_for(c, c.assignment(ASSIGNMENT), "template")
             for part in p.parts()]
    tests = [c for c in nb.cells if c.id.startswith("test_")]
    assert [t.id for t in tests] == [grade_cell_id(n, part.name) for n, part in parts]
    assert all(t.metadata.nbgrader["locked"] and t.metadata.nbgrader["grade"] for t in tests)
    assert sum(t.metadata.nbgrader["points"] for t in tests) == pytest.approx(21.0)


def test_autograde_totals_match_simulated(courses):
    course, _ = courses
    got = gradebook_scores(course)
    assert sorted(got) == STUDENTS
    for sid in STUDENTS:
        want = EXPECTED[sid]
        assert got[sid]["total"] == pytest.approx(want["expected_score"], abs=0.011), (
            sid, want["kind"], got[sid])
        kind = want["kind"]
        if kind.startswith("correct"):
            assert got[sid]["total"] == pytest.approx(21.0)
        if kind == "empty":
            assert got[sid]["total"] == 0.0
        if kind.startswith("mistakes"):
            assert 0 < got[sid]["total"] < 21
        # nbgrader graded every test cell automatically (no manual grading left)
        assert all(v is not None for v in got[sid].values()), got[sid]


def test_autograded_notebooks_keep_personal_numbers(courses):
    """nbgrader restores locked cells only: the student's data cells survive autograde."""
    course, _ = courses
    for sid in STUDENTS:
        if EXPECTED[sid]["kind"] in ("edited_data",):
            continue
        sub = nbformat.read(course / "submitted" / sid / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                            as_version=4)
        auto = nbformat.read(course / "autograded" / sid / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                             as_version=4)
        data = {c.id: c.source for c in sub.cells if c.id.startswith("data_")}
        assert data and data == {c.id: c.source for c in auto.cells if c.id.startswith("data_")}
        for c in auto.cells:
            if c.id.startswith("test_"):
                assert not any(o.output_type == "error" for o in c.outputs), (sid, c.id)


def test_our_grader_agrees_with_nbgrader(courses, ours):
    course, _ = courses
    theirs = gradebook_scores(course)
    assert sorted(ours) == STUDENTS
    for sid in STUDENTS:
        assert ours[sid]["total"] == pytest.approx(EXPECTED[sid]["expected_score"], abs=0.011)
        assert set(ours[sid]) == set(theirs[sid]), sid
        for cell, score in ours[sid].items():
            assert theirs[sid][cell] == pytest.approx(score, abs=0.011), (
                sid, EXPECTED[sid]["kind"], cell, score, theirs[sid][cell])


def test_grade_cli_writes_gradebook(courses, ours, tmp_path):
    """`grade --nbgrader` on a course where nbgrader never autograded: same scores."""
    _, fresh = courses
    assert gradebook_scores(fresh) == {}
    grade = BIN / "grade"
    cmd = [str(grade)] if grade.exists() else [
        sys.executable, "-c", "from convpset.cli import grade_main; grade_main()"]
    r = run(*cmd, "submitted", "--out", str(tmp_path / "out"), "--jobs", "2", "--nbgrader",
            cwd=fresh)
    assert "nbgrader: wrote" in r.stdout, r.stdout[-2000:]
    written = gradebook_scores(fresh)
    for sid in STUDENTS:
        assert sid in written, sid
        for cell, score in ours[sid].items():
            assert written[sid][cell] == pytest.approx(score, abs=0.011), (sid, cell)
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    for sid in STUDENTS:
        assert results[sid]["score"] == pytest.approx(ours[sid]["total"])
