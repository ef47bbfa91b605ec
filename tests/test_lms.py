"""Canvas and Moodle: our totals filled into the instructor's own gradebook export
(made-up exports in each LMS's documented format, tests/data/), checked cell by cell."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_report import ASSIGNMENT, graded_sample  # noqa: E402

from convpset.autograder.outputs import Journal  # noqa: E402
from convpset.integrations.lms.export import ExportRequest, export  # noqa: E402
from convpset.notebooks.course import CourseError, load_course  # noqa: E402

DATA = ROOT / "tests" / "data"
CANVAS = DATA / "canvas_gradebook.csv"
MOODLE = DATA / "moodle_grades.csv"
PSET = str(Path(sys.executable).with_name("pset"))
CANVAS_COL = "Convolutions by hand (7148451)"
MOODLE_COL = "Assignment: Convolutions by hand (Real)"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return graded_sample(tmp_path_factory)


@pytest.fixture(scope="module")
def results(sample):
    return Journal(sample[1]).load()


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _fill(sample, tmp_path, system, template, **kw):
    course, grades = sample
    req = ExportRequest(system, grades, tmp_path, template=template, **kw)
    return export(load_course(course), ASSIGNMENT, req)


def _check_cells(before: list[list[str]], after: list[list[str]], col: int,
                 expected: dict[int, str]) -> None:
    """Every cell as it was, except our column in the rows of ``expected``."""
    assert len(after) == len(before)
    for r, (old, new) in enumerate(zip(before, after, strict=True)):
        assert len(new) == len(old), f"row {r}"
        for c, (x, y) in enumerate(zip(old, new, strict=True)):
            want = expected[r] if (c == col and r in expected) else x
            assert y == want, f"row {r} column {c}: {y!r}, expected {want!r}"


def test_canvas_filled_cell_by_cell(sample, results, tmp_path):
    out = _fill(sample, tmp_path, "canvas", CANVAS)
    data, before_bytes = out.path.read_bytes(), CANVAS.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\r\n") == before_bytes.count(b"\r\n")
    before, after = _rows(before_bytes), _rows(data)
    col = before[0].index(CANVAS_COL)
    score = {sid: f"{r.score:g}" for sid, r in results.items()}
    # row 2 SIS User ID, row 3 SIS Login ID = id, row 4 login = email, row 5 unique name
    # (the SIS ids are unknown to us), row 7 SIS User ID; row 6 "Ivanova, Anna" is two
    # roster students (s001, s021) and no id: left alone, as are a student who is not on
    # the roster (row 8, their old grade kept) and Canvas's test student (row 9)
    expected = {2: score["s001"], 3: score["s002"], 4: score["s003"], 5: score["s013"],
                7: score["s005"]}
    _check_cells(before, after, col, expected)
    assert after[5][col] != "3.00", "a matched student's old cell is replaced"
    f = out.filled
    assert f.matched_by == {"s001": "SIS User ID", "s002": "SIS Login ID", "s003": "email",
                            "s013": "name", "s005": "SIS User ID"}
    assert (f.filled, f.rows, f.column) == (5, 8, CANVAS_COL)
    assert f.unmatched == sorted(set(results) - set(f.matched_by)) and "s021" in f.unmatched
    # Points Possible 21.00 equals our maximum: the one warning names the name-only match
    assert len(f.warnings) == 1 and "by name only" in f.warnings[0] and "s013" in f.warnings[0]


def test_canvas_student_without_grade_stays_as_exported(sample, tmp_path):
    course, grades = sample
    lines = (grades / "journal.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    g = tmp_path / "g"
    g.mkdir()
    (g / "journal.jsonl").write_text("".join(ln for ln in lines if '"s002"' not in ln),
                                     encoding="utf-8")
    req = ExportRequest("canvas", g, tmp_path, template=CANVAS)
    out = export(load_course(course), ASSIGNMENT, req)
    after, before = _rows(out.path.read_bytes()), _rows(CANVAS.read_bytes())
    col = before[0].index(CANVAS_COL)
    assert after[3][col] == before[3][col] == ""
    assert "s002" not in out.filled.matched_by and "s002" not in out.filled.unmatched


def test_canvas_column_option_and_points_warning(sample, tmp_path):
    out = _fill(sample, tmp_path, "canvas", CANVAS, column="Warm-up quiz")
    before, after = _rows(CANVAS.read_bytes()), _rows(out.path.read_bytes())
    col = before[0].index("Warm-up quiz (7148450)")
    assert out.filled.column == "Warm-up quiz (7148450)"
    assert after[2][col] != before[2][col]
    assert after[2][before[0].index(CANVAS_COL)] == ""
    assert [w for w in out.filled.warnings if "10.00" in w and "worth" in w] != []


@pytest.mark.parametrize("kw,needle", [
    ({"column": "Final exam"}, 'no column "Final exam"'),
    ({"column": "Current Score"}, None),
])
def test_canvas_column_errors(sample, tmp_path, kw, needle):
    if needle is None:     # a summary column Canvas computes itself cannot be chosen
        with pytest.raises(CourseError, match="no column"):
            _fill(sample, tmp_path, "canvas", CANVAS, **kw)
        return
    with pytest.raises(CourseError, match=needle):
        _fill(sample, tmp_path, "canvas", CANVAS, **kw)


def test_canvas_no_matching_title(sample, tmp_path):
    t = tmp_path / "t.csv"
    t.write_text(CANVAS.read_text(encoding="utf-8-sig").replace("Convolutions by hand",
                                                                  "Homework 3"),
                 encoding="utf-8")
    with pytest.raises(CourseError, match='starting with "Convolutions by hand"'):
        _fill(sample, tmp_path, "canvas", t)


def test_moodle_filled_cell_by_cell(sample, results, tmp_path):
    out = _fill(sample, tmp_path, "moodle", MOODLE)
    before, after = _rows(MOODLE.read_bytes()), _rows(out.path.read_bytes())
    assert after[0] == before[0] and after[0][7] == MOODLE_COL, "Moodle's title kept"
    score = {sid: f"{round(r.score, 2):g}" for sid, r in results.items()}
    # ID number (email differs), email (no ID number), " S003 " (case, spaces), ID number;
    # row 4's student is unknown to us: Moodle's "3.00" stays
    _check_cells(before, after, 7, {1: score["s001"], 2: score["s002"], 3: score["s003"],
                                    5: score["s005"]})
    assert out.filled.matched_by == {"s001": "ID number", "s002": "email", "s003": "ID number",
                                     "s005": "ID number"}
    assert out.path.read_bytes().count(b"\r") == 0


def test_moodle_scaled(sample, results, tmp_path):
    out = _fill(sample, tmp_path, "moodle", MOODLE, moodle_max=100.0)
    after = _rows(out.path.read_bytes())
    r = results["s001"]
    assert float(after[1][7]) == pytest.approx(round(r.score / r.max_score * 100, 2))
    assert after[1][6] == "9.00" and after[4][7] == "3.00"


def test_moodle_feedback_column_not_chosen(sample, tmp_path):
    """Moodle exports feedback as ``... (Feedback)``: never filled with points."""
    t = tmp_path / "m.csv"
    rows = _rows(MOODLE.read_bytes())
    for i, row in enumerate(rows):
        row.insert(8, "Assignment: Convolutions by hand (Feedback)" if i == 0 else "")
    with t.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    out = _fill(sample, tmp_path / "o", "moodle", t)
    assert out.filled.column == MOODLE_COL


@pytest.mark.parametrize("kw,needle", [
    ({"system": "results-archive", "template": MOODLE}, "--template applies to"),
    ({"system": "canvas", "template": None, "column": "x"}, "--column needs --template"),
    ({"system": "canvas", "template": CANVAS, "moodle_max": 10.0}, "--moodle-max applies"),
    ({"system": "moodle", "template": MOODLE, "moodle_max": -1.0}, "positive"),
    ({"system": "moodle", "template": DATA / "nope.csv"}, "not found"),
])
def test_bad_requests(sample, tmp_path, kw, needle):
    course, grades = sample
    system = kw.pop("system")
    with pytest.raises(CourseError, match=needle):
        export(load_course(course), ASSIGNMENT, ExportRequest(system, grades, tmp_path, **kw))


def test_not_an_export(sample, tmp_path):
    t = tmp_path / "x.csv"
    t.write_text("name,grade\nAnna,3\n", encoding="utf-8")
    with pytest.raises(CourseError, match="not a Moodle gradebook export"):
        _fill(sample, tmp_path, "moodle", t)
    t.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(CourseError, match="not UTF-8"):
        _fill(sample, tmp_path, "canvas", t)


def test_cli_lists_unmatched(sample, tmp_path):
    course, _ = sample
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "canvas", "--course", str(course),
                        "--template", str(CANVAS), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "filled 5 of 8 student rows" in r.stdout and "canvas.csv" in r.stdout
    assert "25 graded student(s) not found" in r.stderr and "s021" in r.stderr
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "moodle", "--course", str(course),
                        "--template", str(CANVAS), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a Moodle gradebook export" in r.stderr
    assert "Traceback" not in r.stderr
