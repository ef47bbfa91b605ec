"""A formgrader manual score is an override (issue 24 §3, issue 21 §3): real nbgrader
gradebook, real formgrader handler code.

The manual score is set by running formgrader's own ``GradeHandler.put`` (the code
behind ``PUT /formgrader/api/grade/<id>``) on the course's gradebook; then ``grade
--nbgrader --regrade`` must keep it, count it in grades.csv, results.json, the feedback
page and the results archive, leave the student *not* needing manual grading (as
``NbGraderAPI`` reports it), record it once in the override history, and -- once the
override is removed with ``pset override --remove`` -- clear it again.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "course"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow      # real nbgrader and grading runs

ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb"}
A = "conv1"
SIMULATED = {d["student_id"]: d for d in
             json.loads((SAMPLE / "simulated.json").read_text(encoding="utf-8"))}
EMPTY = next(sid for sid, d in sorted(SIMULATED.items()) if d["kind"] == "empty")
CORRECT = next(sid for sid, d in sorted(SIMULATED.items()) if d["kind"] == "correct")
PART, CELL = "W_1", "test_1_W_1"
MANUAL = 1.5


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{args}: {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def tool(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = BIN / name
    return run(str(exe), *args, cwd=cwd)


class FormgraderRequest:
    """What formgrader's GradeHandler.put reads from its handler: a logged-in user, the
    XSRF token, the settings, the gradebook and the JSON body; what it writes is kept."""

    current_user = "instructor"
    xsrf_token = "token"
    settings = {"nbgrader_bad_setup": False}

    def __init__(self, gradebook, body: dict) -> None:
        self.gradebook = gradebook
        self.body = body
        self.written: list[str] = []

    def get_json_body(self) -> dict:
        return self.body

    def write(self, text: str) -> None:
        self.written.append(text)


def formgrader_set(root: Path, student: str, cell: str, score: float | None) -> dict:
    """PUT /formgrader/api/grade/<id> {"manual_score": score}, through formgrader's code."""
    from nbgrader.api import Gradebook
    from nbgrader.server_extensions.formgrader.apihandlers import GradeHandler

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        grade = gb.find_grade(cell, A, A, student)
        req = FormgraderRequest(gb, {"manual_score": score, "extra_credit": None})
        GradeHandler.put(req, grade.id)
        return json.loads(req.written[-1])


def gradebook_state(root: Path, student: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        sub = gb.find_submission(A, student)
        grades = {g.name: (g.auto_score, g.manual_score, g.needs_manual_grade)
                  for nb in sub.notebooks for g in nb.grades}
        return {"grades": grades, "score": sub.score, "needs_manual": sub.needs_manual_grade}


def api_submission(root: Path, student: str) -> dict:
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    cd = CourseDirectory(root=str(root))
    return NbGraderAPI(coursedir=cd).get_submission(A, student)


def grades(root: Path) -> dict[str, dict[str, str]]:
    with (root / "grades" / A / "grades.csv").open(encoding="utf-8", newline="") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("fg") / "course"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns(
        "submitted", "personalized*", "autograded", "feedback", "release", "grades",
        "gradebook.db", ".nbgrader.log"))
    for sid in (EMPTY, CORRECT):
        shutil.copytree(SAMPLE / "submitted" / sid, root / "submitted" / sid)
    tool("nbgrader", "generate_assignment", A, "--force", cwd=root)
    tool("grade", "submitted", "--nbgrader", "--jobs", "1", cwd=root)
    return root


def test_formgrader_manual_score_is_kept_and_counted(course):
    root = course
    before = grades(root)
    assert float(before[EMPTY][PART]) == 0.0
    raw_total = float(before[EMPTY]["total"])
    put = formgrader_set(root, EMPTY, CELL, MANUAL)
    assert put["manual_score"] == MANUAL and put["needs_manual_grade"] is False

    tool("grade", "submitted", "--nbgrader", "--regrade", "--jobs", "1", cwd=root)
    after = grades(root)
    assert float(after[EMPTY][PART]) == MANUAL
    assert float(after[EMPTY]["total"]) == pytest.approx(raw_total + MANUAL)
    assert "override" in after[EMPTY]["flags"] and "formgrader" in after[EMPTY]["overrides"]
    results = json.loads((root / "grades" / A / "results.json").read_text(encoding="utf-8"))
    assert results[EMPTY]["score"] == pytest.approx(raw_total + MANUAL)
    page = (root / "grades" / A / "feedback" / f"{EMPTY}.html").read_text(encoding="utf-8")
    assert "manual score set in formgrader" in page
    # the gradebook: the manual score untouched, nothing waits for manual grading
    state = gradebook_state(root, EMPTY)
    auto, manual, needs = state["grades"][CELL]
    assert (auto, manual, needs) == (0.0, MANUAL, False)
    assert not any(g[2] for g in state["grades"].values())
    assert state["score"] == pytest.approx(raw_total + MANUAL)
    api = api_submission(root, EMPTY)
    assert api["needs_manual_grade"] is False and api["score"] == pytest.approx(raw_total + MANUAL)
    # a second grade: no second history entry, still counted
    history = (root / "overrides.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(h)["source"] for h in history] == ["formgrader"]
    tool("grade", "submitted", "--nbgrader", "--jobs", "1", cwd=root)
    assert (root / "overrides.jsonl").read_text(encoding="utf-8").splitlines() == history
    assert float(grades(root)[EMPTY][PART]) == MANUAL
    # the results archive carries it too
    tool("pset", "export", A, "--to", "results-archive", cwd=root)
    archive = json.loads((root / "grades" / A / "exports" / "results-archive.json").read_text())
    assert archive[EMPTY]["score"] == pytest.approx(raw_total + MANUAL)
    assert archive[EMPTY]["extra_data"]["term"]["overrides"][PART]["source"] == "formgrader"


def test_cli_override_reaches_formgrader_and_removal_clears_it(course):
    root = course
    tool("pset", "override", A, CORRECT, PART, "-1", "--reason", "sign convention", cwd=root)
    tool("grade", "submitted", "--nbgrader", "--jobs", "1", cwd=root)
    g = grades(root)[CORRECT]
    top = float(g["max"])
    assert float(g[PART]) == 2.0 and float(g["total"]) == pytest.approx(top - 1)
    auto, manual, needs = gradebook_state(root, CORRECT)["grades"][CELL]
    assert (auto, manual, needs) == (3.0, 2.0, False)
    tool("pset", "override", A, CORRECT, PART, "--remove", "--reason", "misread", cwd=root)
    tool("grade", "submitted", "--nbgrader", "--jobs", "1", cwd=root)
    auto, manual, needs = gradebook_state(root, CORRECT)["grades"][CELL]
    assert (auto, manual, needs) == (3.0, None, False)
    assert float(grades(root)[CORRECT]["total"]) == pytest.approx(top)
    sources = [json.loads(h)["source"] for h in
               (root / "overrides.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sources.count("formgrader") == 1          # our own value was never read back
