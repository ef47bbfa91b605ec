"""A sample term of three assignments through everything issue 21 asks (except pools):
due times and late policies, an extension, overrides (set, adjust, bulk CSV, remove)
that survive `grade`, `--regrade` and a key change, the report's term section, the
course gradebook (CSV and HTML), `export --all` into a Canvas gradebook export, and
pset.toml's unknown keys (exit 2, one line). Real grading (the sandbox), real CLI.

Every final score is checked against a hand computation from the key's score of a run
without any deadline (the baseline): final = raw − round(raw × (1 − credit), 2), with the
credit worked out by hand from the times this test writes.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from convpset.notebooks.course import init_course, load_course
from convpset.notebooks.simulate import simulate

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow      # real grading runs: seconds each

ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb"}
STUDENTS = ["s001", "s002", "s003", "s004", "s005"]
DUE1 = "2026-10-01 20:59:00.000000 UTC"            # = 2026-10-01T23:59:00+03:00


def cli(name: str, *args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess:
    exe = BIN / name
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                          f"from convpset.cli import {name}_main; {name}_main()"]
    r = subprocess.run([*cmd, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == code, f"{args}: {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def final(raw: float, credit: float) -> float:
    return round(raw - round(raw * (1 - credit), 2), 2)


def write_config(root: Path, term: bool) -> None:
    cfg = tomllib.loads((root / "pset.toml").read_text(encoding="utf-8"))
    cfg["assignments"] = {
        "conv1": {"title": "Week 1", "problems": [
            {"family": "param_count", "level": 1, "points": 4},
            {"family": "output_shape", "level": 1, "points": 4}]},
        "conv2": {"title": "Week 2", "problems": [{"family": "pooling", "level": 1, "points": 4}]},
        "conv3": {"title": "Week 3", "problems": [{"family": "param_count", "level": 2, "points": 6}]},
    }
    if term:
        cfg["late"] = {"policy": "per_day", "penalty": 0.1, "floor": 0.5, "grace_minutes": 10}
        a = cfg["assignments"]
        a["conv1"]["due"] = "2026-10-01T23:59:00+03:00"
        a["conv2"].update(due="2026-10-08T23:59:00Z", weight=2,
                          late={"policy": "none", "grace_minutes": 0})
        a["conv3"].update(due="2026-10-15T23:59:00-05:00", weight=1,
                          late={"policy": "schedule", "schedule": [{"days": 7, "credit": 0.5}]})
    (root / "pset.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")


def stamp(root: Path, assignment: str, times: dict[str, str | bytes]) -> None:
    for sid, t in times.items():
        path = root / "submitted" / sid / assignment / "timestamp.txt"
        path.write_bytes(t if isinstance(t, bytes) else t.encode())


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    """The course after the whole term; every step's outputs kept for the tests."""
    root = tmp_path_factory.mktemp("term") / "course"
    init_course(root, name="term-course", students=len(STUDENTS), seed=7)
    write_config(root, term=False)
    c = load_course(root)
    for a in c.assignments:
        simulate(c, a)
    # s005 never hands in week 3
    import shutil

    shutil.rmtree(root / "submitted" / "s005" / "conv3")
    steps: dict[str, object] = {}
    # 1. a baseline without any deadline: the key's scores
    for a in ("conv1", "conv2", "conv3"):
        cli("grade", "submitted", "--assignment", a, "--jobs", "1", cwd=root)
        steps[f"base_{a}"] = {k: float(v["total"]) for k, v in
                              rows(root / "grades" / a / "grades.csv").items()}
    steps["base_parts1"] = rows(root / "grades" / "conv1" / "grades.csv")
    # 2. the term's configuration, the times the collect wrote, one extension
    write_config(root, term=True)
    stamp(root, "conv1", {"s001": DUE1,                                   # exactly at the due time
                          "s002": "2026-10-01 21:09:01.000000 UTC",       # 1 s after the grace
                          "s003": "2026-10-01T21:09:00Z",                 # 10 min: the grace's end
                          "s004": "2026-10-04T00:09:01+03:00",            # extension + grace + 1 s
                          "s005": b"\x00\xffnot a time" * 50})            # garbage
    stamp(root, "conv2", {"s001": "2026-10-09T00:00:01+01:00",            # 1 s before (in +01:00)
                          "s002": "2026-10-08T23:59:01Z",                 # 1 s late, policy none
                          "s003": "2026-10-08T23:59:00Z", "s004": "2026-10-08T10:00:00Z",
                          "s005": "2026-10-08T23:00:00Z"})
    stamp(root, "conv3", {"s001": "2026-10-16T04:59:00Z",                 # exactly due (-05:00)
                          "s002": "2026-10-19T00:00:00-05:00",            # 3 days: 50 %
                          "s003": "2026-10-23T04:59:01Z",                 # 7 d 1 s: past the schedule
                          "s004": "2026-10-16T04:00:00Z"})
    (root / "extensions.csv").write_text(
        "student,assignment,due,reason\ns004,conv1,2026-10-03T23:59:00+03:00,medical note\n",
        encoding="utf-8")
    for a in ("conv1", "conv2", "conv3"):
        cli("grade", "submitted", "--assignment", a, "--jobs", "1", cwd=root)
    steps["late1"] = rows(root / "grades" / "conv1" / "grades.csv")
    # 3. overrides: a set, an adjust, a bulk CSV line; then one removed
    from convpset.notebooks.variants import problems_for

    c = load_course(root)
    maxima = {x.name: x.points for p in problems_for(c, c.assignment("conv1"), "s003")
              for x in p.parts()}
    parts = list(maxima)
    steps["parts"], steps["pmax"] = parts, maxima
    p1, p2 = parts[0], parts[-1]
    cli("pset", "override", "conv1", "s002", p1, "1", "--reason", "accepted another convention",
        "--reason-ru", "принято другое соглашение", cwd=root)
    cli("pset", "override", "conv1", "s003", p2, "+0.5", "--reason", "regrade request", cwd=root)
    (root / "overrides.csv").write_text(
        f"assignment,student,part,points,reason\nconv1,s001,{p1},0.5,typo in the key\n"
        f"conv1,s004,{p1},0,test removal\n", encoding="utf-8")
    cli("pset", "override", "--csv", "overrides.csv", cwd=root)
    cli("pset", "override", "conv1", "s004", p1, "--remove", "--reason", "entered by mistake",
        cwd=root)
    steps["listed"] = cli("pset", "override", "--list", cwd=root).stdout
    steps["history"] = cli("pset", "override", "--history", cwd=root).stdout
    cli("grade", "submitted", "--assignment", "conv1", "--jobs", "1", cwd=root)
    steps["over1"] = rows(root / "grades" / "conv1" / "grades.csv")
    steps["diff_over"] = json.loads((root / "grades" / "conv1" / "regrade_diff.json").read_text())
    # 4. --regrade: everything again
    cli("grade", "submitted", "--assignment", "conv1", "--jobs", "1", "--regrade", cwd=root)
    steps["regrade1"] = rows(root / "grades" / "conv1" / "grades.csv")
    cli("pset", "report", "conv1", cwd=root)
    # 5. the course gradebook and one export of every column
    cli("pset", "gradebook", cwd=root)
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Week 1 (101)",
              "Week 2 (102)", "Week 3 (103)", "Current Score"]
    lines = [header, ["    Points Possible", "", "", "", "", "8", "4", "6", ""]]
    lines += [[f"Student {i}", str(1000 + i), sid, "", "A", "", "", "", ""]
              for i, sid in enumerate(STUDENTS)]
    with (root / "canvas_export.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(lines)
    done = cli("pset", "export", "--all", "--to", "canvas", "--template", "canvas_export.csv",
               cwd=root)
    steps["export"] = done.stdout + done.stderr
    moodle = [["First name", "Last name", "ID number", "Email address", "Assignment: Week 1 (Real)",
               "Assignment: Week 2 (Real)", "Assignment: Week 3 (Real)", "Course total (Real)"]]
    moodle += [["N", "N", sid, f"{sid}@example.edu", "-", "-", "-", "-"] for sid in STUDENTS]
    with (root / "moodle_export.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(moodle)
    cli("pset", "export", "--all", "--to", "moodle", "--template", "moodle_export.csv",
        "--out", str(root / "moodle_out"), cwd=root)
    # 6. a key change: the points of problem 1 (the fingerprint changes, all regraded)
    cfg = tomllib.loads((root / "pset.toml").read_text(encoding="utf-8"))
    cfg["assignments"]["conv1"]["problems"][0]["points"] = 6
    (root / "pset.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    cli("grade", "submitted", "--assignment", "conv1", "--jobs", "1", cwd=root)
    steps["key1"] = rows(root / "grades" / "conv1" / "grades.csv")
    steps["diff_key"] = json.loads((root / "grades" / "conv1" / "regrade_diff.json").read_text())
    return root, steps


def test_late_policy_at_the_boundaries(term):
    root, s = term
    base, late = s["base_conv1"], s["late1"]
    expect = {"s001": 1.0, "s002": 0.9, "s003": 1.0, "s004": 0.9}   # s004: 1 s past extension + grace (0.7 without it)
    for sid, credit in expect.items():
        assert float(late[sid]["total"]) == final(base[sid], credit), sid
        assert float(late[sid]["raw"]) == base[sid]
        assert float(late[sid]["late_penalty"]) == round(base[sid] * (1 - credit), 2)
    assert late["s001"]["late_rule"] == "on_time" and float(late["s001"]["late_seconds"]) == 0
    assert late["s002"]["late_rule"] == "per_day" and float(late["s002"]["late_seconds"]) == 601
    assert late["s003"]["late_rule"] == "grace" and "late" not in late["s003"]["flags"].split(";")
    assert late["s004"]["extension"] == "medical note"
    assert late["s004"]["due"] == "2026-10-03T23:59:00+03:00"
    # garbage timestamp: flagged, never "on time", raw score kept
    assert "late_unknown" in late["s005"]["flags"] and late["s005"]["late_rule"] == "unknown"
    assert float(late["s005"]["total"]) == base["s005"]
    c2 = rows(root / "grades" / "conv2" / "grades.csv")
    b2 = s["base_conv2"]
    assert float(c2["s001"]["total"]) == b2["s001"]               # +01:00, one second early
    assert float(c2["s002"]["total"]) == 0.0 and c2["s002"]["late_rule"] == "none"
    c3 = rows(root / "grades" / "conv3" / "grades.csv")
    b3 = s["base_conv3"]
    assert float(c3["s001"]["total"]) == b3["s001"]
    assert float(c3["s002"]["total"]) == final(b3["s002"], 0.5)
    assert float(c3["s003"]["total"]) == 0.0
    assert "no_submission" in c3["s005"]["flags"] and c3["s005"]["late_rule"] == ""


def test_feedback_says_the_rule_and_the_time(term):
    root, _ = term
    page = (root / "grades" / "conv1" / "feedback" / "s002.html").read_text(encoding="utf-8")
    assert "2026-10-01T21:09:01+00:00" in page and "per started day" in page
    ext = (root / "grades" / "conv1" / "feedback" / "s004.html").read_text(encoding="utf-8")
    assert "extension: medical note" in ext


def test_overrides_survive_grade_regrade_and_key_change(term):
    root, s = term
    p1, p2 = s["parts"][0], s["parts"][-1]
    base = s["base_parts1"]
    for step in ("over1", "regrade1"):
        g = s[step]
        assert float(g["s002"][p1]) == 1.0, step
        assert float(g["s003"][p2]) == min(float(base["s003"][p2]) + 0.5, s["pmax"][p2])
        assert float(g["s001"][p1]) == 0.5
        assert float(g["s004"][p1]) == float(base["s004"][p1])        # removed: the key's
        assert "override" in g["s002"]["flags"] and "override" not in g["s004"]["flags"]
        assert "accepted another convention" in g["s002"]["overrides"]
        # the late penalty applies to the total after overrides
        raw = sum(float(g["s002"][p]) for p in s["parts"])
        assert float(g["s002"]["total"]) == final(round(raw, 2), 0.9), step
    # the override reached regrade_diff.json as such
    why = {c["student_id"]: c["why"] for c in s["diff_over"]}
    assert "override" in why["s002"]
    # key change: problem 1 now has other points; the set override stays exactly 1
    k = s["key1"]
    assert float(k["s002"][p1]) == 1.0 and float(k["s001"][p1]) == 0.5
    held = [p for c in s["diff_key"] for p in c["parts"] if c["student_id"] == "s002"
            and p["part"] == p1]
    assert held and held[0]["override"] is not None and held[0]["override"]["score"] == 1.0


def test_override_pages_report_and_history(term):
    root, s = term
    page = (root / "grades" / "conv1" / "feedback" / "s002.html").read_text(encoding="utf-8")
    assert "accepted another convention" in page
    report = (root / "grades" / "conv1" / "report.html").read_text(encoding="utf-8")
    assert 'id="term"' in report and "medical note" in report
    assert "accepted another convention" in report and "s002" in report
    assert "s002" in s["listed"] and "s004" not in s["listed"].split("history")[0]
    hist = [json.loads(x) for x in (root / "overrides.jsonl").read_text().splitlines()]
    assert [h["action"] for h in hist] == ["set", "adjust", "set", "set", "remove"]
    assert {h["source"] for h in hist} == {"cli", "csv"}
    assert all(h["by"] and h["at"] for h in hist)
    results = json.loads((root / "grades" / "conv1" / "results.json").read_text())
    assert results["s002"]["extra_data"]["term"]["overrides"][s["parts"][0]]["score"] == 1.0


def test_course_gradebook_csv_and_html(term):
    root, s = term
    course = rows(root / "grades" / "course.csv")
    weights = {"conv1": 1, "conv2": 2, "conv3": 1}
    # conv1 as it was when the gradebook was written (before the key change)
    per = {a: rows(root / "grades" / a / "grades.csv") for a in weights}
    per["conv1"] = s["regrade1"]
    for sid in STUDENTS:
        got = 0.0
        for a, w in weights.items():
            r = per[a].get(sid)
            score = float(r["total"]) if r and "no_submission" not in r["flags"] else 0.0
            top = float(r["max"]) if r else float(course[sid][f"{a}_max"])
            got += w * score / top
            assert float(course[sid][a]) == score
        assert float(course[sid]["total_percent"]) == pytest.approx(100 * got / 4, abs=0.006)
    assert course["s005"]["missing"] == "conv3"
    assert "conv2" in course["s002"]["late"].split(";")
    assert "conv1" in course["s002"]["overrides"].split(";")
    html = (root / "grades" / "course.html").read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "<script" not in html
    assert "data:image/png;base64," in html and "Week 3" in html


def test_export_all_fills_every_column(term):
    root, s = term
    with (root / "grades" / "exports" / "canvas.csv").open(encoding="utf-8", newline="") as fh:
        sheet = list(csv.reader(fh))
    header = sheet[0]
    by_sis = {r[2]: r for r in sheet[2:]}
    for a, title in (("conv1", "Week 1 (101)"), ("conv2", "Week 2 (102)"), ("conv3", "Week 3 (103)")):
        col = header.index(title)
        graded = s["regrade1"] if a == "conv1" else rows(root / "grades" / a / "grades.csv")
        for sid, r in graded.items():
            if "no_submission" in r["flags"]:
                continue
            assert float(by_sis[sid][col]) == pytest.approx(float(r["total"])), (a, sid)
    assert "overrides in this column" in s["export"]


@pytest.mark.parametrize(("table", "edit"), [
    ("top level", lambda c: c.update(extras={"x": 1})),
    ("course", lambda c: c["course"].update(secrt="x")),
    ("assignments.conv1", lambda c: c["assignments"]["conv1"].update(duee="2026-10-01T00:00:00Z")),
    ("assignments.conv2.late", lambda c: c["assignments"]["conv2"]["late"].update(grace=5)),
    ("late", lambda c: c["late"].update(flor=0.5)),
    ("assignments.conv3.late.schedule[0]",
     lambda c: c["assignments"]["conv3"]["late"]["schedule"][0].update(dayz=1)),
])
def test_unknown_keys_exit_2_in_one_line(term, tmp_path, table, edit):
    import shutil

    root, _ = term
    dest = tmp_path / "c"
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns("submitted", "grades", "*.ipynb"))
    cfg = tomllib.loads((dest / "pset.toml").read_text(encoding="utf-8"))
    edit(cfg)
    (dest / "pset.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    r = cli("pset", "gradebook", cwd=dest, code=2)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"[{table}]" in err and "accepted:" in err, err


def test_naive_due_and_bad_extension_exit_2(term, tmp_path):
    import shutil

    root, _ = term
    dest = tmp_path / "c"
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns("grades"))
    text = (dest / "pset.toml").read_text(encoding="utf-8")
    (dest / "pset.toml").write_text(text.replace('"2026-10-01T23:59:00+03:00"',
                                                 '"2026-10-01T23:59:00"'), encoding="utf-8")
    r = cli("pset", "gradebook", cwd=dest, code=2)
    assert "time zone" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (dest / "pset.toml").write_text(text, encoding="utf-8")
    (dest / "extensions.csv").write_text("student,assignment,due,reason\ns001,conv1,tomorrow,x\n")
    r = cli("grade", "submitted", "--assignment", "conv1", "--jobs", "1", cwd=dest, code=2)
    assert "extensions.csv: line 2" in r.stderr and "Traceback" not in r.stderr


def test_plain_folder_times_from_csv_or_mtime(term, tmp_path):
    """A flat folder: submitted_at.csv when it names the student, else the file's mtime."""
    import datetime as dt
    import shutil

    root, _ = term
    flat = root / "flat"
    flat.mkdir(exist_ok=True)
    for sid in ("s001", "s002", "s003"):
        shutil.copy2(root / "submitted" / sid / "conv1" / "conv1.ipynb", flat / f"{sid}.ipynb")
    (flat / "submitted_at.csv").write_text(
        "student_id,submitted_at\ns001,2026-10-01T23:58:59+03:00\ns003,soon\n", encoding="utf-8")
    due = dt.datetime(2026, 10, 1, 20, 59, tzinfo=dt.UTC)
    late = due + dt.timedelta(days=1, hours=1)            # 2 started days
    os.utime(flat / "s002.ipynb", (late.timestamp(), late.timestamp()))
    cli("grade", "flat", "--assignment", "conv1", "--jobs", "1", "--out", str(tmp_path / "out"),
        cwd=root)
    g = rows(tmp_path / "out" / "grades.csv")
    assert (g["s001"]["late_rule"], g["s001"]["time_source"]) == ("on_time", "submitted_at.csv")
    assert (g["s002"]["late_rule"], g["s002"]["time_source"]) == ("per_day", "mtime")
    assert float(g["s002"]["late_seconds"]) == pytest.approx(90000, abs=1)
    assert float(g["s002"]["late_credit"]) == pytest.approx(0.8)
    # a garbage time in the instructor's CSV is a flag too, never on time
    assert "late_unknown" in g["s003"]["flags"] and g["s003"]["late_rule"] == "unknown"


def test_reading_commands_name_a_journal_behind_the_term_files(term, tmp_path):
    """An override or extension added after the last `grade`: report, gradebook and
    export say whose result is out of date instead of showing it silently."""
    import shutil

    from convpset.notebooks.variants import problems_for

    root, _ = term
    dest = tmp_path / "c"
    shutil.copytree(root, dest)
    c = load_course(dest)
    part = next(x.name for p in problems_for(c, c.assignment("conv2"), "s003") for x in p.parts())
    assert "changed since the last grade" not in cli("pset", "gradebook", cwd=dest).stderr
    cli("pset", "override", "conv2", "s003", part, "1", "--reason", "late regrade", cwd=dest)
    with (dest / "extensions.csv").open("a", encoding="utf-8") as fh:
        fh.write("s001,conv3,2026-10-20T23:59:00-05:00,travel\n")
    err = cli("pset", "gradebook", cwd=dest).stderr
    assert "conv2:" in err and "(s003)" in err and "conv3:" in err and "(s001)" in err
    assert "(s003)" in cli("pset", "report", "conv2", cwd=dest).stderr


def test_export_all_to_moodle(term):
    root, s = term
    with (root / "moodle_out" / "moodle.csv").open(encoding="utf-8", newline="") as fh:
        sheet = list(csv.reader(fh))
    header, by_id = sheet[0], {r[2]: r for r in sheet[1:]}
    for a, n in (("conv1", 1), ("conv2", 2), ("conv3", 3)):
        col = header.index(f"Assignment: Week {n} (Real)")
        graded = s["regrade1"] if a == "conv1" else rows(root / "grades" / a / "grades.csv")
        for sid, r in graded.items():       # a missing notebook is a 0, as in one export
            assert float(by_id[sid][col]) == pytest.approx(float(r["total"])), (a, sid)
    assert all(r[header.index("Course total (Real)")] == "-" for r in sheet[1:])
