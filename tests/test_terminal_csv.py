"""Student-chosen names reach the instructor's terminal, the disk and grades.csv as inert
text (issue 19, points 2 and 3).

A real ``grade`` run (the console entry point, in a subprocess) over submissions whose
folder names carry terminal escapes (OSC 52 clipboard writes, CSI screen clears, OSC 8
links, 8-bit C1 controls), rich markup, bidi overrides and spreadsheet formulas:

* stdout and stderr hold no ESC, C0 or C1 byte and no bidi control -- as a log (a pipe)
  and as a colour terminal (``FORCE_COLOR``), where the only escapes are rich's own
  styling and no hyperlink; the markup shows literally instead of being rendered;
* every feedback page is named by a safe file name (``outputs.feedback_file``);
* grades.csv's text cells never start a formula, the scores are bare numbers, and the
  original id is recovered exactly with ``csv_original``;
* LibreOffice itself (headless, converting to xlsx) reads those cells back as text, not
  as formula results, while the same ids written the old way do come back as formulas.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from session_build import build_once  # noqa: E402

from convpset.autograder.outputs import feedback_file  # noqa: E402
from convpset.autograder.untrusted import (  # noqa: E402
    csv_cell,
    csv_original,
    csv_table,
    is_safe_name,
)

EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"

# Folder names a student can create (no "/" and no NUL; everything else goes).
HOSTILE = {
    "osc52": "\x1b]52;c;ZWNobyBwd25lZA==\x07clip",
    "csi_clear": "\x1b[2J\x1b[3J\x1b[Hcls",
    "osc8": "\x1b]8;;mailto:a@evil.example\x1b\\click me\x1b]8;;\x1b\\",
    "c1": "\x9b2J\x9d52;c;eA==\x9cc1",
    "markup_link": "[link=mailto:a@evil.example]pay here",
    "markup_style": "[bold red on white]LOUD",
    "bidi": "s0\u202egnp.exe\u2066x",
    "hyperlink": '=HYPERLINK("mailto:a@evil.example","open me")',
    "equals": "=1+2",
    "plus_dde": "+cmd|' calc'!A0",
    "at": "@SUM(1+1)",
    "minus": "-2+3",
    "tab": "\t=1+2",
    "cr": "\r=1+2",
    "newline": "two\nlines",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# what no output line may hold: C0 controls but tab/newline, DEL, C1, bidi controls
BAD_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# rich's own escapes on a colour terminal: SGR styling, cursor show/hide, line erase/up
RICH_OWN = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[[0-9]*[AK]|\x1b\[2K|\r")


def _course(tmp: Path) -> Path:
    """The sample course with two correct returns and one folder per hostile name, each
    holding a copy of s001's notebook (nbgrader's ``submitted/NAME/conv1/`` layout)."""
    root = tmp / "course"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("submitted"))
    roster = (root / "roster.csv").read_text("utf-8").splitlines(keepends=True)
    (root / "roster.csv").write_text("".join(roster[:6]), "utf-8")   # 5 students: every row shown
    sub = root / "submitted"
    for sid in ("s001", "s002"):
        shutil.copytree(EXAMPLE / "submitted" / sid, sub / sid)
    nb = EXAMPLE / "submitted" / "s001" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    for name in HOSTILE.values():
        d = sub / name / ASSIGNMENT
        d.mkdir(parents=True)
        shutil.copyfile(nb, d / f"{ASSIGNMENT}.ipynb")
    return root


def _grade(root: Path, out: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update({"PYTHONPATH": str(ROOT), "COLUMNS": "250", **env_extra})
    cmd = [sys.executable, "-c", "from convpset.cli import grade_main; grade_main()",
           str(root / "submitted"), "--course", str(root), "--out", str(out), "--jobs", "1"]
    return subprocess.run(cmd, capture_output=True, env=env, timeout=600)


RUNS = {"log": {"TERM": "dumb"},                                  # a log: stdout is a pipe
        "tty": {"FORCE_COLOR": "1", "TERM": "xterm-256color"}}    # a colour terminal


def _build(d: Path) -> str:
    """The course, graded twice (as a log, then on a terminal: the second run finds every
    notebook unchanged and prints the same table from the journal); outputs kept."""
    root = _course(d)
    for label, env in RUNS.items():
        r = _grade(root, d / "out", env)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
        (d / f"{label}.stdout").write_bytes(r.stdout)
        (d / f"{label}.stderr").write_bytes(r.stderr)
    return "ok"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    d = build_once(tmp_path_factory, "termcsv", "built", _build)   # once per session
    return {"root": d / "course", "out": d / "out", "dir": d}


def _texts(graded: dict, label: str) -> dict[str, str]:
    return {s: (graded["dir"] / f"{label}.{s}").read_bytes().decode("utf-8")
            for s in ("stdout", "stderr")}


@pytest.mark.slow
def test_grade_output_as_a_log_has_no_control_bytes_and_shows_markup_literally(graded):
    out = _texts(graded, "log")
    for stream, text in out.items():
        assert "\x1b" not in text, (stream, text[:2000])
        assert not BAD_CHARS.search(text), (stream, BAD_CHARS.findall(text))
    table = out["stdout"]
    # every hostile student is listed, as visible escapes / literal text
    assert "\\x1b]52;c;ZWNobyBwd25lZA==\\x07clip" in table
    assert "\\x1b[2J\\x1b[3J\\x1b[Hcls" in table
    assert "\\x9b2J\\x9d52;c;eA==\\x9cc1" in table
    assert "s0\\u202egnp.exe\\u2066x" in table
    assert "two\\x0alines" in table
    # rich markup in a name is not consumed: shown as typed
    assert "[link=mailto:a@evil.example]pay here" in table
    assert "[bold red on white]LOUD" in table


@pytest.mark.slow
def test_grade_output_on_a_colour_terminal_has_only_riches_own_styling(graded):
    out = _texts(graded, "tty")
    assert "\x1b[" in out["stdout"], "FORCE_COLOR did not make rich style the output"
    for stream, text in out.items():
        assert "\x1b]" not in text, (stream, "an OSC sequence (clipboard, hyperlink, title)")
        rest = RICH_OWN.sub("", text)
        assert "\x1b" not in rest, (stream, rest[rest.index("\x1b") - 40:][:120])
        assert not BAD_CHARS.search(rest), (stream, BAD_CHARS.findall(rest))
    plain = RICH_OWN.sub("", out["stdout"])
    assert "[link=mailto:a@evil.example]pay here" in plain
    assert "[bold red on white]LOUD" in plain


@pytest.mark.slow
def test_feedback_pages_are_named_by_a_safe_form_of_the_id(graded):
    pages = sorted(p.name for p in (graded["out"] / "feedback").iterdir())
    for name in pages:
        assert name.endswith(".html") and is_safe_name(name), repr(name)
    for sid in [*HOSTILE.values(), "s001", "s002"]:
        page = graded["out"] / "feedback" / feedback_file(sid)
        assert page.is_file(), repr(sid)
    assert "s001.html" in pages                      # a safe id keeps its own name
    # two hostile ids never share a page
    assert len({feedback_file(s) for s in HOSTILE.values()}) == len(HOSTILE)


def _rows(out: Path) -> list[list[str]]:
    text = (out / "grades.csv").read_bytes().decode("utf-8")     # no newline translation
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.slow
def test_grades_csv_neutralises_text_and_keeps_ids_and_numbers(graded):
    rows = _rows(graded["out"])
    header, body = rows[0], rows[1:]
    ids = [csv_original(r[0]) for r in body]
    for sid in [*HOSTILE.values(), "s001"]:
        assert sid in ids, repr(sid)                     # the original text, recovered
    for row in body:
        for cell in row:
            assert not cell.lstrip(" '").startswith(FORMULA_START) or cell.startswith("'"), \
                repr(cell)
        for cell in row[1:header.index("flags")]:        # total, max, parts: numbers
            float(cell)
    raw = (graded["out"] / "grades.csv").read_text("utf-8")
    assert "\ns001,21,21," in raw                        # unquoted, unprefixed numbers
    journal = [json.loads(line) for line in
               (graded["out"] / "journal.jsonl").read_text("utf-8").splitlines()]
    assert set(HOSTILE.values()) <= {j["student_id"] for j in journal}
    assert header[:3] == ["student_id", "total", "max"]


# ----------------------------------------------------------------------------- LibreOffice


def _soffice_find() -> str | None:
    for name in ("soffice", "libreoffice", "/usr/bin/soffice", "/usr/lib/libreoffice/program/soffice"):
        path = shutil.which(name)
        if path:
            return path
    return None


def soffice() -> str:
    """LibreOffice's binary; installed with apt when missing and possible (root, Debian),
    as tests/browser.py does for Chromium; otherwise the test is skipped with the
    command that installs it."""
    from browser import apt_installed

    return apt_installed(_soffice_find, "libreoffice-calc-nogui", "LibreOffice")


NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def _calc_cells(csv_path: Path, work: Path) -> list[list[tuple[str, str, bool]]]:
    """``csv_path`` opened by LibreOffice Calc (comma, UTF-8, formulas evaluated, as an
    instructor opening the file gets it) and saved as xlsx: per row, per cell, (type,
    value shown, whether the cell is a formula)."""
    profile = work / "lo-profile"
    r = subprocess.run([soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless",
                        "--infilter=CSV:44,34,76,1,,1033,false,false,false,false,false,-1,true",
                        "--convert-to", "xlsx", "--outdir", str(work), str(csv_path)],
                       capture_output=True, text=True, timeout=300)
    xlsx = work / (csv_path.stem + ".xlsx")
    assert xlsx.is_file(), (r.returncode, r.stdout, r.stderr)
    with zipfile.ZipFile(xlsx) as z:
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
        shared = [
            "".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t"))
            for si in ElementTree.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", NS)
        ] if "xl/sharedStrings.xml" in z.namelist() else []
    rows = []
    for row in sheet.iter(f"{{{NS['m']}}}row"):
        cells = []
        for c in row.findall("m:c", NS):
            kind = c.get("t", "n")
            v = c.find("m:v", NS)
            value = "" if v is None else v.text or ""
            if kind == "s":
                value = shared[int(value)]
            # OOXML writes a control character as _xHHHH_
            value = re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), value)
            cells.append((kind, value, c.find("m:f", NS) is not None))
        rows.append(cells)
    return rows


@pytest.mark.slow
def test_libreoffice_reads_neutralised_cells_as_the_literal_text(tmp_path):
    ids = list(HOSTILE.values())
    # control: the same ids written the old way are run as formulas by this reader (so
    # this test would fail on a grades.csv that does not neutralise them)
    old = tmp_path / "old.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student_id", "total"])
    writer.writerows([sid, "1"] for sid in ids)
    old.write_text(buf.getvalue(), encoding="utf-8")
    (tmp_path / "o").mkdir()
    old_cells = _calc_cells(old, tmp_path / "o")
    formulas = [c for row in old_cells for c in row if c[2]]
    assert len(formulas) >= 2, old_cells        # =HYPERLINK(...) and =1+2 at least
    assert ("n", "3", True) in formulas          # "=1+2" became the number 3

    new = tmp_path / "grades.csv"
    new.write_text(csv_table([["student_id", "total", "max"],
                              *([sid, 17.5, 21.0] for sid in ids)]), encoding="utf-8")
    (tmp_path / "n").mkdir()
    cells = _calc_cells(new, tmp_path / "n")
    assert len(cells) == len(ids) + 1
    for sid, row in zip(ids, cells[1:], strict=True):
        (kind, shown, is_formula), total, top = row
        assert not is_formula and kind == "s", (sid, row)
        # LibreOffice keeps the apostrophe as text; either way the id comes back exactly
        assert csv_original(shown.replace("\r\n", "\n")) in (sid, sid.replace("\r", "\n")), \
            (sid, shown)
        assert total == ("n", "17.5", False) and top == ("n", "21", False), row


# ----------------------------------------------------------------------------- the helpers
@pytest.mark.parametrize("value", [*HOSTILE.values(), "s001", "'quoted", "''=x", " =1", "",
                                   "Анна Иванова", "'-2"])
def test_csv_cell_neutralises_and_csv_original_undoes_it(value):
    cell = csv_cell(value)
    assert isinstance(cell, str)
    assert not cell.lstrip(" '").startswith(FORMULA_START) or cell.startswith("'")
    assert csv_original(cell) == value


def test_csv_cell_keeps_numbers_numbers():
    assert csv_cell(17.5) == 17.5 and csv_cell(-2) == -2 and csv_cell(None) == ""
    assert csv_cell("-2") == "'-2"          # text that looks like a formula stays text
    assert csv_table([["a", -1.5, 3, 21.0, "-1.5"]]) == "a,-1.5,3,21,'-1.5\n"


def test_terminal_json_is_the_same_json_without_controls():
    from convpset.cli._style import terminal_json

    value = {"output": "\x1b]52;c;eA==\x07 \x9b2J s0\u202egnp Анна"}
    text = terminal_json(value)
    assert not BAD_CHARS.search(text) and "\x1b" not in text
    assert json.loads(text) == value and "Анна" in text


def test_console_helpers_print_data_as_text(capsys):
    from convpset.cli import _style

    _style.show("id ", _style.data(HOSTILE["osc8"]), " [link=mailto:x]y")
    _style.warn(HOSTILE["osc52"])
    table = _style.data_table(["student"], [[HOSTILE["markup_link"]], [HOSTILE["bidi"]]])
    _style.console.print(table)
    out = capsys.readouterr()
    for text in (out.out, out.err):
        assert "\x1b" not in text and not BAD_CHARS.search(text)
    assert "[link=mailto:x]y" in out.out and "[link=mailto:a@evil.example]pay here" in out.out
    assert "warning: \\x1b]52" in out.err


RAW_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.mark.slow
def test_json_files_we_write_are_inert_in_a_terminal_and_keep_the_ids(graded):
    """``cat results.json`` (or the journal, unmatched_files.json, answers_match.json) in
    a terminal: JSON escapes ESC but not the 8-bit C1 controls (``\\x9b`` is CSI) or bidi
    overrides; we write those as ``\\uXXXX``, the same JSON value."""
    files = [p for p in graded["out"].iterdir() if p.suffix in (".json", ".jsonl")]
    assert {p.name for p in files} >= {"results.json", "journal.jsonl"}, files
    for p in files:
        raw = p.read_text(encoding="utf-8")
        assert not RAW_IN_JSON.search(raw), (p.name, RAW_IN_JSON.findall(raw)[:5])
    ids = set(json.loads((graded["out"] / "results.json").read_text(encoding="utf-8")))
    assert {HOSTILE["c1"], HOSTILE["bidi"]} <= ids


def test_file_names_that_are_not_utf8_are_listed_not_fatal(tmp_path):
    """A file or folder name with bytes that are not UTF-8 reaches Python as lone
    surrogates; printed or written raw they raise UnicodeEncodeError, which failed the
    whole batch (exit 1) while writing unmatched_files.csv. Now they are escapes."""
    root = tmp_path / "course"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("submitted"))
    sub = root / "submitted"
    shutil.copytree(EXAMPLE / "submitted" / "s001", sub / "s001")
    nb = EXAMPLE / "submitted" / "s001" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    folder = os.fsdecode(b"\xff\xfe=x")
    (sub / folder / ASSIGNMENT).mkdir(parents=True)
    shutil.copyfile(nb, sub / folder / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    (sub / os.fsdecode(b"\xffbad.ipynb")).write_text("{}")
    out = tmp_path / "out"
    r = _grade(root, out, RUNS["log"])
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    unmatched = (out / "unmatched_files.csv").read_text(encoding="utf-8")
    assert "\\udcffbad.ipynb" in unmatched, unmatched
    assert "\\udcffbad.ipynb" in r.stdout.decode("utf-8")
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text(encoding="utf-8"))))
    assert ["s001", "21"] in [row[:2] for row in rows]


LINE_BREAKERS = {"ls": "s0\u2028fake line", "ps": "s0\u2029fake para", "nul": "s0\x00nul",
                 "nel": "s0\x85nel"}


@pytest.mark.parametrize("value", LINE_BREAKERS.values(), ids=LINE_BREAKERS)
def test_unicode_line_separators_and_nul_never_reach_the_terminal(capsys, value):
    """U+2028/U+2029 break the line in many terminals and log viewers (a one-line id could
    fake a row of its own); NUL and NEL likewise: each is shown as an escape."""
    from convpset.cli import _style

    _style.show("id ", _style.data(value))
    _style.warn(value)
    _style.console.print(_style.data_table(["student"], [[value]]))
    print(_style.terminal_json({"id": value}))
    out = capsys.readouterr()
    for text in (out.out, out.err):
        assert not re.search("[\x00\x85\u2028\u2029]", text), repr(text)
    assert json.loads(_style.terminal_json({"id": value})) == {"id": value}


def test_grader_error_log_line_is_inert(caplog):
    from convpset.autograder.pipeline import failed_result
    from convpset.autograder.submissions import Submission

    sub = Submission(HOSTILE["osc52"], None, "nbgrader")
    with caplog.at_level(logging.WARNING, logger="convpset.autograder.pipeline"):
        failed_result(sub, [], "judge", ValueError("\x1b[2J" + HOSTILE["bidi"]))
    text = caplog.text
    assert "grader error" in text
    assert "\x1b" not in text and not BAD_CHARS.search(text.replace("\n", "")), text


@pytest.mark.slow
def test_nbgrader_autograded_folders_are_named_by_a_safe_form_of_the_id(graded, tmp_path,
                                                                        monkeypatch):
    """grade's nbgrader step never files a notebook under a raw (hostile) id: such ids are
    never roster ids, so they are kept out of the gradebook and ``autograded/`` and are
    listed for the instructor as text; every folder it makes is a safe name."""
    from nbgrader.api import Gradebook

    from convpset.autograder.outputs import student_file_stem
    from convpset.autograder.results import StudentResult
    from convpset.integrations.nbgrader.gradebook import GRADEBOOK, write_gradebook
    from convpset.notebooks.course import load_course

    # nbgrader runs `alembic` (beside this Python) to create the gradebook
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "course"
    shutil.copytree(graded["root"], root)
    with Gradebook(f"sqlite:///{root / GRADEBOOK}") as gb:      # the assignment, no cells
        gb.add_assignment(ASSIGNMENT)
        gb.add_notebook(ASSIGNMENT, ASSIGNMENT)
    results = {}
    for line in (graded["out"] / "journal.jsonl").read_text("utf-8").splitlines():
        data = json.loads(line)
        if data.get("path"):     # the journal points into the fixture's course: the copy
            rel = Path(data["path"]).resolve().relative_to(graded["root"].resolve())
            data["path"] = str(root / rel)
        results[data["student_id"]] = StudentResult.from_json(data)
    report = write_gradebook(load_course(root), ASSIGNMENT, list(results.values()), "en", False)
    hostile = set(HOSTILE.values())
    assert hostile <= set(report.outsiders), report
    auto = root / "autograded"
    folders = sorted(p.name for p in auto.iterdir()) if auto.exists() else []
    for name in folders:
        assert is_safe_name(name), repr(name)
    for sid in hostile:
        assert not (auto / student_file_stem(sid)).exists(), repr(sid)
    with Gradebook(f"sqlite:///{root / GRADEBOOK}") as gb:
        assert not hostile & {s.id for s in gb.students}
    message = report.message("en", root / GRADEBOOK)
    assert not any(ch in message for ch in "\x1b\x07\x9b\x9c\x9d\u202e\u2066"), repr(message)


def test_grade_summary_of_a_large_batch_and_its_changes_is_inert(capsys, tmp_path,
                                                                  monkeypatch):
    """The summary's other branches (over SHOW_ROWS students: flagged ones only; the
    regrade's changed-grades table) print hostile ids and flags as text too."""
    from rich.console import Console

    from convpset.autograder.batch import BatchReport
    from convpset.autograder.results import StudentResult
    from convpset.cli import _style
    from convpset.cli import grade as grade_cli

    wide = Console(width=400, highlight=False)          # no wrapped cells
    monkeypatch.setattr(grade_cli, "console", wide)
    monkeypatch.setattr(_style, "console", wide)
    ids = [*HOSTILE.values(), *(f"s{i:03d}" for i in range(60))]
    results = [StudentResult(sid, ASSIGNMENT, None, "", (),
                             flags=(f"stamp:{HOSTILE['osc52']}",) if sid in HOSTILE.values() else ())
               for sid in ids]
    changes = [{"student_id": sid, "old": 1.0, "old_max": 21.0, "new": 2.0, "new_max": 21.0,
                "reason": HOSTILE["csi_clear"],
                "parts": [{"part": HOSTILE["markup_link"], "old": 0.0, "new": 1.0}]}
               for sid in HOSTILE.values()]
    report = BatchReport(ASSIGNMENT, tmp_path / HOSTILE["bidi"], graded=len(ids), results=results,
                         changes=changes, archived=tmp_path / HOSTILE["osc8"])
    grade_cli._summary(report)
    out = capsys.readouterr()
    for text in (out.out, out.err):
        assert "\x1b" not in text and not BAD_CHARS.search(text), BAD_CHARS.findall(text)
    assert "flagged students" in out.out and "changed grades" in out.out
    assert "[link=mailto:a@evil.example]pay here" in out.out
