"""Canvas and Moodle files that the LMS cannot put on the wrong student (issue 20, point 4).

Every file we write is fed to a port of the target system's own importer
(tests/lms_importers.py: canvas-lms ``app/models/gradebook_importer.rb``,
``GradebookImporter#process_student`` / ``csv_stream`` / ``identify_delimiter``; moodle
``grade/import/csv/classes/load_data.php``, ``prepare_import_grade_data`` /
``map_user_data_with_value`` / ``check_user_exists``), with real-shaped exports: a BOM,
CRLF, ``;`` with decimal commas, read-only and Manual Posting rows, localised Moodle
headers, and names with commas, quotes, Cyrillic and a leading ``=``. Each test asserts
that every grade the import changes belongs to the student we meant, and that every
other byte of a template comes back as it was.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from lms_importers import (  # noqa: E402
    CanvasImport,
    CanvasUser,
    MoodleAbort,
    MoodleUser,
    canvas_changes,
    canvas_import,
    moodle_import,
)

from convpset.autograder.results import ProblemResult, StudentResult  # noqa: E402
from convpset.integrations.lms.export import ExportRequest, export  # noqa: E402
from convpset.notebooks.course import CourseError, load_course  # noqa: E402
from convpset.problems.base import PartResult  # noqa: E402

PSET = str(Path(sys.executable).with_name("pset"))
ASSIGNMENT, TITLE, CANVAS_AID = "conv1", "Convolutions by hand", 7148451
EVIL = '=HYPERLINK("http://evil.example/x","open")'

# student_id, first name, last name, email, Canvas user id (lms_user_id), score (None:
# not graded). s021 is s001's namesake; s030 was dropped from the Canvas course and a
# namesake (48299) is still in it; s008 has no lms_user_id; s040 has no email.
ROSTER = [
    ("s001", "Anna", "Ivanova", "s001@example.edu", "48213", 17.5),
    ("s021", "Anna", "Ivanova", "s021@example.edu", "48240", 12.0),
    ("s003", "Vera", "Smirnova", "s003@example.edu", "48215", 21.0),
    ("s013", 'Olga "Olya"', "Smirnova", "s013@example.edu", "48216", 9.25),
    ("s005", "Даша", "Попова", "s005@example.edu", "48217", 14.0),
    ("s007", EVIL, "Lebedeva", "s007@example.edu", "48218", 20.0),
    ("s008", "Ivan", "Kozlov, Jr.", "s008@example.edu", "", 11.0),
    ("s030", "Nikolai", "Morozov", "s030@example.edu", "48777", 8.0),
    ("s040", "Pavel", "Kuznetsov", "", "48219", 13.0),
    ("s041", "Raisa", "Popova", "s041@example.edu", "48220", None),
]
SCORES = {r[0]: r[5] for r in ROSTER if r[5] is not None}
LMS_ID = {r[0]: r[4] for r in ROSTER}

CANVAS_USERS = [
    CanvasUser(48213, "Anna Ivanova", "Ivanova, Anna", "s001", "aivanova"),
    CanvasUser(48240, "Anna Ivanova", "Ivanova, Anna", None, "anna.i"),
    CanvasUser(48215, "Vera Smirnova", "Smirnova, Vera", None, "s003@example.edu"),
    CanvasUser(48216, 'Olga "Olya" Smirnova', 'Smirnova, Olga "Olya"', "U-77821", "osmirnova"),
    CanvasUser(48217, "Даша Попова", "Попова, Даша", "s005", "dpopova"),
    CanvasUser(48218, f"{EVIL} Lebedeva", f"Lebedeva, {EVIL}", None, "zlebedeva"),
    CanvasUser(48221, "Ivan Kozlov, Jr.", "Kozlov, Jr., Ivan", None, "ikozlov"),
    CanvasUser(48219, "Pavel Kuznetsov", "Kuznetsov, Pavel", None, "pkuznetsov"),
    CanvasUser(48220, "Raisa Popova", "Popova, Raisa", None, "rpopova"),
    CanvasUser(48299, "Nikolai Morozov", "Morozov, Nikolai", "x9001", "nmorozov"),
    CanvasUser(48300, "Test Student", "Student, Test"),
]
CANVAS_ASSIGNMENTS = {7148450: "Warm-up quiz", CANVAS_AID: TITLE}


def _result(sid: str, score: float) -> StudentResult:
    part = PartResult("a", score, 21.0, "partial", {"en": "", "ru": ""})
    return StudentResult(sid, ASSIGNMENT, None, "", (ProblemResult(1, "conv_as_matrix", 1,
                                                                   (part,)),))


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> tuple[Path, Path]:
    """(course dir, grades dir): the sample course's config, our roster, a journal."""
    d = tmp_path_factory.mktemp("lmscourse")
    shutil.copy2(ROOT / "examples" / "course" / "pset.toml", d / "pset.toml")
    with (d / "roster.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student_id", "first_name", "last_name", "email", "lms_user_id"])
        w.writerows([r[:5] for r in ROSTER])
    grades = d / "grades" / ASSIGNMENT
    grades.mkdir(parents=True)
    import json
    with (grades / "journal.jsonl").open("w", encoding="utf-8") as fh:
        for sid, score in SCORES.items():
            fh.write(json.dumps(_result(sid, score).to_json()) + "\n")
    return d, grades


def _export(course, tmp_path, system, **kw):
    d, grades = course
    return export(load_course(d), ASSIGNMENT, ExportRequest(system, grades, tmp_path, **kw))


def _changes_owned(changes: dict[tuple[int, str], str], key: str) -> dict[int, str]:
    assert {k[1] for k in changes} <= {key}, f"other assignments changed: {changes}"
    return {uid: grade for (uid, _), grade in changes.items()}


# -------------------------------------------------------------------- Canvas, no template
@pytest.mark.parametrize("canvas_id", [str(CANVAS_AID), None])
def test_canvas_without_template_reaches_only_the_right_accounts(course, tmp_path, canvas_id):
    """Canvas attaches our rows by ``ID`` alone: s021 does not land on her namesake
    s001's account, the dropped s030 not on his namesake 48299; students without an
    lms_user_id, or without a grade, are left out and listed."""
    out = _export(course, tmp_path, "canvas", canvas_id=canvas_id)
    text = out.path.read_text(encoding="utf-8")
    imp = canvas_import(text, CANVAS_USERS, CANVAS_ASSIGNMENTS)
    assert imp.new_assignments == [], "the column fills the existing assignment"
    owned = _changes_owned(canvas_changes(CanvasImport(), imp), f"id:{CANVAS_AID}")
    meant = {int(LMS_ID[s]): f"{SCORES[s]:g}" for s in SCORES
             if LMS_ID[s] and int(LMS_ID[s]) in {u.id for u in CANVAS_USERS}}
    attached = {uid: g for uid, g in owned.items() if uid > 0}
    assert attached == meant
    assert 48299 not in owned and 48213 in owned and owned[48240] == "12"
    assert len(imp.new_students) == 1, "s030's row is attached to nobody (Canvas asks)"
    assert imp.points_possible[f"id:{CANVAS_AID}"] == "21"
    f = out.filled
    assert any("s008" in x for x in f.left_out) and any("s041" in x for x in f.left_out)
    assert (canvas_id is None) == any("--canvas-id" in w for w in f.warnings)
    assert EVIL not in text and "Ivanova" not in text, "no names: nothing to match by name"


def test_canvas_id_must_be_a_number(course, tmp_path):
    d, _ = course
    with pytest.raises(CourseError, match="--canvas-id must be"):
        _export(course, tmp_path, "canvas", canvas_id="conv1")
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "canvas", "--course", str(d),
                        "--canvas-id", "12x", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--canvas-id must be" in r.stderr
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------- Canvas, template
def _canvas_export(sep: str, decimal: str) -> str:
    """A Canvas *Export Entire Gradebook* file as Canvas writes it: BOM, CRLF, the
    Points Possible and Manual Posting rows, read-only summary columns, ``EX``."""
    def num(x: str) -> str:
        return x.replace(".", decimal)

    rows = [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Warm-up quiz (7148450)",
         f"{TITLE} ({CANVAS_AID})", "Current Points", "Final Points", "Current Score",
         "Final Score"],
        ["    Points Possible", "", "", "", "", num("10.00"), num("21.00"), "(read only)",
         "(read only)", "(read only)", "(read only)"],
        ["", "", "", "", "", "", "Manual Posting", "", "", "", ""],
    ]
    for u in CANVAS_USERS:
        grade = {48215: "EX", 48217: num("3.50"), 48219: "N/A"}.get(u.id, "")
        rows.append([u.sortable_name, str(u.id), u.sis_user_id or "", u.login_id or "",
                     "Convolutions 101", num("9.00"), grade, num("9.00"), num("9.00"),
                     num("90.00"), num("29.03")])
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator="\r\n").writerows(rows)
    return "\ufeff" + buf.getvalue()


def _only_column_differs(before: list[str], after: list[str], col: int, sep: str) -> list[int]:
    """Indices of the lines that differ, after checking that each differs in one stretch
    between two separators (so every other byte is as it was) and that, parsed, that
    stretch is field ``col``."""
    assert len(before) == len(after)
    changed = []
    for i, (x, y) in enumerate(zip(before, after, strict=True)):
        if x == y:
            continue
        fx, fy = x.split(sep), y.split(sep)
        assert len(fx) == len(fy), (x, y)
        assert sum(p != q for p, q in zip(fx, fy, strict=True)) == 1, (x, y)
        px, py = next(csv.reader([x], delimiter=sep)), next(csv.reader([y], delimiter=sep))
        assert px[:col] + px[col + 1:] == py[:col] + py[col + 1:], (x, y)
        changed.append(i)
    return changed


@pytest.mark.parametrize("sep,decimal", [(",", "."), (";", ",")])
def test_canvas_template_fill_lands_on_the_rows_owner(course, tmp_path, sep, decimal):
    """A ``;`` export with decimal commas (Canvas in ru/de/fr) is read and written in its
    own convention; ``21,00`` is the same maximum as ours (no warning); the EX cell stays
    EX; rows are matched by the roster's lms_user_id first, so the two Anna Ivanovas get
    their own grades, and Canvas's importer puts every changed grade on its owner."""
    template = tmp_path / "export.csv"
    before = _canvas_export(sep, decimal)
    template.write_bytes(before.encode("utf-8"))
    out = _export(course, tmp_path / "o", "canvas", template=template)
    after = out.path.read_bytes().decode("utf-8")
    assert after.startswith("\ufeff") and after.count("\r\n") == before.count("\r\n")
    changed = _only_column_differs(before.split("\r\n"), after.split("\r\n"), 6, sep)
    assert len(changed) == 6
    imp_before = canvas_import(before, CANVAS_USERS, CANVAS_ASSIGNMENTS)
    imp_after = canvas_import(after, CANVAS_USERS, CANVAS_ASSIGNMENTS)
    owned = _changes_owned(canvas_changes(imp_before, imp_after), f"id:{CANVAS_AID}")
    # s003 is excused (EX kept), s040's cell is N/A (not assigned to him: kept), s030's
    # namesake 48299 is not s030 (his Canvas id is 48777), s008 (no lms_user_id) is found
    # by his unique name, with a warning
    meant = {int(LMS_ID[s] or 48221): SCORES[s] for s in SCORES
             if s not in ("s003", "s030", "s040")}
    assert {u: float(g) for u, g in owned.items()} == meant
    assert imp_after.grades[(48215, f"id:{CANVAS_AID}")] == "EX", "excused stays excused"
    assert imp_after.grades[(48219, f"id:{CANVAS_AID}")] == "N/A"
    f = out.filled
    assert f.kept == {"s003": "EX", "s040": "N/A"}
    assert len(f.warnings) == 1 and "by name only" in f.warnings[0] and "s008" in f.warnings[0]
    assert f.matched_by["s021"] == "ID" and f.matched_by["s001"] == "ID"
    if decimal == ",":
        assert f"{sep}9,25{sep}" in after and f"{sep}17,5{sep}" in after


def test_canvas_points_possible_with_decimal_comma_is_checked(course, tmp_path):
    """``20,00`` in a ``;`` file is 20 points, not "unreadable, skip the check"."""
    template = tmp_path / "export.csv"
    template.write_text(_canvas_export(";", ",").replace("21,00", "20,00"), encoding="utf-8")
    out = _export(course, tmp_path / "o", "canvas", template=template)
    assert any("20,00" in w and "21" in w for w in out.filled.warnings)


def test_canvas_read_only_column_refused(course, tmp_path):
    template = tmp_path / "export.csv"
    template.write_text(_canvas_export(",", "."), encoding="utf-8")
    text = template.read_text(encoding="utf-8").replace("Final Points", "Bonus (99)")
    template.write_text(text, encoding="utf-8")
    with pytest.raises(CourseError, match="read-only"):
        _export(course, tmp_path / "o", "canvas", template=template, column="Bonus (99)")


def test_canvas_name_twice_in_file_is_not_matched_by_name(course, tmp_path):
    """Without ids in common, a roster name that two Canvas rows carry fills neither."""
    rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
             f"{TITLE} ({CANVAS_AID})"],
            ["Kozlov, Jr., Ivan", "50001", "", "", "A", ""],
            ["Kozlov, Jr., Ivan", "50002", "", "", "B", ""]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    template = tmp_path / "export.csv"
    template.write_text(buf.getvalue(), encoding="utf-8")
    out = _export(course, tmp_path / "o", "canvas", template=template)
    assert out.path.read_text(encoding="utf-8") == buf.getvalue()
    assert out.filled.filled == 0 and "s008" in out.filled.unmatched


# -------------------------------------------------------------------------------- Moodle
MOODLE_USERS = [MoodleUser(101, "s001", "s001@example.edu", "anna1"),
                MoodleUser(102, "", "s008@example.edu", "ivan"),
                MoodleUser(103, "S003", "vera@example.edu", "vera"),
                MoodleUser(104, "s021", "s021@example.edu", "anna2"),
                MoodleUser(105, "s005", "s005@example.edu", "dasha"),
                MoodleUser(106, "s007", "s007@example.edu", "zhanna"),
                MoodleUser(107, "s013", "s013@example.edu", "olga")]

# (language, separator, decimal separator, header strings from Moodle's language packs:
#  first name, last name, ID number, email, item title, course total, time exported)
MOODLE_LANGS = {
    "en": (",", ".", ["First name", "Last name", "ID number", "Institution", "Email address",
                      f"Assignment: {TITLE} (Real)", "Course total (Real)",
                      "Last downloaded from this course"]),
    "ru": (";", ",", ["Имя", "Фамилия", "Индивидуальный номер", "Учреждение (организация)",
                      "Адрес электронной почты", f"Задание: {TITLE} (Значение)",
                      "Итоговая оценка за курс (Значение)",
                      "Последние загруженные из этого курса"]),
    "de": (";", ",", ["Vorname", "Nachname", "ID-Nummer", "Institution", "E-Mail-Adresse",
                      f"Aufgabe: {TITLE} (Punkte)", "Kurs gesamt (Punkte)",
                      "Zuletzt aus diesem Kurs geladen"]),
    "fr": ("\t", ",", ["Prénom", "Nom de famille", "Numéro d\u2019identification",
                       "Institution", "Adresse de courriel", f"Devoir\u00a0{TITLE} (Brut)",
                       "Total du cours (Brut)", "Dernier téléchargement depuis ce cours"]),
    "es": (";", ",", ["Nombre", "Apellido(s)", "Número de ID", "Institución",
                      "Dirección de correo", f"Tarea: {TITLE} (Real)",
                      "Total del curso (Real)", "Última descarga de este curso"]),
}


def _moodle_export(lang: str, empty_id_row: bool = True) -> str:
    """A Moodle plain-text grade export (fputcsv-style: fields with spaces quoted). Row 2
    (s008, graded by us) has an empty ID number, the case where Moodle's importer puts the
    row on the previous row's user; Даша has no email."""
    sep, dec, header = MOODLE_LANGS[lang]
    people = [("Anna", "Ivanova", "s001", "s001@example.edu"),
              ("Ivan", "Kozlov, Jr.", "" if empty_id_row else "s008", "s008@example.edu"),
              ("Vera", "Smirnova", " S003 ", "vera@example.edu"),
              ("Анна", "Иванова, мл.", "s021", "s021@example.edu"),
              ("Даша", "Попова", "s005", ""),
              (EVIL, "Lebedeva", "s007", "s007@example.edu"),
              ('Olga "Olya"', "Smirnova", "s013", "s013@example.edu")]

    def field(v: str) -> str:
        if any(c in v for c in (sep, '"', " ", "\t", "\n")):
            return '"' + v.replace('"', '""') + '"'
        return v

    lines = [sep.join(field(h) for h in header)]
    for first, last, idn, mail in people:
        lines.append(sep.join(field(v) for v in (first, last, idn, "Example University", mail,
                                                  "-", f"9{dec}00", "1764633600")))
    return "\n".join(lines) + "\n"


def _moodle_items(lang: str) -> dict[str, int]:
    return {MOODLE_LANGS[lang][2][5]: 900}


@pytest.mark.parametrize("lang", list(MOODLE_LANGS))
def test_moodle_template_rows_never_inherit_a_user(course, tmp_path, lang):
    """Localised headers and ``;`` / tab separators are read; the row with an empty ID
    number is left out (Moodle would import it onto the previous row's user) and listed;
    the mapping is printed; Moodle's importer puts each of our grades on its owner and
    imports nothing else that changed; every kept byte is as exported."""
    sep, dec, header = MOODLE_LANGS[lang]
    template = tmp_path / f"moodle_{lang}.csv"
    before = _moodle_export(lang)
    if lang == "de":                       # saved again by a Windows spreadsheet
        before = "\ufeff" + before.replace("\n", "\r\n")
    template.write_bytes(before.encode("utf-8"))
    out = _export(course, tmp_path / "o", "moodle", template=template)
    after = out.path.read_bytes().decode("utf-8")
    assert after.startswith("\ufeff") == (lang == "de")
    assert after.count("\r\n") == (before.count("\r\n") and before.count("\r\n") - 1)
    kept = [ln for ln in before.split("\n") if "Kozlov" not in ln]
    assert len(_only_column_differs(kept, after.split("\n"), 5, sep)) == 6
    f = out.filled
    assert f.left_out == ["line 3: Ivan Kozlov, Jr."]
    assert header[2] in f.mapping and "useridnumber" in f.mapping
    grades = moodle_import(after, sep, header[2], "useridnumber", MOODLE_USERS,
                           _moodle_items(lang), dec)
    wanted = {101: SCORES["s001"], 103: SCORES["s003"], 104: SCORES["s021"],
              105: SCORES["s005"], 106: SCORES["s007"], 107: SCORES["s013"]}
    assert {u: g[900] for u, g in grades.items()} == wanted, "each grade on its owner"
    assert 102 not in grades, "s008's id-less row is imported onto no one"
    if dec == ",":
        assert f"{sep}9,25{sep}" in after


def test_moodle_template_by_email_when_id_numbers_are_missing(course, tmp_path):
    """A file whose ID numbers are mostly empty supports mapping by email: that is the
    mapping printed, and only the row without an email is left out."""
    before = _moodle_export("en").replace(",s001,", ",,").replace(",s021,", ",,")
    template = tmp_path / "m.csv"
    template.write_text(before, encoding="utf-8")
    out = _export(course, tmp_path / "o", "moodle", template=template)
    assert "Email address" in out.filled.mapping and out.filled.left_out == ["line 6: Даша Попова"]
    grades = moodle_import(out.path.read_text(encoding="utf-8"), ",", "Email address",
                           "useremail", MOODLE_USERS, _moodle_items("en"))
    assert {u: g[900] for u, g in grades.items()} == {
        101: SCORES["s001"], 102: SCORES["s008"], 103: SCORES["s003"], 104: SCORES["s021"],
        106: SCORES["s007"], 107: SCORES["s013"]}


def test_moodle_row_with_id_zero_or_two_identities_is_not_filled(course, tmp_path):
    """An ID number "0" is empty() to PHP (the row would inherit a user): left out. A row
    whose ID number is one student's and email another's is filled for neither."""
    before = _moodle_export("en").replace(",s013,", ",0,").replace(",s001@example.edu,", ",,")
    before = before.replace(
        "s021,\"Example University\",s021@example.edu", "s021,\"Example University\",s005@example.edu")
    template = tmp_path / "m.csv"
    template.write_text(before, encoding="utf-8")
    out = _export(course, tmp_path / "o", "moodle", template=template)
    f = out.filled
    assert "ID number" in f.mapping, "2 rows empty either way: ID number preferred"
    assert any("Olga" in x for x in f.left_out) and "s013" not in f.matched_by
    assert "s021" in f.ambiguous and "s021" not in f.matched_by
    after = out.path.read_text(encoding="utf-8")
    row = next(ln for ln in after.split("\n") if ln.startswith("Анна"))
    assert ",-," in row, "the disputed row keeps Moodle's '-'"


def test_moodle_without_template_imports_whole(course, tmp_path):
    """Without a template every row names a graded student by both id and email; the
    ungraded (and unknown to Moodle) s041 and s040 without an email are left out and
    listed, so Moodle's importer neither aborts nor shifts a row to another user."""
    out = _export(course, tmp_path, "moodle")
    text = out.path.read_text(encoding="utf-8")
    users = [MoodleUser(200 + i, r[0], r[3], r[0]) for i, r in enumerate(ROSTER)
             if r[0] not in ("s041", "s040")]
    grades = moodle_import(text, ",", "Email address", "useremail", users, {TITLE: 1})
    by_sid = {u.id: u.idnumber for u in users}
    assert {by_sid[u]: g[1] for u, g in grades.items()} == \
        {s: v for s, v in SCORES.items() if s != "s040"}
    f = out.filled
    assert any("s041" in x for x in f.left_out) and any("s040" in x for x in f.left_out)
    assert any("--moodle-max" in w for w in f.warnings), "points out of 21 are said"
    rows = list(csv.reader(io.StringIO(text)))
    assert all(not c.startswith(("=", "+", "-", "@")) for r in rows for c in r)


def test_moodle_without_template_scaled(course, tmp_path):
    out = _export(course, tmp_path, "moodle", moodle_max=100.0)
    grades = moodle_import(out.path.read_text(encoding="utf-8"), ",", "ID number",
                           "useridnumber", [MoodleUser(1, "s003", "s003@example.edu", "v")] +
                           [MoodleUser(10 + i, r[0], r[3], r[0]) for i, r in enumerate(ROSTER)
                            if r[0] != "s003"], {TITLE: 1})
    assert grades[1][1] == 100.0
    assert out.filled.warnings == []


def test_moodle_max_above_100_is_warned(course, tmp_path):
    """Moodle aborts the whole import on a grade above gradepointmax (100 by default):
    with --moodle-max 150 the top score would be 150, so it is said before the upload."""
    out = _export(course, tmp_path, "moodle", moodle_max=150.0)
    with pytest.raises(MoodleAbort, match="gradevaluetoobig"):
        moodle_import(out.path.read_text(encoding="utf-8"), ",", "ID number", "useridnumber",
                      [MoodleUser(10 + i, r[0], r[3], r[0]) for i, r in enumerate(ROSTER)],
                      {TITLE: 1})
    assert any("above 100" in w for w in out.filled.warnings)
    template = tmp_path / "m.csv"
    template.write_text(_moodle_export("en"), encoding="utf-8")
    out = _export(course, tmp_path / "o", "moodle", template=template, moodle_max=150.0)
    assert any("above 100" in w for w in out.filled.warnings)


def test_moodle_importer_port_inherits_and_aborts():
    """The port itself, on the two behaviours the fix relies on (load_data.php)."""
    text = "ID number,Email address,A (Real)\ns001,a@x,5\n,b@x,7\n"
    users = [MoodleUser(1, "s001", "a@x", "a"), MoodleUser(2, "", "b@x", "b")]
    assert moodle_import(text, ",", "ID number", "useridnumber", users, {"A (Real)": 9}) == \
        {1: {9: 7.0}}, "the empty-id row lands on the previous user"
    with pytest.raises(MoodleAbort, match="usermappingerror"):
        moodle_import("ID number,A (Real)\nzz,5\n", ",", "ID number", "useridnumber", users,
                      {"A (Real)": 9})


def test_cli_prints_mapping_and_left_out(course, tmp_path):
    d, _ = course
    template = tmp_path / "m.csv"
    # the left-out row's name, typed by the student into Moodle, carries CSI "clear the
    # screen", a bell and rich markup: all shown as text
    template.write_text(_moodle_export("ru").replace("Ivan;", "Iv\x1b[2J\x07an[red];"),
                        encoding="utf-8")
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "moodle", "--course", str(d),
                        "--template", str(template), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Индивидуальный номер" in r.stdout and "useridnumber" in r.stdout
    assert "Iv\\x1b[2J\\x07an[red] Kozlov, Jr." in r.stderr and "left out" in r.stderr
    assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stderr


# a lone "\r" is left out: Python's writer does not quote it (its own output would not
# read back), and no LMS writes one
_CELL = st.lists(st.sampled_from(["a", "b", ",", ";", '"', "\t", " ", "é", "=", "\n", "\r\n"]),
                 max_size=5).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_CELL, min_size=1, max_size=4), min_size=1, max_size=4),
       st.sampled_from([",", ";", "\t"]), st.sampled_from(["\n", "\r\n"]))
def test_template_tokeniser_keeps_every_byte(rows, sep, newline):
    """Any CSV a spreadsheet or an LMS writes comes back byte for byte, and reads as the
    csv module reads it (the fill relies on both)."""
    from convpset.integrations.lms.gradebook import Sheet, tokenise

    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator=newline).writerows(rows)
    text = buf.getvalue()
    values, raw, ends = tokenise(text, sep)
    assert Sheet(values, raw, ends, sep).text() == text
    assert values == list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))


# ------------------------------------------------------- a roster naming one person twice
@pytest.mark.parametrize("second,clash", [
    (("S001", "Boris", "Petrov", "b@example.edu", "50002"), "S001"),       # id, case only
    (("s002", "Boris", "Petrov", "b@example.edu", "48213"), "48213"),      # Canvas user id
    (("s002", "Boris", "Petrov", "S001@Example.edu", "50002"), "S001@Example.edu"),  # email
])
def test_roster_with_one_identity_twice_is_refused(tmp_path, second, clash):
    """Canvas and Moodle rows are matched case-insensitively by id and email, and by
    Canvas user id: a roster where two rows share one of them would let one student's
    grade be written into the other's row. The roster is refused in one line per clash
    naming it (exit 2), before anything is written."""
    d = tmp_path / "c"
    d.mkdir()
    shutil.copy2(ROOT / "examples" / "course" / "pset.toml", d / "pset.toml")
    with (d / "roster.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student_id", "first_name", "last_name", "email", "lms_user_id"])
        w.writerow(["s001", "Anna", "Ivanova", "s001@example.edu", "48213"])
        w.writerow(second)
    grades = d / "grades" / ASSIGNMENT
    grades.mkdir(parents=True)
    import json
    (grades / "journal.jsonl").write_text(
        json.dumps(_result("s001", 17.5).to_json()) + "\n"
        + json.dumps(_result(second[0], 3.0).to_json()) + "\n", encoding="utf-8")
    template = tmp_path / "export.csv"
    template.write_text(f"Student,ID,SIS User ID,SIS Login ID,Section,{TITLE} ({CANVAS_AID})\n"
                        "\"Ivanova, Anna\",48213,s001,s001@example.edu,A,\n", encoding="utf-8")
    out = tmp_path / "o"
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "canvas", "--course", str(d),
                        "--template", str(template), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if clash in ln]
    assert len(lines) == 1 and "line 3" in lines[0] and "line 2" in lines[0], r.stderr
    assert not out.exists() or not any(out.iterdir()), "nothing written"


# ------------------------------------------- a regrade after a student left the roster
@pytest.mark.parametrize("system", ["canvas", "moodle"])
def test_grade_of_a_student_no_longer_on_the_roster_is_not_exported(course, tmp_path, system):
    """The journal still holds s099's grade from before the roster changed. Off the roster
    a student is nobody the export can vouch for (the id may since name someone else in
    the LMS): no row receives that grade, and s099 is listed as left out."""
    d, grades = course
    g = tmp_path / "grades"
    shutil.copytree(grades, g)
    import json
    with (g / "journal.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(_result("s099", 20.5).to_json()) + "\n")
    template = tmp_path / "export.csv"
    if system == "canvas":
        template.write_text(
            f"Student,ID,SIS User ID,SIS Login ID,Section,{TITLE} ({CANVAS_AID})\n"
            "\"Ivanova, Anna\",48213,s001,s001@example.edu,A,\n"
            "\"Orlov, Pyotr\",48555,s099,s099@example.edu,A,\n", encoding="utf-8")
    else:
        template.write_text(
            f"First name,Last name,ID number,Email address,Assignment: {TITLE} (Real)\n"
            "Anna,Ivanova,s001,s001@example.edu,-\n"
            "Pyotr,Orlov,s099,s099@example.edu,-\n", encoding="utf-8")
    out = export(load_course(d), ASSIGNMENT, ExportRequest(system, g, tmp_path / "o",
                                                           template=template))
    text = out.path.read_text(encoding="utf-8")
    assert "20.5" not in text and "Orlov" in text
    assert "s099" not in out.filled.matched_by and out.filled.matched_by["s001"]
    assert any("s099" in line for line in out.filled.left_out), out.filled.left_out


def test_moodle_rows_sharing_the_mapping_value_are_left_out(course, tmp_path):
    """Moodle does not force emails (or ID numbers) to be unique, and its importer puts a
    row on the *first* user holding the row's value. Two rows sharing the value of the
    mapping column would both land on one account (s007's grade on Vera's): both rows
    are left out and listed; every other grade still lands on its owner."""
    before = _moodle_export("en").replace(",s001,", ",,").replace(",s021,", ",,")
    before = before.replace("s007@example.edu", "Vera@example.edu")
    users = [u if u.id != 106 else MoodleUser(106, "s007", "vera@example.edu", "zhanna")
             for u in MOODLE_USERS]
    template = tmp_path / "m.csv"
    template.write_text(before, encoding="utf-8")
    out = _export(course, tmp_path / "o", "moodle", template=template)
    f = out.filled
    assert "Email address" in f.mapping
    shared = [x for x in f.left_out if "Smirnova" in x or "Lebedeva" in x]
    assert len(shared) == 2 and "s003" not in f.matched_by and "s007" not in f.matched_by
    grades = moodle_import(out.path.read_text(encoding="utf-8"), ",", "Email address",
                           "useremail", users, _moodle_items("en"))
    assert {u: g[900] for u, g in grades.items()} == {
        101: SCORES["s001"], 102: SCORES["s008"], 104: SCORES["s021"], 107: SCORES["s013"]}
