"""End-to-end tests of ``grade``: the sample course, outputs, layouts, resume, regrade, CLI.

Every test works on a copy of ``examples/course`` under pytest's tmp dir. The full
30-student batch is graded once per test session and shared between xdist workers
(file lock); tests that change things grade small copies of their own.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from session_build import build_once, tree_state  # noqa: E402

from convpset.autograder.batch import BatchOptions, grade_folder  # noqa: E402
from convpset.autograder.htmltext import inline_html  # noqa: E402
from convpset.autograder.outputs import markdown_html  # noqa: E402
from convpset.autograder.sandbox import Limits  # noqa: E402
from convpset.notebooks.course import load_course  # noqa: E402
from convpset.notebooks.variants import problems_for  # noqa: E402
from convpset.problems.checking import solved  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
# wall_s is generous: the sandbox counts its zygote's start-up against the first notebook
# of a process, which takes seconds on a loaded test machine. cell_s stops loops fast.
FAST = Limits(wall_s=30, cell_s=2, cpu_s=5)
GRADE = [str(Path(sys.executable).with_name("grade"))]
PWNED = Path("/tmp/pset_pwned.txt")      # what the sample's hostile_files student tries to write
GRADESCOPE_TEST_KEYS = {"name", "score", "max_score", "output", "status"}


# ----------------------------------------------------------------------------- helpers
def copy_course(dst: Path, only: list[str] | None = None, roster: list[str] | None = None) -> Path:
    """A private copy of the sample course (config, roster, manifest, submissions);
    ``only``: the submissions to keep, ``roster``: the roster rows to keep."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("pset.toml", "roster.csv", "simulated.json", "nbgrader_config.py"):
        shutil.copy2(EXAMPLE / name, dst / name)
    if roster is not None:
        lines = (dst / "roster.csv").read_text().splitlines()
        keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in roster]
        (dst / "roster.csv").write_text("\n".join(keep) + "\n")
    sub = dst / "submitted"
    sub.mkdir()
    for d in sorted((EXAMPLE / "submitted").iterdir()):
        if only is None or d.name in only:
            shutil.copytree(d, sub / d.name)
    return dst


def grade(folder: Path, course_root: Path, out: Path, **kw) -> object:
    opts = BatchOptions(out=out, jobs=2, limits=FAST, **kw)
    return grade_folder(folder, load_course(course_root), ASSIGNMENT, opts)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def start_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    return subprocess.Popen([*GRADE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def finish(p: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return finish(start_cli(*args))


# ----------------------------------------------------------------------------- the sample batch
@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The whole sample course graded once: (course dir, out dir, before/after states)."""
    def build(d: Path) -> str:
        course = copy_course(d / "course")
        out = course / "graded"
        pwned_before = PWNED.exists()
        before = tree_state(course, exclude=out)
        report = grade(course / "submitted", course, out)
        after = tree_state(course, exclude=out)
        return json.dumps({"before": before, "after": after, "graded": report.graded,
                           "skipped": report.skipped, "pwned_before": pwned_before,
                           "pwned_after": PWNED.exists()})

    d = build_once(tmp_path_factory, "grade_sample", "state.json", build)
    state = json.loads((d / "state.json").read_text())
    return d / "course", d / "course" / "graded", state


@pytest.fixture(scope="module")
def simulated():
    return {m["student_id"]: m for m in json.loads((EXAMPLE / "simulated.json").read_text())}


def _by_kind(simulated, kind: str) -> list[str]:
    return [sid for sid, m in simulated.items() if m["kind"] == kind]


def test_sample_scores_match_simulation(sample, simulated):
    _, out, state = sample
    assert state["graded"] == len(simulated) and state["skipped"] == 0
    rows = {r["student_id"]: r for r in read_csv(out / "grades.csv")}
    assert set(rows) == set(simulated)
    wrong = {sid: (float(rows[sid]["total"]), m["expected_score"], m["kind"])
             for sid, m in simulated.items()
             if m["expected_score"] is not None
             and abs(float(rows[sid]["total"]) - m["expected_score"]) > 1e-9}
    assert not wrong
    for sid, m in simulated.items():
        assert float(rows[sid]["max"]) == m["max_score"]


@pytest.mark.parametrize("kind,flag", [
    ("swap_a", "stamp:other_student"), ("tampered_stamp", "stamp:tampered"),
    ("unreadable_json", "unreadable"), ("empty_file", "unreadable"),
    ("hostile_exit", "exited"), ("hostile_loop", "cell_timeout"),
    ("edited_data", "edited_data"), ("raises", "cell_error"),
])
def test_sample_flags(sample, simulated, kind, flag):
    _, out, _ = sample
    rows = {r["student_id"]: r for r in read_csv(out / "grades.csv")}
    results = json.loads((out / "results.json").read_text())
    sids = _by_kind(simulated, kind)
    assert sids
    for sid in sids:
        assert flag in rows[sid]["flags"].split(";"), (sid, rows[sid]["flags"])
        assert flag in results[sid]["extra_data"]["flags"]
        if flag not in ("edited_data", "cell_error", "cell_timeout"):
            assert results[sid]["output"].strip(), "a note explains the flag"


def test_sample_correct_students_have_no_flags(sample, simulated):
    _, out, _ = sample
    rows = {r["student_id"]: r for r in read_csv(out / "grades.csv")}
    for kind in ("correct", "correct_torch", "correct_lists", "reordered_cells"):
        for sid in _by_kind(simulated, kind):
            assert rows[sid]["flags"] == "" and float(rows[sid]["total"]) == float(rows[sid]["max"])


def test_sample_grades_csv_columns(sample):
    course, out, _ = sample
    c = load_course(course)
    with (out / "grades.csv").open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    parts = [part.name for p in problems_for(c, c.assignment(ASSIGNMENT), "s001") for part in p.parts()]
    from convpset.autograder.outputs import TERM_COLUMNS

    # the term's columns (raw score, late penalty, lateness, overrides) come after flags
    assert header == ["student_id", "total", "max", *parts, "flags", *TERM_COLUMNS]
    rows = read_csv(out / "grades.csv")
    assert [r["student_id"] for r in rows] == [s.student_id for s in c.roster()]
    for r in rows:
        assert abs(sum(float(r[p]) for p in parts) - float(r["total"])) < 0.02


def test_sample_results_json_gradescope_schema(sample):
    _, out, _ = sample
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 30
    for sid, r in results.items():
        assert isinstance(r["score"], int | float) and isinstance(r["max_score"], int | float)
        assert 0 <= r["score"] <= r["max_score"]
        assert r["tests"]
        for t in r["tests"]:
            assert GRADESCOPE_TEST_KEYS <= set(t)
            assert t["status"] in ("passed", "failed")
            assert isinstance(t["output"], str) and t["output"]
            assert 0 <= t["score"] <= t["max_score"]
        assert abs(sum(t["score"] for t in r["tests"]) - r["score"]) < 0.02
        assert r["extra_data"]["student_id"] == sid


def test_sample_feedback_pages(sample, simulated):
    course, out, _ = sample
    c = load_course(course)
    journal = {}
    for line in (out / "journal.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        journal[d["student_id"]] = d
    for sid in simulated:
        page = (out / "feedback" / f"{sid}.html").read_text(encoding="utf-8")
        for p in problems_for(c, c.assignment(ASSIGNMENT), sid):
            statement = markdown_html(p.statement("en"))
            assert statement in page, (sid, p.number)
    # personal: s001's page does not show s002's numbers for problem 1
    p2 = problems_for(c, c.assignment(ASSIGNMENT), "s002")[0]
    s2 = markdown_html(p2.statement("en"))
    assert s2 not in (out / "feedback" / "s001.html").read_text(encoding="utf-8")
    # every mistakes:* student sees the named mistake
    for sid in [s for s, m in simulated.items() if m["kind"].startswith("mistakes:")]:
        page = (out / "feedback" / f"{sid}.html").read_text(encoding="utf-8")
        named = [x for p in journal[sid]["problems"] for x in p["parts"] if x.get("mistake")]
        assert named, sid
        for x in named:                 # rendered: `code` as <code>, formulas as MathML
            assert inline_html(x["message"]["en"]) in page


def test_sample_submissions_untouched_nothing_written_outside_out(sample):
    _, _, state = sample
    assert state["before"] == state["after"]
    assert any(k.endswith(".ipynb") for k in state["before"])
    if not state["pwned_before"]:
        assert not state["pwned_after"], "a hostile notebook wrote /tmp/pset_pwned.txt"


# ----------------------------------------------------------------------------- feedback: reveal, lang
def _secret_value(c, sid: str) -> str:
    """A reference value printed by the worked solution but not by the statement."""
    for p in problems_for(c, c.assignment(ASSIGNMENT), sid):
        statement = markdown_html(p.statement("en"))
        worked = markdown_html(p.explain("en"))
        for v in solved(p.fam, p.variant).values():
            if isinstance(v, int | float) and not isinstance(v, bool) and abs(v) >= 100:
                s = str(int(v)) if float(v).is_integer() else str(v)
                if s in worked and s not in statement:
                    return s
    raise AssertionError("no reference value found only in the worked solution")


def test_feedback_reveal_and_language(tmp_path):
    course = copy_course(tmp_path / "course", only=["s006", "s003"], roster=["s003", "s006"])
    c = load_course(course)
    hidden = _secret_value(c, "s006")
    # three CLI runs at once (start-up of `grade` dominates for two notebooks)
    procs = [start_cli(str(course / "submitted"), "--out", str(tmp_path / "plain")),
             start_cli(str(course / "submitted"), "--out", str(tmp_path / "reveal"), "--reveal"),
             start_cli(str(course / "submitted"), "--out", str(tmp_path / "ru"), "--lang", "ru")]
    plain, revealed, ru = (finish(p) for p in procs)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    page = (tmp_path / "plain" / "feedback" / "s006.html").read_text(encoding="utf-8")
    assert hidden not in page
    assert "Worked solution" not in page
    results = json.loads((tmp_path / "plain" / "results.json").read_text(encoding="utf-8"))
    assert hidden not in json.dumps(results["s006"], ensure_ascii=False)
    assert revealed.returncode == 0, revealed.stdout + revealed.stderr
    page = (tmp_path / "reveal" / "feedback" / "s006.html").read_text(encoding="utf-8")
    assert hidden in page and "Worked solution" in page
    assert ru.returncode == 0, ru.stdout + ru.stderr
    page = (tmp_path / "ru" / "feedback" / "s003.html").read_text(encoding="utf-8")
    assert 'lang="ru"' in page and "Итого" in page and "Задача" in page
    p1 = problems_for(c, c.assignment(ASSIGNMENT), "s003")[0]
    assert markdown_html(p1.statement("ru")) in page
    assert hidden not in (tmp_path / "ru" / "feedback" / "s006.html").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- input layouts
def test_input_layouts(tmp_path, simulated):
    course = copy_course(tmp_path / "course", only=[], roster=[f"s00{i}" for i in range(1, 7)])
    src = EXAMPLE / "submitted"

    def nb(sid: str) -> Path:
        return src / sid / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

    # a folder of STUDENT/x.ipynb
    folders = course / "byfolder"
    (folders / "s001").mkdir(parents=True)
    shutil.copy2(nb("s001"), folders / "s001" / "homework.ipynb")
    (folders / "s003").mkdir()
    shutil.copy2(nb("s003"), folders / "s003" / "conv1.ipynb")
    # a flat folder of LMS-style names, plus one file naming nobody on the roster
    flat = course / "flat"
    flat.mkdir()
    shutil.copy2(nb("s003"), flat / "conv1 - s003 - Anna Ivanova.ipynb")
    shutil.copy2(nb("s004"), flat / "s004_conv1.ipynb")
    shutil.copy2(nb("s001"), flat / "mystery_homework.ipynb")

    r1 = grade(folders, course, tmp_path / "out1")
    got1 = {r.student_id: r for r in r1.results}
    assert got1["s001"].score == simulated["s001"]["expected_score"] and not got1["s001"].flags
    assert got1["s003"].score == simulated["s003"]["expected_score"]
    assert "no_submission" in got1["s002"].flags
    assert len(got1) == 6

    r2 = grade(flat, course, tmp_path / "out2")
    got2 = {r.student_id: r for r in r2.results}
    assert got2["s003"].score == simulated["s003"]["expected_score"] and not got2["s003"].flags
    assert got2["s004"].score == simulated["s004"]["expected_score"] and not got2["s004"].flags
    assert "no_submission" in got2["s001"].flags
    # a name holding no roster id is listed, never graded as a made-up student
    assert "mystery_homework" not in got2 and len(got2) == 6
    assert [(u.name, u.status) for u in r2.unowned] == [("mystery_homework.ipynb", "unmatched")]
    listed = read_csv(tmp_path / "out2" / "unmatched_files.csv")
    assert [r["file"] for r in listed] == ["mystery_homework.ipynb"]
    assert not (tmp_path / "out2" / "feedback" / "mystery_homework.html").exists()

    # nbgrader layout with a missing student: no_submission, zero
    (course / "submitted" / "s005" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy2(nb("s005"), course / "submitted" / "s005" / ASSIGNMENT / "conv1.ipynb")
    r3 = grade(course / "submitted", course, tmp_path / "out3")
    got3 = {r.student_id: r for r in r3.results}
    assert got3["s005"].score == simulated["s005"]["expected_score"]
    assert "no_submission" in got3["s006"].flags and got3["s006"].score == 0


# ----------------------------------------------------------------------------- resume
def _journal_ids(out: Path) -> list[str]:
    ids = []
    for line in (out / "journal.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            ids.append(json.loads(line)["student_id"])
        except ValueError:
            pass
    return ids


def test_resume_skip_and_change(tmp_path, simulated):
    course = copy_course(tmp_path / "course", only=["s001", "s003", "s013", "s022"],
                         roster=["s001", "s002", "s003", "s013", "s022"])
    out = tmp_path / "out"
    before = tree_state(course)
    r1 = grade(course / "submitted", course, out)
    assert r1.graded == 5 and r1.skipped == 0
    journal = (out / "journal.jsonl").read_bytes()
    csv1 = (out / "grades.csv").read_text()

    r2 = grade(course / "submitted", course, out)
    assert r2.graded == 0 and r2.skipped == 5
    assert (out / "journal.jsonl").read_bytes() == journal
    assert (out / "grades.csv").read_text() == csv1
    assert tree_state(course) == before

    # s003 clears one answer cell; s013 withdraws the submission
    p = course / "submitted" / "s003" / ASSIGNMENT / "conv1.ipynb"
    nb = json.loads(p.read_text())
    for cell in nb["cells"]:
        if cell.get("id") == "answer_2":
            cell["source"] = "# cleared\n"
    p.write_text(json.dumps(nb))
    shutil.rmtree(course / "submitted" / "s013")
    # a torn last line (a run killed while writing) must be ignored
    with (out / "journal.jsonl").open("a") as fh:
        fh.write('{"student_id": "s001", "torn')
    r3 = grade(course / "submitted", course, out)
    assert r3.graded == 2 and r3.skipped == 3
    got = {r.student_id: r for r in r3.results}
    assert "no_submission" in got["s013"].flags and got["s013"].score == 0
    assert got["s003"].score < simulated["s003"]["expected_score"]
    assert got["s001"].score == 21
    rows = read_csv(out / "grades.csv")
    assert [r["student_id"] for r in rows] == sorted({r["student_id"] for r in rows})
    assert len(rows) == 5
    # everything in the journal parses (the torn tail did not swallow a new entry)
    final = grade(course / "submitted", course, out)
    assert final.graded == 0 and final.skipped == 5


def test_resume_after_sigkill(tmp_path):
    """Kill ``grade`` mid-batch; the re-run finishes the batch exactly like one clean run."""
    course = copy_course(tmp_path / "course")
    # 40 students: the sample's 30 plus 10 who handed in copies of others' notebooks
    roster = (course / "roster.csv").read_text().rstrip("\n").splitlines()
    for i in range(31, 41):
        roster.append(f"s{i:03d},Extra,Student{i},s{i:03d}@example.edu")
        src = course / "submitted" / f"s{i - 30:03d}"
        if src.exists():
            shutil.copytree(src, course / "submitted" / f"s{i:03d}")
    (course / "roster.csv").write_text("\n".join(roster) + "\n")
    for slow in ("s019", "s020", "s030"):        # memory hog, output flood, infinite loop
        shutil.rmtree(course / "submitted" / slow, ignore_errors=True)

    # the uninterrupted reference run goes on at the same time as the one we kill
    clean_proc = start_cli(str(course / "submitted"), "--out", str(tmp_path / "clean"),
                           "--jobs", "2", "--timeout", "30")
    out = tmp_path / "killed"
    journal = out / "journal.jsonl"
    proc = subprocess.Popen([*GRADE, str(course / "submitted"), "--out", str(out), "--jobs", "1",
                             "--timeout", "30"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if journal.exists() and journal.read_text(encoding="utf-8").count("\n") >= 8:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    n_before = journal.read_text(encoding="utf-8").count("\n")
    clean = finish(clean_proc)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert 8 <= n_before < 40, "the kill must land mid-batch"
    assert not (out / "grades.csv").exists()

    resumed = run_cli(str(course / "submitted"), "--out", str(out), "--jobs", "2",
                      "--timeout", "30")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (out / "grades.csv").read_text() == (tmp_path / "clean" / "grades.csv").read_text()
    ids = [r["student_id"] for r in read_csv(out / "grades.csv")]
    assert len(ids) == len(set(ids)) == 40
    # everyone graded in the killed run was skipped, not graded twice
    assert len(_journal_ids(out)) == 40


# ----------------------------------------------------------------------------- regrade
def test_regrade_keeps_history_and_diffs(tmp_path):
    course = copy_course(tmp_path / "course", only=["s001", "s003"], roster=["s001", "s003", "s010"])
    out = tmp_path / "out"
    grade(course / "submitted", course, out)
    old_csv = (out / "grades.csv").read_text()
    cfg = course / "pset.toml"
    text = cfg.read_text()
    changed = text.replace('{ family = "conv_as_matrix", level = 1, points = 4 }',
                           '{ family = "conv_as_matrix", level = 1, points = 8 }')
    assert changed != text
    cfg.write_text(changed)
    r = run_cli(str(course / "submitted"), "--out", str(out), "--regrade", "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    hist = list((out / "history").iterdir())
    assert len(hist) == 1
    assert (hist[0] / "grades.csv").read_text() == old_csv
    assert (hist[0] / "journal.jsonl").exists() and (hist[0] / "results.json").exists()
    diff = json.loads((out / "regrade_diff.json").read_text())
    by = {d["student_id"]: d for d in diff}
    assert by["s001"]["old"] == 21 and by["s001"]["new"] == 25
    parts = {p["part"]: p for p in by["s001"]["parts"]}
    assert set(parts) == {"W_1", "y_1"}
    assert parts["W_1"]["old"] == 3 and parts["W_1"]["new"] == 6
    # s003 has W_1 wrong (0 → 0): only y_1 can change
    assert all(p["part"] in ("W_1", "y_1") for p in by.get("s003", {"parts": []})["parts"])
    # a student who handed in nothing stays 0 → 0 and is not listed
    assert "s010" not in by
    rows = {x["student_id"]: x for x in read_csv(out / "grades.csv")}
    assert rows["s001"]["total"] == "25" and rows["s001"]["max"] == "25"


# ----------------------------------------------------------------------------- CLI errors
def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    text = (r.stdout + r.stderr).strip()
    assert text.startswith("error:") and "\n" not in text, text
    assert "Traceback" not in text
    return text


def test_cli_errors(tmp_path):
    course = copy_course(tmp_path / "course", only=["s001"], roster=["s001", "s002"])
    lonely = tmp_path / "lonely_folder_outside_any_course_with_a_rather_long_name"
    lonely.mkdir()
    shutil.copy2(EXAMPLE / "submitted" / "s001" / ASSIGNMENT / "conv1.ipynb", lonely / "s001.ipynb")
    procs = [start_cli(str(tmp_path / "does-not-exist")),
             start_cli(str(lonely), "--out", str(tmp_path / "o1")),
             start_cli(str(course / "submitted"), "--assignment", "conv9",
                       "--out", str(tmp_path / "o2")),
             # with --course a folder outside the course grades fine, exit 0
             start_cli(str(lonely), "--course", str(course), "--out", str(tmp_path / "o3"))]
    missing, outside, unknown, ok = (finish(p) for p in procs)
    assert "not a folder" in _one_line_error(missing)
    assert "pset.toml" in _one_line_error(outside)
    assert "conv9" in _one_line_error(unknown)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    rows = {x["student_id"]: x for x in read_csv(tmp_path / "o3" / "grades.csv")}
    assert rows["s001"]["total"] == "21"


def test_result_json_round_trip_keeps_every_field(sample):
    """to_json is written field by field (for speed): it must still carry every field."""
    import dataclasses

    from convpset.autograder.outputs import Journal
    from convpset.autograder.results import StudentResult

    _, out, _ = sample
    for r in Journal(out).load().values():
        data = r.to_json()
        assert {f.name for f in dataclasses.fields(StudentResult)} <= set(data)
        assert StudentResult.from_json(data) == r
