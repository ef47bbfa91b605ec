"""Bounded grading-process work and bounded reads of student-side files (issue 19, 4-5).

Part 1: a notebook built to be as costly as the caps allow (a ragged ``shapes`` list of
1.6 M rows under the 20 MB answer cap, 5,000 cells that raise exceptions full of TeX and
HTML) is graded in one batch with a correct notebook. Asserted are outcomes: the part is
a format error saying "too many rows", the other answers keep their points, at most
NOTE_CAP notes plus one summary, a small feedback page, and a work counter: no answer is
normalised twice and the oversized one not at all.

Part 2: `grade` (the command line, nbgrader layout, ``--nbgrader``) on a class where some
students' files are a FIFO ``timestamp.txt``, an oversized ``timestamp.txt``, a 100 GB
sparse notebook, a symlinked notebook, a link to /dev/zero, a FIFO notebook and a socket
notebook. Both the first run and the re-run exit 0; each such student is flagged with a
note, everyone else is graded normally. On the old code the FIFOs hang the run (the
subprocess timeout fails the test) and the re-run reads the 100 GB file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_bounded import correct_notebook  # noqa: E402

from convpset.autograder import pipeline  # noqa: E402
from convpset.autograder.batch import BatchOptions, grade_folder  # noqa: E402
from convpset.autograder.outputs import Journal  # noqa: E402
from convpset.autograder.sandbox import Limits  # noqa: E402
from convpset.autograder.sandbox import protocol as P  # noqa: E402
from convpset.autograder.sandbox.result import BadResult, parse  # noqa: E402
from convpset.autograder.submissions import read_notebook  # noqa: E402
from convpset.notebooks.build import dumps  # noqa: E402
from convpset.notebooks.course import load_course  # noqa: E402
from convpset.problems import checking  # noqa: E402
from convpset.problems.base import Mistake, Part  # noqa: E402
from convpset.problems.checking import Submitted, check_part  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
FULL = 21.0
ROWS = 1_600_000
CELLS = 5_000
# generous: the child builds and converts a 1.6 M-row list; only the grading process's
# work is bounded by this change, and a busy 2-core machine must not fail the test
BIG_LIMITS = Limits(wall_s=180, cell_s=30, cell_cpu_s=30, cpu_s=120, convert_cpu_s=60)


def _course(base: Path, students: list[str]) -> Path:
    course = base / "course"
    shutil.copytree(EXAMPLE, course, ignore=shutil.ignore_patterns(
        "submitted", "personalized*", "autograded", "feedback", "release", "grades",
        "gradebook.db", ".nbgrader.log"))
    (course / "roster.csv").write_text(
        "student_id,first_name,last_name,email\n"
        + "".join(f"{s},First{s},Last{s},{s}@example.edu\n" for s in students))
    return course


def _notes(r: dict) -> list[dict]:
    return list(r["notes"]) + [n for p in r["problems"] for n in p["notes"]]


def _part(r: dict, name: str) -> dict:
    return next(x for p in r["problems"] for x in p["parts"] if x["part"] == name)


# ============================================================ 1. the costliest notebook
@pytest.fixture(scope="module")
def costly(tmp_path_factory):
    base = tmp_path_factory.mktemp("costly")
    course = _course(base, ["s001", "s002"])
    sub = course / "submitted"
    for sid in ("s001", "s002"):
        (sub / sid / ASSIGNMENT).mkdir(parents=True)
    (sub / "s001" / ASSIGNMENT / "conv1.ipynb").write_text(dumps(correct_notebook(course, "s001")))
    shapes = f"shapes_3 = [(7,) if i % 2 else (5, 3) for i in range({ROWS})]"
    raising = [f"raise ValueError(r'cell {i}: $\\frac{{a}}{{b}}^{{{i}}}$ "
               f"\\text{{<img src=x onerror=alert(1)>}} **bold** [l](http://x)')"
               for i in range(CELLS)]
    (sub / "s002" / ASSIGNMENT / "conv1.ipynb").write_text(
        dumps(correct_notebook(course, "s002", {3: shapes}, raising)))
    calls: list[tuple[str, int | None]] = []
    real = getattr(checking, "_normalize", None)

    def counting(part, s):
        calls.append((part.name, None if s.rows is None else len(s.rows)))
        return real(part, s)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checking, "_normalize", counting, raising=False)
        report = grade_folder(sub, load_course(course), ASSIGNMENT,
                              BatchOptions(out=base / "out", jobs=1, limits=BIG_LIMITS))
    results = {r.student_id: r.to_json() for r in report.results}
    return {"report": report, "results": results, "calls": calls, "out": base / "out"}


def test_oversized_ragged_answer_is_a_format_error(costly):
    r = costly["results"]["s002"]
    shapes = _part(r, "shapes_3")
    assert shapes["status"] == "format_error" and shapes["score"] == 0
    assert f"has {ROWS} rows" in shapes["message"]["en"]
    assert str(ROWS) in shapes["message"]["ru"] and "строк" in shapes["message"]["ru"]


def test_other_answers_of_the_costly_notebook_keep_their_points(costly):
    r = costly["results"]["s002"]
    lost = _part(r, "shapes_3")["max_score"]
    assert r["score"] == pytest.approx(FULL - lost)
    assert costly["results"]["s001"]["score"] == FULL
    assert "cell_error" in r["flags"]


def test_notes_are_capped_with_one_summary(costly):
    notes = _notes(costly["results"]["s002"])
    cap = getattr(pipeline, "NOTE_CAP", 50)
    assert len(notes) == cap + 1
    summary = [n for n in notes if "more errors raised by cells" in n["en"]]
    assert len(summary) == 1
    assert f"{CELLS - cap} more" in summary[0]["en"]
    assert str(CELLS - cap) in summary[0]["ru"]


def test_feedback_page_is_bounded(costly):
    page = costly["out"] / "feedback" / "s002.html"
    normal = costly["out"] / "feedback" / "s001.html"
    # 12 MB before the cap; now the size of a normal page plus 50 short notes
    assert page.stat().st_size < normal.stat().st_size + 100_000


def test_no_answer_normalised_twice_and_the_oversized_one_never(costly):
    """A work counter: s001's 12 answers and s002's 11 others, each once; s002's ragged
    answer is refused by its size alone, before any of its rows is looked at."""
    calls = costly["calls"]
    assert ("shapes_3", ROWS) not in calls
    assert len(calls) == 12 + 11, calls


def test_similarity_prints_reuse_the_judged_form():
    """A wrong answer is normalised once for the judge and the similarity print."""
    from convpset.autograder.similarity import answer_prints

    part = Part("shapes", "shapes", 3.0, {"en": "s", "ru": "s"}, dtype="int", per_element=True)
    key = {"shapes": [(6, 24, 24), (6, 12, 12), (864,)]}
    sub = Submitted.of([(6, 24, 24), (6, 12, 12), (865,)])
    seen = []
    real = getattr(checking, "_normalize", None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checking, "_normalize", lambda p, s: seen.append(p.name) or real(p, s),
                   raising=False)
        res = check_part(part, sub, key["shapes"], [], "x")
        prints = answer_prints([part], {"shapes": sub}, key, [res])
    assert res.status == "partial" and "shapes" in prints["wrong"]
    assert seen == ["shapes"]


def test_cap_allows_a_listed_mistake_larger_than_the_key():
    """A full convolution's output is 9x a valid one's: the cap follows the mistakes."""
    part = Part("y", "array", 4.0, {"en": "y", "ru": "y"}, shape=(2, 2))
    want = np.ones((2, 2))
    wrong = np.arange(36.0).reshape(6, 6)
    mistakes = [Mistake("ceil", {"y": wrong})]
    r = check_part(part, Submitted.of(wrong), want, mistakes, "x")
    assert r.status == "wrong" and r.mistake == "ceil"
    huge = check_part(part, Submitted.of(np.zeros(4 * 36 + 17)), want, mistakes, "x")
    assert huge.status == "format_error" and "numbers" in huge.message["en"]


def test_ragged_rows_parse_without_a_row_object_each():
    from convpset.autograder.sandbox.model import Ragged

    lengths = [1 if i % 2 else 2 for i in range(ROWS)]
    flat = np.ones(sum(lengths))
    ent = {"name": "a", "present": True, "source_type": "list", "dtype": "<f8",
           "shape": [flat.size], "error": None, "rows": lengths}
    hdr = json.dumps({"answers": [ent], "cell_errors": []}).encode()
    answers, *_ = parse(P.result_prefix(hdr) + flat.tobytes(), ["a"], Limits())
    rows = answers["a"].rows
    assert isinstance(rows, Ragged) and len(rows) == ROWS
    assert rows[0].tolist() == [1.0, 1.0] and rows[1].tolist() == [1.0]
    for bad in ([*lengths[:-1], lengths[-1] + 1], [-1, *lengths[1:]], [True] * 3):
        ent["rows"] = bad
        hdr = json.dumps({"answers": [ent], "cell_errors": []}).encode()
        with pytest.raises(BadResult):
            parse(P.result_prefix(hdr) + flat.tobytes(), ["a"], Limits())


def test_huge_json_integers_are_refused_unread(tmp_path):
    text = dumps(correct_notebook(EXAMPLE, "s001"))
    path = tmp_path / "n.ipynb"
    path.write_text(text[:-2] + ', "x": [' + ",".join(["9" * 4000] * 50) + "]" + text[-2:])
    read = read_notebook(path)
    assert read.notebook is None and "numbers too large" in read.error


# ============================================================ 2. bounded reads, `grade` CLI
GOOD = ["s001", "s009", "s015"]
BAD = {"s002": "fifo_timestamp", "s003": "huge_timestamp", "s004": "sparse_100g",
       "s005": "symlink", "s006": "dev_zero", "s007": "fifo_notebook", "s008": "socket"}
FILE_FLAG = {"s004": "file_too_large", "s005": "file_link", "s006": "file_link",
             "s007": "file_not_regular", "s008": "file_not_regular"}


def _grade_cmd(course: Path, out: Path) -> list[str]:
    exe = Path(sys.executable).with_name("grade")
    cmd = [str(exe)] if exe.exists() else [
        sys.executable, "-c", "from convpset.cli import grade_main; grade_main()"]
    return [*cmd, str(course / "submitted"), "--out", str(out), "--jobs", "2",
            "--timeout", "60", "--nbgrader"]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _make_bad(sid: str, kind: str, folder: Path, course: Path, keep: list) -> None:
    nb = folder / "conv1.ipynb"
    if kind in ("fifo_timestamp", "huge_timestamp"):
        nb.write_text(dumps(correct_notebook(course, sid)))
        ts = folder / "timestamp.txt"
        if kind == "fifo_timestamp":
            os.mkfifo(ts)
        else:
            ts.write_text("2026-12-01 10:00:00.000000 UTC\n" + "x" * 5_000_000)
    elif kind == "sparse_100g":
        with nb.open("wb") as fh:
            fh.truncate(100 * 1024 ** 3)
    elif kind == "symlink":
        real = course / "elsewhere" / f"{sid}.ipynb"
        real.parent.mkdir(exist_ok=True)
        real.write_text(dumps(correct_notebook(course, sid)))
        nb.symlink_to(real)
    elif kind == "dev_zero":
        nb.symlink_to("/dev/zero")
    elif kind == "fifo_notebook":
        os.mkfifo(nb)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        here = os.getcwd()
        os.chdir(folder)             # a relative bind: socket paths are limited to 108 bytes
        try:
            s.bind("conv1.ipynb")
        finally:
            os.chdir(here)
        keep.append(s)


def _journal(out: Path) -> dict[str, dict]:
    return {sid: r.to_json() for sid, r in Journal(out).load().items()}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    base = tmp_path_factory.mktemp("files")
    course = _course(base, sorted(GOOD + list(BAD)))
    exe = Path(sys.executable).with_name("nbgrader")
    nbg = [str(exe)] if exe.exists() else [sys.executable, "-m", "nbgrader"]
    made = _run([*nbg, "generate_assignment", ASSIGNMENT, "--force"], course)
    assert made.returncode == 0, made.stderr[-3000:]
    keep: list = []
    for sid in GOOD:
        folder = course / "submitted" / sid / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / "conv1.ipynb").write_text(dumps(correct_notebook(course, sid)))
        (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC\n")
    for sid, kind in BAD.items():
        folder = course / "submitted" / sid / ASSIGNMENT
        folder.mkdir(parents=True)
        _make_bad(sid, kind, folder, course, keep)
    out = base / "out"
    first = _run(_grade_cmd(course, out), course)
    first_results = _journal(out)
    second = _run(_grade_cmd(course, out), course)
    second_results = _journal(out)
    grades_csv = (out / "grades.csv").read_text(encoding="utf-8")
    for s in keep:
        s.close()
    return {"course": course, "runs": (first, second),
            "results": (first_results, second_results), "csv": grades_csv}


def test_grade_and_its_rerun_exit_0(hostile_files):
    for run in hostile_files["runs"]:
        assert run.returncode == 0, run.stderr[-3000:]
        assert "Traceback" not in run.stderr, run.stderr[-3000:]


@pytest.mark.parametrize("sid", sorted(FILE_FLAG))
def test_unreadable_file_is_flagged_with_a_note(hostile_files, sid):
    for results in hostile_files["results"]:
        r = results[sid]
        assert r["score"] == 0
        assert {"unreadable", FILE_FLAG[sid]} <= set(r["flags"]), r["flags"]
        text = " ".join(n["en"] for n in _notes(r)) + " ".join(
            x["message"]["en"] for p in r["problems"] for x in p["parts"])
        assert "could not be graded" in text


@pytest.mark.parametrize("sid", GOOD + ["s002", "s003"])
def test_others_graded_normally(hostile_files, sid):
    """Correct students, and those whose only fault is timestamp.txt, keep full marks."""
    for results in hostile_files["results"]:
        assert results[sid]["score"] == FULL, (sid, results[sid]["flags"])


def test_bad_timestamps_cost_only_the_submission_time(hostile_files):
    from nbgrader.api import Gradebook

    first, _ = hostile_files["runs"]
    assert "timestamp.txt" in first.stdout and "s002" in first.stdout and "s003" in first.stdout
    with Gradebook(f"sqlite:///{hostile_files['course'] / 'gradebook.db'}") as gb:
        subs = {s.student.id: s for s in gb.assignment_submissions(ASSIGNMENT)}
        assert subs["s002"].timestamp is None and subs["s003"].timestamp is None
        assert subs["s001"].timestamp is not None
        assert subs["s002"].score == pytest.approx(FULL)
    autograded = hostile_files["course"] / "autograded"
    assert not (autograded / "s002" / ASSIGNMENT / "timestamp.txt").exists()
    assert (autograded / "s001" / ASSIGNMENT / "timestamp.txt").read_text().startswith("2026")


def test_rerun_keeps_the_flags_in_grades_csv(hostile_files):
    for sid, flag in FILE_FLAG.items():
        row = next(ln for ln in hostile_files["csv"].splitlines() if ln.startswith(sid + ","))
        assert flag in row, row


def test_notebook_of_too_many_cells_is_refused_unparsed(tmp_path):
    """200,000 tiny cells fit in 20 MB; each would cost assembly and transport work."""
    from convpset.autograder.submissions import MAX_CELLS

    text = dumps(correct_notebook(EXAMPLE, "s001"))
    cell = json.dumps({"cell_type": "code", "execution_count": None, "metadata": {},
                       "outputs": [], "source": "pass"})
    at = text.index('"cells": [') + len('"cells": [')
    path = tmp_path / "n.ipynb"
    path.write_text(text[:at] + ",".join([cell] * (MAX_CELLS + 1)) + "," + text[at:])
    read = read_notebook(path)
    assert read.notebook is None and read.file_problem == "too_many_cells"
    # the same count with the key spelled with an escape is caught after parsing
    path.write_text(text[:at] + ",".join([cell.replace("cell_type", "cell\\u005ftype")]
                                         * (MAX_CELLS + 1)) + "," + text[at:])
    assert read_notebook(path).file_problem == "too_many_cells"


@pytest.mark.parametrize("filler", ["[]", "{}", "0", '""', '{"output_type": "stream"}'])
def test_notebook_of_millions_of_tiny_values_is_refused_unparsed(tmp_path, monkeypatch, filler):
    """6 M empty lists fit in 20 MB and cost json.loads 4 s and 585 MB (9 M zeros: 4.8 s,
    the integer hook runs per number); the tokens are counted in the bytes first, so the
    notebook is flagged without a parse, wherever the values sit (a key of its own, the
    saved outputs of a cell)."""
    from convpset.autograder import submissions
    from convpset.autograder.submissions import MAX_JSON_TOKENS
    from convpset.problems.text import render

    nb = correct_notebook(EXAMPLE, "s001")
    text = dumps(nb)
    many = ",".join([filler] * (MAX_JSON_TOKENS + 1))
    top = text[:-2] + f', "x": [{many}]' + text[-2:]
    at = text.index('"outputs": [') + len('"outputs": [')
    in_outputs = text[:at] + many + text[at:] if filler.startswith("{") else top
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(submissions.json, "loads",
                        lambda s, **kw: parsed.append(len(s)) or real_loads(s, **kw))
    for body in (top, in_outputs):
        path = tmp_path / "n.ipynb"
        path.write_text(body)
        read = read_notebook(path)
        assert read.notebook is None and read.file_problem == "too_many_values", read
    assert parsed == [], "a notebook over the token cap was parsed"
    for lang in ("en", "ru"):
        said = render(lang, "grading.file", reason="too_many_values", cap_mb=20, cells=1,
                      values=f"{MAX_JSON_TOKENS:,}")
        assert f"{MAX_JSON_TOKENS:,}" in said, said


def test_commas_and_brackets_inside_strings_do_not_count(tmp_path):
    """A saved output that prints a long list (a million commas and brackets, in one
    string, with escaped quotes and backslashes) is still an ordinary notebook."""
    nb = json.loads(dumps(correct_notebook(EXAMPLE, "s001")))
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout",
                        "text": "[" + ", ".join(['"\\\\[{",'] * 1_000_000) + "]"}]
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    read = read_notebook(path)
    assert read.file_problem is None and read.notebook is not None


def test_nbgrader_display_copy_of_millions_of_tiny_values_is_not_parsed(tmp_path, monkeypatch):
    """nbgrader's feedback shows the submitted notebook; that read is the student's file
    too: over the token cap it is not parsed (the page is built from our own cells)."""
    from convpset.autograder.submissions import MAX_JSON_TOKENS
    from convpset.integrations.nbgrader import feedback

    text = dumps(correct_notebook(EXAMPLE, "s001"))
    path = tmp_path / "n.ipynb"
    path.write_text(text[:-2] + ', "x": [' + ",".join(["[]"] * MAX_JSON_TOKENS) + "]" + text[-2:])
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(feedback.json, "loads",
                        lambda s, **kw: parsed.append(len(s)) or real_loads(s, **kw))
    assert feedback.read_submitted(path) is None and parsed == []
    path.write_text(text)
    assert feedback.read_submitted(path) is not None    # an ordinary notebook still is
