"""``pset export`` without a template: Canvas and Moodle grade-import CSV files built from the
roster, and the per-student results archive."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_report import ASSIGNMENT, graded_sample  # noqa: E402

from convpset.autograder.outputs import Journal  # noqa: E402
from convpset.integrations.lms.export import (  # noqa: E402
    CANVAS_COLUMNS,
    MOODLE_COLUMNS,
    ExportRequest,
    canvas_csv,
)
from convpset.integrations.lms.export import export as run_export  # noqa: E402
from convpset.notebooks.course import load_course  # noqa: E402

PSET = str(Path(sys.executable).with_name("pset"))
TITLE = "Convolutions by hand"
TABLES = ("canvas", "moodle", "results-archive")
# Gradescope's results.json keys (the archive keeps that per-student shape).
GS_TOP = {"score", "max_score", "execution_time", "output", "output_format", "visibility",
          "stdout_visibility", "extra_data", "tests", "leaderboard"}
GS_TEST = {"score", "max_score", "status", "name", "name_format", "number", "output",
           "output_format", "tags", "visibility", "extra_data"}


def export(course, assignment, system, grades, out=None):
    return run_export(course, assignment, ExportRequest(system, grades, out)).path


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return graded_sample(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(sample, tmp_path_factory):
    course, grades = sample
    out = tmp_path_factory.mktemp("exports")
    c = load_course(course)
    export(c, ASSIGNMENT, "moodle", grades, grades / "exports_lib")
    return {s: export(c, ASSIGNMENT, s, grades, out) for s in TABLES}


@pytest.fixture(scope="module")
def roster(sample):
    return load_course(sample[0]).roster()


@pytest.fixture(scope="module")
def grades_csv(sample):
    with (sample[1] / "grades.csv").open(encoding="utf-8", newline="") as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh)}


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_file_names(exported):
    assert {s: p.name for s, p in exported.items()} == {
        "canvas": "canvas.csv", "moodle": "moodle.csv", "results-archive": "results-archive.json"}


def test_canvas(exported, roster):
    """The sample roster has no lms_user_id column: Canvas could only match its rows by
    name, so none is written (tests/test_lms_import.py has a roster with Canvas ids)."""
    rows = _rows(exported["canvas"])
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", TITLE]
    assert rows[0][:5] == CANVAS_COLUMNS
    assert rows[1][0].strip() == "Points Possible" and float(rows[1][5]) == 21
    assert rows[2:] == []


def test_canvas_assignment_id(sample):
    course, grades = sample
    c = load_course(course)
    text, report = canvas_csv(c, ASSIGNMENT, Journal(grades).load(), canvas_id="7148451")
    assert next(csv.reader(io.StringIO(text)))[-1] == f"{TITLE} (7148451)"
    assert len(report.left_out) == len(c.roster()) and report.filled == 0


def test_moodle(exported, roster, grades_csv):
    rows = list(csv.DictReader(exported["moodle"].open(encoding="utf-8", newline="")))
    header = _rows(exported["moodle"])[0]
    assert header == ["First name", "Last name", "ID number", "Email address", TITLE]
    assert header[:4] == MOODLE_COLUMNS
    written = [s for s in roster if s.student_id in grades_csv and s.email]
    assert [r["Email address"] for r in rows] == [s.email for s in written]
    for r, s in zip(rows, written, strict=True):
        assert (r["First name"], r["Last name"], r["ID number"]) == (
            s.first_name, s.last_name, s.student_id)
        assert float(r[TITLE]) == float(grades_csv[s.student_id]["total"])


def test_results_archive(exported, roster, grades_csv):
    data = json.loads(exported["results-archive"].read_text(encoding="utf-8"))
    assert list(data) == sorted(s.student_id for s in roster)
    for s in roster:
        e = data[s.student_id]
        assert set(e) <= GS_TOP and {"score", "tests"} <= set(e)
        assert isinstance(e["score"], int | float) and isinstance(e["max_score"], int | float)
        assert e["score"] == pytest.approx(float(grades_csv[s.student_id]["total"]))
        assert e["max_score"] == pytest.approx(float(grades_csv[s.student_id]["max"]))
        assert e["extra_data"]["student_id"] == s.student_id
        assert e["extra_data"]["email"] == s.email
        assert e["tests"], "one test per answer part"
        for tst in e["tests"]:
            assert set(tst) <= GS_TEST and {"name", "score", "max_score", "status"} <= set(tst)
            assert tst["status"] in ("passed", "failed")
            assert 0 <= tst["score"] <= tst["max_score"]
        assert sum(x["score"] for x in e["tests"]) == pytest.approx(e["score"], abs=0.05)


def test_student_without_result(sample, tmp_path):
    """A roster student missing from the journal: left out of the CSV (an empty cell
    would clear the LMS's grade) and listed, zero in the archive."""
    course, grades = sample
    lines = (grades / "journal.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if json.loads(ln)["student_id"] != "s001"]
    g = tmp_path / "g"
    g.mkdir()
    (g / "journal.jsonl").write_text("".join(kept), encoding="utf-8")
    c = load_course(course)
    res = run_export(c, ASSIGNMENT, ExportRequest("moodle", g, None))
    assert "s001" not in {r[2] for r in _rows(res.path)}
    assert any("s001" in x and "not graded" in x for x in res.filled.left_out)
    gs = json.loads(export(c, ASSIGNMENT, "results-archive", g).read_text(encoding="utf-8"))
    assert gs["s001"]["score"] == 0 and gs["s001"]["tests"] == []
    assert (g / "exports" / "results-archive.json").is_file()


def test_cli(sample, exported, tmp_path):
    course, grades = sample
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "moodle", "--course", str(course),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "moodle.csv").read_text(encoding="utf-8") == (
        grades / "exports_lib" / "moodle.csv").read_text(encoding="utf-8")
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "blackboard", "--course", str(course)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and ("--to must be one of canvas, moodle, results-archive, "
                                  "gradescope-autograder" in r.stderr)
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "gradescope", "--course", str(course)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "found 'gradescope'" in r.stderr, "the old name is gone"
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "canvas", "--course", str(course),
                        "--grades", str(tmp_path / "none")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "not found" in r.stderr
