"""What a new instructor meets: the report's headline, tolerance as course policy, why a
grade changed, guard rails and command-line conventions, the README's test command."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from convpset.autograder.batch import BatchOptions, grade_folder  # noqa: E402
from convpset.autograder.guards import check_jobs, check_submissions_folder  # noqa: E402
from convpset.autograder.report import (  # noqa: E402
    difficulty_figure,
    scatter_png,
    t,
    varying,
)
from convpset.autograder.sandbox import Limits  # noqa: E402
from convpset.autograder.submissions import discover  # noqa: E402
from convpset.cli._style import LogProgress  # noqa: E402
from convpset.notebooks.course import CourseError, load_course  # noqa: E402
from convpset.notebooks.variants import problems_for  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
BIN = Path(sys.executable).parent
FAST = Limits(wall_s=10, cell_s=2, cpu_s=5)


def course_copy(dst: Path, students: list[str]) -> Path:
    dst.mkdir(parents=True)
    for name in ("pset.toml", "roster.csv"):
        shutil.copy2(EXAMPLE / name, dst / name)
    for sid in students:
        shutil.copytree(EXAMPLE / "submitted" / sid, dst / "submitted" / sid)
    return dst


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


# ----------------------------------------------------------------------------- report
def test_report_headline_legend_threshold_and_notes(tmp_path_factory):
    from test_report import graded_sample

    from convpset.autograder.report import build_report

    course, grades = graded_sample(tmp_path_factory)
    page = build_report(load_course(course), "conv1", grades, "en")
    head = re.search(r'<section id="headline">(.*?)</section>', page, re.S).group(1)
    assert "Hardest part" in head and "Commonest misconception" in head
    assert re.search(r"in \d+ of \d+ students who attempted \(\d+%\)", head)
    assert re.search(r"\d+ of \d+ students are flagged", head)
    ru = build_report(load_course(course), "conv1", grades, "ru")
    assert "Самая трудная часть" in ru and "Hardest" not in ru
    fair = re.search(r'<section id="fairness">(.*?)</section>', page, re.S).group(1)
    assert "Bonferroni" in fair and "threshold for p" in fair
    assert re.search(r"p = [\d.]+ is (not )?below 0\.0\d+", fair)
    flagged = re.search(r'<section id="flagged">(.*?)</section>', page, re.S).group(1)
    rows = re.findall(r'<tr data-student="(\w+)">(.*?)</tr>', flagged, re.S)
    assert rows
    for sid, row in rows:
        notes = re.search(r'<td class="notes">(.*?)</td>', row, re.S).group(1)
        assert re.sub(r"<[^>]+>", "", notes).strip(), f"{sid}: flagged without a note"
    for flag in ("cell_error", "edited_data", "cell_timeout"):
        assert any(flag in row for _, row in rows), flag


def test_difficulty_chart_has_a_legend_for_its_colours():
    rows = [{"number": 1, "part": "W_1", "mean_frac": f} for f in (0.9, 0.6, 0.2)]
    fig = difficulty_figure(rows, "en")
    labels = [x.get_text() for leg in fig.legends for x in leg.get_texts()]
    assert labels == [t("en", "legend_good"), t("en", "legend_mid"), t("en", "legend_bad")]


def test_feature_that_does_not_vary_is_not_plotted():
    pts = [({"depth": 7.0, "size": float(s)}, 0.5) for s in (5, 6, 7, 5, 6)]
    assert varying(pts, ["depth", "size"]) == ["size"]
    assert scatter_png("f", [({"depth": 7.0}, 0.5)] * 4, ["depth"], "en") is None
    assert scatter_png("f", pts, ["depth", "size"], "en").startswith("data:image/png")


# ----------------------------------------------------------------------------- tolerance
def _set_tolerance(course: Path, rtol: float, atol: float) -> None:
    cfg = course / "pset.toml"
    text = cfg.read_text()
    new = text.replace('{ family = "conv_backward", level = 1, points = 5 }',
                       f'{{ family = "conv_backward", level = 1, points = 5, rtol = {rtol}, '
                       f'atol = {atol} }}')
    assert new != text
    cfg.write_text(new)


def test_tolerance_in_pset_toml_reaches_statement_and_judge(tmp_path):
    course = course_copy(tmp_path / "c", [])
    _set_tolerance(course, 0.01, 0.5)
    c = load_course(course)
    prob = problems_for(c, c.assignment("conv1"), "s001")[3]
    assert prob.family == "conv_backward"
    assert "rtol=0.01, atol=0.5" in prob.statement("en")
    assert "rtol=0.01, atol=0.5" in prob.statement("ru")
    from convpset.problems.checking import Submitted, solved

    key = solved(prob.fam, prob.variant)
    name = next(p.name for p in prob.parts() if p.dtype == "float" and p.kind == "array")
    off = key[prob.base_name(name)] + 0.4                       # within atol = 0.5
    verdict = {r.part: r for r in prob.judge({name: Submitted.of(off)})}[name]
    assert verdict.status == "correct"
    bad = (course / "pset.toml").read_text().replace("rtol = 0.01", 'tolerance = 0.01')
    (course / "pset.toml").write_text(bad)
    with pytest.raises(CourseError, match=r"unknown keys \['tolerance'\].*rtol and atol"):
        load_course(course)


@pytest.mark.slow
def test_any_change_keeps_history_and_says_why(tmp_path):
    course = course_copy(tmp_path / "c", ["s001", "s003"])
    out = tmp_path / "out"
    c = load_course(course)
    grade_folder(course / "submitted", c, "conv1", BatchOptions(out=out, jobs=1, limits=FAST))
    old_csv = (out / "grades.csv").read_text()
    # unchanged: nothing archived
    grade_folder(course / "submitted", c, "conv1", BatchOptions(out=out, jobs=1, limits=FAST))
    assert not (out / "history").exists()
    # points of problem 1 change, without --regrade
    cfg = course / "pset.toml"
    cfg.write_text(cfg.read_text().replace('{ family = "conv_as_matrix", level = 1, points = 4 }',
                                           '{ family = "conv_as_matrix", level = 1, points = 8 }'))
    r = cli("grade", str(course / "submitted"), "--out", str(out), "--jobs", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    hist = list((out / "history").iterdir())
    assert len(hist) == 1 and (hist[0] / "grades.csv").read_text() == old_csv
    diff = {d["student_id"]: d for d in json.loads((out / "regrade_diff.json").read_text())}
    s1 = diff["s001"]
    assert s1["old"] == 21 and s1["new"] == 25 and s1["new_max"] == 25
    assert "points" in s1["why"] and "maximum" in s1["why"]
    assert "maximum changed from 21 to 25" in s1["reason"]
    assert {p["part"]: p["why"] for p in s1["parts"]}["W_1"] == ["points"]
    assert "changed grades" in r.stdout and "points of the part changed" in r.stdout


# ----------------------------------------------------------------------------- guards
def test_guards_course_root_empty_folder_and_jobs(tmp_path):
    course = course_copy(tmp_path / "c", ["s001"])
    (course / "source").mkdir()
    with pytest.raises(CourseError, match=r"looks like a course folder.*grade .*submitted"):
        check_submissions_folder(course)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CourseError, match=r"no notebooks \(\.ipynb\) found in .*empty"):
        check_submissions_folder(empty)
    with pytest.raises(CourseError, match="did you mean: `grade .*c/submitted`"):
        check_submissions_folder(_empty_next_to(course))
    check_jobs(0)
    check_jobs(3)
    for bad in (-1, 10**6):
        with pytest.raises(CourseError, match="--jobs must be 0"):
            check_jobs(bad)


def _empty_next_to(course: Path) -> Path:
    d = course / "returns"
    d.mkdir()
    return d


def test_student_folder_without_or_with_several_notebooks_is_flagged(tmp_path):
    sub = tmp_path / "submitted"
    (sub / "s001").mkdir(parents=True)
    (sub / "s001" / "work.pdf").write_bytes(b"%PDF-1.4")
    (sub / "s002").mkdir()
    for name in ("conv1.ipynb", "conv1-copy.ipynb"):
        shutil.copy2(next((EXAMPLE / "submitted" / "s001").rglob("*.ipynb")), sub / "s002" / name)
    found = {s.student_id: s for s in discover(sub, "conv1", ["s001", "s002"])}
    assert found["s001"].issue == "no_notebook" and found["s001"].files == ("work.pdf",)
    assert found["s002"].issue == "several_notebooks" and found["s002"].path.name == "conv1.ipynb"


@pytest.mark.slow
def test_cli_errors_on_stderr_exit_2(tmp_path):
    course = course_copy(tmp_path / "c", ["s001"])
    (course / "source").mkdir()
    (course / "grades").mkdir()
    r = cli("grade", str(course))
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "looks like a course folder" in r.stderr
    r = cli("grade", str(course / "submitted"), "--jobs", "-1")
    assert r.returncode == 2 and "--jobs must be 0" in r.stderr and r.stdout == ""
    r = cli("grade", str(course / "submitted"), "--executor", "dask", "--scheduler",
            "tcp://127.0.0.1:9", "--jobs", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cannot connect to the Dask scheduler tcp://127.0.0.1:9" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    r = cli("grade", str(course / "submitted"), "--lang", "de")
    assert r.returncode == 2 and "--lang must be one of en, ru" in r.stderr and r.stdout == ""
    r = cli("pset", "generate", "conv1", "--course", str(course), "--jobs", "-2")
    assert r.returncode == 2 and "--jobs must be 0" in r.stderr


def test_dask_missing_says_how_to_install(monkeypatch):
    from convpset.autograder import dask_executor

    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(CourseError, match=re.escape("pip install 'convpset[dask]'")):
        dask_executor.require_dask()


@pytest.mark.slow
def test_version_and_help_without_type_noise():
    import convpset

    for prog in ("grade", "pset"):
        r = cli(prog, "--version")
        assert r.returncode == 0 and r.stdout.strip() == f"convpset {convpset.__version__}"
    r = cli("grade", "--help")
    assert "<bool>" not in r.stdout and "{" not in r.stdout
    assert "Usage: grade [OPTIONS] SUBMISSIONS" in r.stdout
    assert "0 = one per CPU core" in " ".join(r.stdout.split())
    r = cli("pset", "--help")
    for command in ("list", "preview", "solve", "init", "generate", "simulate", "report",
                    "export"):
        assert re.search(rf"\b{command}\b", r.stdout), command
    assert "<bool>" not in r.stdout
    r = cli("pset", "preview", "--help")
    from convpset.problems import family_names

    assert all(f in r.stdout for f in family_names()) and "{family}" not in r.stdout


@pytest.mark.slow
def test_generate_says_where_the_notebooks_went(tmp_path):
    course = tmp_path / "c"
    assert cli("pset", "init", str(course), "--students", "2").returncode == 0
    r = cli("pset", "generate", "conv1", "--course", str(course))
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert f"{course.resolve() / 'personalized'}/STUDENT/conv1/conv1.ipynb" in text
    assert (course / "personalized" / "s001" / "conv1" / "conv1.ipynb").is_file()
    assert re.search(r"^generating: 2/2 \(100%\), \d+ s$", r.stdout, re.M), r.stdout


def test_log_progress_lines_every_few_seconds():
    now = [0.0]
    lines: list[str] = []
    p = LogProgress("grading", lines.append, every=5, clock=lambda: now[0])
    p(0, 100)
    for _ in range(100):
        now[0] += 0.3
        p(1, 100)
    assert len(lines) == 6                         # 30 s: every 5 s (the last at 100%)
    assert lines[-1] == "grading: 100/100 (100%), 30 s"
    assert lines[0].startswith("grading: 1") and "(" in lines[0]


@pytest.mark.slow
def test_grade_prints_progress_lines_to_a_log(tmp_path):
    course = course_copy(tmp_path / "c", ["s001", "s002"])
    r = cli("grade", str(course / "submitted"), "--jobs", "1")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^grading: \d+/\d+ \(100%\), \d+ s$", r.stdout, re.M), r.stdout


# ----------------------------------------------------------------------------- fresh machine
def test_ci_runs_exactly_the_readme_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b and "venv" in b)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_cmd in ci
    assert 'dask[distributed]' not in (ROOT / "pyproject.toml").read_text().split(
        "[project.optional-dependencies]")[0]


def test_folder_issues_become_flags_and_notes():
    from convpset.autograder.pipeline import plan
    from convpset.autograder.submissions import Submission

    c = load_course(EXAMPLE)
    nb = next((EXAMPLE / "submitted" / "s001").rglob("*.ipynb"))
    pl = plan(c, "conv1", Submission("s001", None, "missing", "no_notebook", ("work.pdf",)),
              {"s001"})
    assert "no_notebook" in pl.flags and "no_submission" in pl.flags
    assert any("work.pdf" in n["en"] and ".ipynb" in n["en"] for n in pl.notes)
    assert any("work.pdf" in n["ru"] for n in pl.notes)
    pl = plan(c, "conv1", Submission("s001", nb, "folders", "several_notebooks",
                                     ("a.ipynb", nb.name)), {"s001"})
    assert "several_notebooks" in pl.flags and pl.final is None     # still graded
    assert any(f"{nb.name} was graded" in n["en"] for n in pl.notes)


def test_roster_id_rule_names_the_character_and_what_is_allowed(tmp_path):
    from convpset.notebooks.course import load_roster

    path = tmp_path / "roster.csv"
    path.write_text("student_id,first_name,last_name,email\nиванов,Иван,Иванов,i@x\n",
                    encoding="utf-8")
    with pytest.raises(CourseError) as err:
        load_roster(path)
    msg = str(err.value)
    assert "non-ASCII character 'и'" in msg and "ASCII letters A-Z a-z" in msg
    assert "letters" not in msg.split(":")[0]          # no "may only contain letters"


def test_browser_tests_skip_loudly_where_chromium_cannot_be_installed(monkeypatch):
    import browser

    monkeypatch.setattr(browser, "_find", lambda: None)
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="BROWSER TESTS NOT RUN.*apt-get install"):
        browser.chromium()


def test_page_tables_have_the_same_keys_in_russian():
    from convpset.problems.text import keys, render

    for prefix in ("page.", "report.", "regrade.", "guard."):
        en = {k for k in keys("en") if k.startswith(prefix)}
        ru = {k for k in keys("ru") if k.startswith(prefix)}
        assert en and en == ru, prefix
    assert render("ru", "report.h_headline") == "Коротко"
    assert re.search("[а-я]", render("ru", "guard.id_rule"))


def test_pset_toml_tolerance_error_names_the_key(tmp_path):
    """A bad rtol/atol is one line naming the problem and the key (from the course table)."""
    from convpset.notebooks.course import CourseError, init_course, load_course

    root = tmp_path / "c"
    init_course(root, students=2)
    p = root / "pset.toml"
    text = p.read_text(encoding="utf-8")
    p.write_text(text.replace('family = "conv_as_matrix", level = 1',
                              'family = "conv_as_matrix", level = 1, atol = 5', 1),
                 encoding="utf-8")
    with pytest.raises(CourseError, match=r"problems\[0\]: atol must be a number from 0 "
                                          r"\(exact\) to below 1, found 5$"):
        load_course(root)
