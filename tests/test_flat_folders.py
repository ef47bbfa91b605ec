"""Whose notebook is it: LMS bulk downloads and flat folders, through the real ``grade`` CLI.

The folders are shaped as the systems really write them (see autograder/submissions.py for
the source each form comes from): Canvas's ``lastfirst[_LATE]_USERID_ATTACHMENTID_file``
(canvas-lms lib/content_zipper.rb), Moodle's ``Full Name_PARTICIPANTID_assignsubmission_file_``
flat or as folders (mod/assign/locallib.php, download_submissions), and our own names.
Every case asserts who received which file (``path`` in results.json), the flags and notes
in grades.csv / results.json, the ``unmatched_files.csv`` listing and the terminal summary.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

from convpset.autograder.outputs import Journal

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
GRADE = str(Path(sys.executable).with_name("grade"))
PSET = str(Path(sys.executable).with_name("pset"))
SIMULATED = {m["student_id"]: m for m in json.loads((EXAMPLE / "simulated.json").read_text())}
HEADER = "id,first_name,last_name,email,hub_user,lms_user_id"


def course_with(root: Path, rows: list[str]) -> Path:
    """A copy of the sample course's configuration with the roster ``rows``."""
    root.mkdir(parents=True)
    for name in ("pset.toml", "nbgrader_config.py"):
        shutil.copy2(EXAMPLE / name, root / name)
    (root / "roster.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return root


def nb(sid: str) -> Path:
    """The sample's returned notebook of ``sid`` (stamped for that student)."""
    return EXAMPLE / "submitted" / sid / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def put(folder: Path, name: str, sid: str) -> Path:
    dst = folder / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(nb(sid), dst)
    return dst


def grade(folder: Path, course: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    p = subprocess.run([GRADE, str(folder), "--course", str(course), "--assignment", ASSIGNMENT,
                        "--out", str(out), "--jobs", "1", "--timeout", "60"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def results(out: Path) -> dict[str, dict]:
    """Every student's recorded result (the journal: path, flags, notes)."""
    return {sid: r.to_json() for sid, r in Journal(out).load().items()}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def grades(out: Path) -> dict[str, dict[str, str]]:
    return {r["student_id"]: r for r in rows(out / "grades.csv")}


def unmatched(out: Path) -> dict[str, dict[str, str]]:
    return {r["file"]: r for r in rows(out / "unmatched_files.csv")}


def received(out: Path) -> dict[str, str | None]:
    """Student id -> the name of the file graded for them (None: nothing graded)."""
    return {sid: (Path(r["path"]).name if r.get("path") else None)
            for sid, r in results(out).items()}


def score(out: Path, sid: str) -> float:
    return float(grades(out)[sid]["total"])


# ----------------------------------------------------------------------------- Canvas
def test_canvas_download_names(tmp_path):
    course = course_with(tmp_path / "course", [
        "s001,Anna,Ivanova,,,12345",
        "s002,Boris,Petrov,,,23456",
        "s003,Вера,Смирнова,,,",            # no Canvas id: matched by Canvas's sortable name
        "s004,Gleb,Kuznetsov,,,45678",
        "s005,Dina,Orlova,,,56789",
    ])
    sub = course / "canvas"
    put(sub, "ivanovaanna_LATE_12345_678901_conv1.ipynb", "s001")
    put(sub, "petrovboris_23456_678902_conv1-1.ipynb", "s002")       # a re-upload
    put(sub, "смирновавера_34567_678903_conv1.ipynb", "s003")
    put(sub, "anon_x7k2p_678904_conv1.ipynb", "s005")                # anonymous grading
    put(sub, "kuznetsovgleb_99999_678905_conv1.ipynb", "s004")       # id on no roster row
    # a sortable name ending in "_<digits>" reads two ways: one of them is s005's id
    put(sub, "x_56789_99998_678906_conv1.ipynb", "s004")
    out = tmp_path / "out"
    p = grade(sub, course, out)

    got = received(out)
    assert got["s001"] == "ivanovaanna_LATE_12345_678901_conv1.ipynb"
    assert got["s002"] == "petrovboris_23456_678902_conv1-1.ipynb"
    assert got["s003"] == "смирновавера_34567_678903_conv1.ipynb"
    for sid in ("s001", "s002", "s003"):
        assert score(out, sid) == SIMULATED[sid]["expected_score"], sid
        assert not grades(out)[sid]["flags"], sid
    # the id Canvas wrote is on no roster row: s004 receives nothing, the file is listed
    assert got["s004"] is None and "no_submission" in grades(out)["s004"]["flags"]
    # the two-way name: s005 is held, not handed a file that may be someone else's
    assert got["s005"] is None and "owner_ambiguous" in grades(out)["s005"]["flags"]
    assert score(out, "s005") == 0
    # no made-up students: every row is a roster student
    assert set(grades(out)) == {"s001", "s002", "s003", "s004", "s005"}
    listed = unmatched(out)
    assert listed["anon_x7k2p_678904_conv1.ipynb"]["status"] == "unmatched"
    assert "anonymous" in listed["anon_x7k2p_678904_conv1.ipynb"]["reason"]
    assert listed["kuznetsovgleb_99999_678905_conv1.ipynb"]["status"] == "unmatched"
    assert "99999" in listed["kuznetsovgleb_99999_678905_conv1.ipynb"]["reason"]
    assert listed["x_56789_99998_678906_conv1.ipynb"]["status"] == "held"
    assert listed["x_56789_99998_678906_conv1.ipynb"]["students"] == "s005"
    assert len(listed) == 3
    for name in listed:
        assert name in p.stdout


# ----------------------------------------------------------------------------- Moodle
def test_moodle_download_names_flat_and_in_folders(tmp_path):
    course = course_with(tmp_path / "course", [
        "s001,Anna,Ivanova,,,",
        "s002,Boris,Petrov,,,",
        "s003,Алёна,Йолкина,,,",
        "s005,Anna,Ivanova,,,",              # a second Anna Ivanova
        "s007,Oleg,Sidorov,,,",
    ])
    sub = course / "moodle"
    # "Download submissions in folders" on (Moodle's default)
    put(sub, "Boris Petrov_101_assignsubmission_file_/conv1.ipynb", "s002")
    online = sub / "Boris Petrov_101_assignsubmission_onlinetext_"
    online.mkdir()
    (online / "onlinetext.html").write_text("<p>see the notebook</p>", encoding="utf-8")
    # off: one flat folder; a Cyrillic name as a zip unpacked on macOS leaves it (NFD)
    put(sub, unicodedata.normalize("NFD", "Алёна Йолкина_102_assignsubmission_file_conv1.ipynb"),
        "s003")
    put(sub, "Anna Ivanova_103_assignsubmission_file_conv1.ipynb", "s001")
    put(sub, "Someone Else_104_assignsubmission_file_conv1.ipynb", "s007")
    put(sub, "Sidorov Oleg_105_assignsubmission_file_conv1.ipynb", "s007")   # "last first" order
    out = tmp_path / "out"
    p = grade(sub, course, out)

    got = received(out)
    assert got["s002"] == "conv1.ipynb"
    assert got["s003"] is not None and unicodedata.normalize("NFC", got["s003"]) == \
        "Алёна Йолкина_102_assignsubmission_file_conv1.ipynb"
    assert got["s007"] == "Sidorov Oleg_105_assignsubmission_file_conv1.ipynb"
    for sid in ("s002", "s003", "s007"):
        assert score(out, sid) == SIMULATED[sid]["expected_score"], sid
        assert not grades(out)[sid]["flags"], sid
    # one file, two students of that name: both held, neither graded
    for sid in ("s001", "s005"):
        assert got[sid] is None and "owner_ambiguous" in grades(out)[sid]["flags"], sid
        assert score(out, sid) == 0
    notes = " ".join(n["en"] for n in results(out)["s001"]["notes"])
    assert "Anna Ivanova_103_assignsubmission_file_conv1.ipynb" in notes
    assert set(grades(out)) == {"s001", "s002", "s003", "s005", "s007"}
    listed = unmatched(out)
    assert listed["Anna Ivanova_103_assignsubmission_file_conv1.ipynb"]["status"] == "held"
    assert listed["Anna Ivanova_103_assignsubmission_file_conv1.ipynb"]["students"] == "s001 s005"
    assert listed["Someone Else_104_assignsubmission_file_conv1.ipynb"]["status"] == "unmatched"
    assert len(listed) == 2
    assert "Someone Else_104_assignsubmission_file_conv1.ipynb" in p.stdout


# ----------------------------------------------------------------------------- two claims
def test_a_junk_file_naming_a_classmate_holds_both_until_removed(tmp_path):
    """The reported case: a classmate's junk ``conv1 - c02 - 0.ipynb`` beside c02's own
    notebook replaced it (first in sort order) and c02 got 0 with no trace."""
    course = course_with(tmp_path / "course", [
        "s001,Anna,Ivanova,,,", "s002,Boris,Petrov,,,", "s003,Vera,Smirnova,,,",
        "s006,Ilya,Popov,,,"])
    sub = course / "flat"
    put(sub, "s002.ipynb", "s002")
    put(sub, "conv1 - s002 - 0.ipynb", "s006")          # the junk: an empty notebook
    put(sub, "s003/conv1.ipynb", "s003")                # a folder and a flat file: two claims
    put(sub, "s003.ipynb", "s003")
    put(sub, "conv1 - s001 - Anna Ivanova.ipynb", "s001")   # one mention: s001's
    out = tmp_path / "out"
    p = grade(sub, course, out)

    got = received(out)
    assert got["s001"] == "conv1 - s001 - Anna Ivanova.ipynb"
    assert score(out, "s001") == SIMULATED["s001"]["expected_score"]
    for sid in ("s002", "s003"):
        assert got[sid] is None, sid
        flags = grades(out)[sid]["flags"]
        assert "owner_conflict" in flags and "no_submission" not in flags, sid
        assert score(out, sid) == 0
    note = " ".join(n["en"] for n in results(out)["s002"]["notes"])
    assert "s002.ipynb" in note and "conv1 - s002 - 0.ipynb" in note
    listed = unmatched(out)
    assert {k for k, v in listed.items() if v["status"] == "held"} == {
        "s002.ipynb", "conv1 - s002 - 0.ipynb", "s003/", "s003.ipynb"}
    assert listed["conv1 - s002 - 0.ipynb"]["students"] == "s002"
    assert "conv1 - s002 - 0.ipynb" in p.stdout and "s002.ipynb" in p.stdout
    assert "STUDENT.ipynb" in p.stdout           # the instructor is told what to do
    # the report lists them too, and counts no held student as a return
    for lang, heading in (("en", "Unmatched files"), ("ru", "Файлы без владельца")):
        r = subprocess.run([PSET, "report", ASSIGNMENT, "--course", str(course), "--grades",
                            str(out), "--out", str(tmp_path / lang), "--lang", lang],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        page = (tmp_path / lang / "report.html").read_text(encoding="utf-8")
        section = page[page.index('<section id="unmatched">'):]
        section = section[:section.index("</section>")]
        assert heading in section
        for name in ("s002.ipynb", "conv1 - s002 - 0.ipynb", "s003.ipynb"):
            assert f"<code>{name}</code>" in section, (lang, name)

    # the instructor removes the junk and the duplicate: the next run grades both
    (sub / "conv1 - s002 - 0.ipynb").unlink()
    (sub / "s003.ipynb").unlink()
    grade(sub, course, out)
    got = received(out)
    assert got["s002"] == "s002.ipynb" and got["s003"] == "conv1.ipynb"
    for sid in ("s002", "s003"):
        assert score(out, sid) == SIMULATED[sid]["expected_score"], sid
        assert not grades(out)[sid]["flags"], sid
    assert unmatched(out) == {}
    assert json.loads((out / "unmatched_files.json").read_text(encoding="utf-8")) == []


# ----------------------------------------------------------------------------- unknown names
def test_unknown_names_are_listed_and_ids_match_whole_tokens(tmp_path):
    course = course_with(tmp_path / "course", ["s1,Anna,Ivanova,,,", "s10,Boris,Petrov,,,",
                                               "s11,Vera,Smirnova,,,"])
    sub = course / "flat"
    put(sub, "s10_conv1.ipynb", "s002")        # s1 is a prefix of s10, not a token of it
    put(sub, "conv1-s1.ipynb", "s001")
    put(sub, "homework final.ipynb", "s003")
    put(sub, '=HYPERLINK("x.example")\x1b]52;c;cHduZWQ=\x07.ipynb', "s003")
    put(sub, "Vera Smirnova/conv1.ipynb", "s003")   # a folder naming nobody on the roster
    out = tmp_path / "out"
    p = grade(sub, course, out)

    got = received(out)
    assert got["s10"] == "s10_conv1.ipynb" and got["s1"] == "conv1-s1.ipynb"
    assert got["s11"] is None and "no_submission" in grades(out)["s11"]["flags"]
    # no row, page or result for a made-up student
    assert set(grades(out)) == {"s1", "s10", "s11"}
    assert sorted(f.name for f in (out / "feedback").iterdir()) == ["s1.html", "s10.html",
                                                                    "s11.html"]
    with (out / "unmatched_files.csv").open(encoding="utf-8", newline="") as fh:
        raw = list(csv.reader(fh))
    assert raw[0] == ["file", "status", "students", "reason"]
    cells = {r[0] for r in raw[1:]}
    assert "homework final.ipynb" in cells and "Vera Smirnova/" in cells
    # the formula name is listed as text: no cell starts a spreadsheet formula
    assert any(c.startswith("'=HYPERLINK") for c in cells)
    assert not any(c.startswith(("=", "+", "-", "@")) for r in raw[1:] for c in r)
    assert "homework final.ipynb" in p.stdout
    assert "\x1b" not in p.stdout and "\\x1b" in p.stdout   # shown, not obeyed

    # one name holding two roster ids: both students held, the file graded for nobody
    sub2 = course / "flat2"
    put(sub2, "s1 s10.ipynb", "s001")
    put(sub2, "s11.ipynb", "s003")
    out2 = tmp_path / "out2"
    grade(sub2, course, out2)
    got = received(out2)
    for sid in ("s1", "s10"):
        assert got[sid] is None and "owner_ambiguous" in grades(out2)[sid]["flags"], sid
    assert got["s11"] == "s11.ipynb"
    assert unmatched(out2)["s1 s10.ipynb"]["students"] == "s1 s10"


# ----------------------------------------------------------------------------- LMS exports
def test_a_held_student_gets_no_lms_cell(tmp_path):
    """A held student's 0 is no grade: the Canvas and Moodle files leave them out (and an
    existing cell in a template stays as the LMS has it), and the listing says why."""
    course = course_with(tmp_path / "course", [
        "s001,Anna,Ivanova,anna@uni.example,,101", "s002,Boris,Petrov,boris@uni.example,,102"])
    sub = course / "flat"
    put(sub, "s001.ipynb", "s001")
    put(sub, "s002.ipynb", "s002")
    put(sub, "conv1 - s002 - 0.ipynb", "s001")          # a second claim on s002
    out = tmp_path / "out"
    grade(sub, course, out)
    assert "owner_conflict" in grades(out)["s002"]["flags"]

    def export(*extra: str) -> subprocess.CompletedProcess:
        r = subprocess.run([PSET, "export", ASSIGNMENT, "--course", str(course), "--grades",
                            str(out), "--out", str(tmp_path / "exp"), *extra],
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "COLUMNS": "200", "TERM": "dumb"})
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    r = export("--to", "canvas")
    canvas = list(csv.reader((tmp_path / "exp" / "canvas.csv").open(encoding="utf-8")))
    ids = [row[1] for row in canvas[2:]]
    assert ids == ["101"]
    assert "s002" in r.stderr + r.stdout and "held" in r.stderr + r.stdout
    template = tmp_path / "moodle_export.csv"
    template.write_text("First name,Last name,ID number,Email address,Assignment: conv1 (Real)\n"
                        "Anna,Ivanova,s001,anna@uni.example,\n"
                        "Boris,Petrov,s002,boris@uni.example,7.00\n", encoding="utf-8")
    r = export("--to", "moodle", "--template", str(template), "--column",
               "Assignment: conv1 (Real)")
    filled = list(csv.reader((tmp_path / "exp" / "moodle.csv").open(encoding="utf-8")))
    assert filled[2][4] == "7.00"                      # the LMS's own cell, untouched
    assert filled[1][4] != ""                          # s001 filled
    assert "s002" in r.stderr + r.stdout and "held" in r.stderr + r.stdout


def test_regrade_after_a_student_left_the_roster_drops_their_old_grade(tmp_path):
    """s002 is graded, then removed from the roster; the same folder is graded again.
    Their file now names nobody (listed unmatched), and their old 21/21 from the journal
    is in neither grades.csv nor results.json: no output row carries a grade the current
    roster and folder no longer account for."""
    course = course_with(tmp_path / "course", ["s001,Anna,Ivanova,,,", "s002,Boris,Petrov,,,",
                                               "s003,Vera,Smirnova,,,"])
    sub, out = tmp_path / "sub", tmp_path / "out"
    for sid in ("s001", "s002", "s003"):
        put(sub, f"{sid}.ipynb", sid)
    grade(sub, course, out)
    assert set(grades(out)) == {"s001", "s002", "s003"}
    (course / "roster.csv").write_text(
        "\n".join([HEADER, "s001,Anna,Ivanova,,,", "s003,Vera,Smirnova,,,"]) + "\n",
        encoding="utf-8")
    grade(sub, course, out)
    assert set(grades(out)) == {"s001", "s003"}
    assert set(json.loads((out / "results.json").read_text(encoding="utf-8"))) == {"s001", "s003"}
    assert unmatched(out)["s002.ipynb"]["status"] == "unmatched"
    from convpset.autograder.outputs import Journal

    assert set(Journal(out).load()) == {"s001", "s003"}, "pset export reads the journal"
    (kept,) = out.glob("history/*/grades.csv")
    assert "s002" in kept.read_text(encoding="utf-8"), "the previous outputs are archived"
    diff = json.loads((out / "regrade_diff.json").read_text(encoding="utf-8"))
    assert [c["student_id"] for c in diff] == ["s002"], diff
