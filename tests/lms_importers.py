"""Canvas's and Moodle's gradebook CSV importers, ported from their source so the tests
can ask *the target system's own rules* who each row of our files lands on.

Only the parts that decide whose grade a cell becomes, and what a cell means, are ported;
no guessing: each function names the source it follows.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field


# ------------------------------------------------------------------------------ Canvas
@dataclass(frozen=True)
class CanvasUser:
    """A student of the Canvas course: ``@all_students`` (id, name, sortable_name) and
    their pseudonym (``sis_user_id``, ``unique_id`` = login)."""

    id: int
    name: str
    sortable_name: str
    sis_user_id: str | None = None
    login_id: str | None = None


@dataclass
class CanvasImport:
    """What Canvas would do with a file: ``grades[(user id, assignment key)] = grade``
    (negative user ids are rows Canvas could not attach: ``User.new``, listed as missing
    students for the teacher), assignment keys ``id:<n>`` or ``new:<title>``."""

    grades: dict[tuple[int, str], str] = field(default_factory=dict)
    new_students: list[str] = field(default_factory=list)
    new_assignments: list[str] = field(default_factory=list)
    points_possible: dict[str, str] = field(default_factory=dict)


def canvas_decimal_comma_to_period(value: str | None) -> str | None:
    """``CSV::Converters[:decimal_comma_to_period]`` (gradebook_importer.rb)."""
    if value is None or not re.fullmatch(r"-?[0-9.,]+%?", value):
        return value
    parts = re.split(r"[,.]", value)
    last = parts.pop()
    return ".".join(["".join(parts), last]) if parts else last


def canvas_identify_delimiter(lines: list[str]) -> str:
    """``identify_delimiter`` over the first three lines (``semicolon_delimited?``)."""
    counts = {}
    for sep in (";", ","):
        counts[sep] = 0
        widths = [len(next(csv.reader([ln], delimiter=sep), [])) for ln in lines]
        if len(set(widths)) == 1:
            counts[sep] = widths[0]
    return ";" if counts[";"] > counts[","] else ","


_TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z", re.S)     # Assignment.title_and_id
_NON_ASSIGNMENT = re.compile("Current Score|Current Points|Current Grade|Final Score|"
                             "Final Points|Final Grade|Override Score|Override Grade|"
                             "Override Status")


def canvas_import(text: str, users: list[CanvasUser],
                  assignments: dict[int, str]) -> CanvasImport:
    """canvas-lms ``app/models/gradebook_importer.rb``: ``csv_stream`` (separator,
    converters ``nil`` + ``decimal_comma_to_period``, ``skip_lines: /^[;, ]+$/``),
    ``check_for_non_student_row`` (header, ``Points Possible``, ``Muted`` / ``Manual
    Posting`` rows), ``update_column_count``, ``parse_assignments`` (id in the title, else
    the exact title, else a new assignment) and ``process_student``: the ``ID`` column
    (``to_i``), else SIS User ID, else SIS Login ID pseudonym, else the first student
    whose ``name`` or ``sortable_name`` equals the Student cell, else ``User.new``."""
    text = text.removeprefix("\ufeff")
    first = text.splitlines()[:3]
    sep = canvas_identify_delimiter(first)
    out = CanvasImport()
    by_id = {u.id: u for u in users}
    by_sis = {u.sis_user_id: u for u in users if u.sis_user_id}
    by_login = {u.login_id: u for u in users if u.login_id}
    header: list[str] | None = None
    columns: list[tuple[int, str]] = []
    student_columns = 3
    sis_col = login_col = None
    negative = 0
    for raw in csv.reader(io.StringIO(text, newline=""), delimiter=sep):
        line = sep.join(raw)
        if re.fullmatch(r"[;, ]+", line):
            continue
        row = [canvas_decimal_comma_to_period(c) for c in raw]
        if header is None:
            header = row
            assert len(row) > 3 and "Student" in row[0] and "ID" in row[1], "Invalid header row"
            if re.search(r"SIS\s+User\s+ID", row[2]) and re.search(r"SIS\s+Login\s+ID", row[3]):
                i = 1 if re.search(r"Integration\s+ID", row[4]) else 0
                sis_col, login_col = 2, 3
                student_columns += 2 + i
                if re.search(r"Root\s+Account", row[4 + i]):
                    student_columns += 1
            assert "Section" in row[student_columns - 1], "Invalid header row"
            for idx in range(student_columns, len(row)):
                title = row[idx]
                if _NON_ASSIGNMENT.search(title):
                    continue
                m = _TITLE_AND_ID.match(title)
                if m and int(m.group(2)) in assignments:
                    key = f"id:{m.group(2)}"
                elif title in assignments.values():
                    key = f"id:{next(k for k, v in assignments.items() if v == title)}"
                else:
                    key = f"new:{m.group(1) if m else title}"
                    out.new_assignments.append(key)
                columns.append((idx, key))
            continue
        if row[0] is not None and "Points Possible" in row[0]:
            out.points_possible = {key: row[idx] for idx, key in columns if idx < len(row)}
            continue
        if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c or "", re.I | re.S)
               for c in row):
            continue
        student = None
        sid = row[1]
        if sid and sid.strip():
            student = by_id.get(_to_i(sid))
        if student is None:
            if sis_col is not None and (row[sis_col] or "").strip():
                student = by_sis.get(row[sis_col])
            if student is None and login_col is not None and (row[login_col] or "").strip():
                student = by_login.get(row[login_col])
            if student is None:
                name = row[0]
                student = next((u for u in users if u.name == name or u.sortable_name == name),
                               None)
        if student is None:
            negative -= 1
            out.new_students.append(row[0] or "")
            uid = negative
        else:
            uid = student.id
        for idx, key in columns:
            grade = row[idx].strip() if idx < len(row) and row[idx] is not None else ""
            out.grades[(uid, key)] = grade
    return out


def _to_i(s: str) -> int:
    """Ruby's ``String#to_i``: the leading integer, 0 if none."""
    m = re.match(r"\s*([-+]?\d+)", s)
    return int(m.group(1)) if m else 0


def canvas_changes(before: CanvasImport, after: CanvasImport) -> dict[tuple[int, str], str]:
    """Cells whose import would change Canvas (``no_change_to_value?``: equal, both no
    score, EX in any case, or equal at two decimals are no change)."""
    def same(new: str, cur: str | None) -> bool:
        cur = cur or ""
        if new == cur or (new in ("", "-") and cur in ("", "-")):
            return True
        if new.upper() == "EX" or cur.upper() == "EX":
            return new.upper() == cur.upper()
        try:
            return f"{float(new):.2f}" == f"{float(cur):.2f}"
        except ValueError:
            return False

    return {k: v for k, v in after.grades.items() if not same(v, before.grades.get(k))}


# ------------------------------------------------------------------------------ Moodle
class MoodleAbort(Exception):
    """``cleanup_import``: Moodle refuses the whole file."""


@dataclass(frozen=True)
class MoodleUser:
    id: int
    idnumber: str
    email: str
    username: str


def php_empty(value: str) -> bool:
    return value in ("", "0")


def moodle_unformat_float(value: str, decsep: str) -> float | None:
    """lib/moodlelib.php ``unformat_float($value, true)``: spaces dropped, the importing
    user's decimal separator (langconfig ``decsep``) becomes ``.``, then a PHP float or
    nothing."""
    s = value.strip().replace(" ", "").replace(decsep, ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", s):
        return None
    return float(s)


def moodle_import(text: str, separator: str, map_from: str, map_to: str,
                  users: list[MoodleUser], items: dict[str, int], decsep: str = ".",
                  gradepointmax: float = 100.0) -> dict[int, dict[int, float | None]]:
    """moodle ``grade/import/csv/classes/load_data.php``,
    ``gradeimport_csv_load_data::prepare_import_grade_data`` and
    ``map_user_data_with_value``: for every line of more than one field, the mapping
    column sets the current user *only when its trimmed value is not empty()* (else the
    previous line's user stays), an unknown value aborts the import
    (``check_user_exists`` → ``usermappingerror``; several users with the value: the
    first), no user at all aborts
    (``usermappingerrorusernotfound``); a grade cell mapped to an item is ``null`` when
    ``''`` or ``'-'``, else ``unformat_float`` or abort (``badgrade``); a grade above
    ``gradepointmax`` aborts (``insert_grade_record``)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""),
                        delimiter=separator)
    header = [h.strip() for h in next(reader)]
    field = {"useridnumber": "idnumber", "useremail": "email", "username": "username"}[map_to]
    map_index = header.index(map_from)
    item_index = {header.index(h): item for h, item in items.items()}
    current: int | None = None
    grades: dict[int, dict[int, float | None]] = {}
    for line in reader:
        if len(line) <= 1:
            continue
        new: dict[int, float | None] = {}
        for i, raw in enumerate(line):
            value = raw.strip()
            if i == map_index:
                if not php_empty(value):
                    # check_user_exists: $DB->get_record() (IGNORE_MISSING) returns the
                    # first of several matching users, with only a debugging notice
                    # (lib/dml/moodle_database.php, get_record_sql); user ids ascending.
                    # Matched as MySQL's default collation compares: letter case aside.
                    hits = sorted((u for u in users
                                   if getattr(u, field).casefold() == value.casefold()),
                                  key=lambda u: u.id)
                    if not hits:
                        raise MoodleAbort(f"usermappingerror: {field} {value!r}")
                    current = hits[0].id
            elif i in item_index:
                if value in ("", "-"):
                    new[item_index[i]] = None
                else:
                    number = moodle_unformat_float(value, decsep)
                    if number is None:
                        raise MoodleAbort(f"badgrade: {value!r}")
                    if number > gradepointmax:
                        raise MoodleAbort(f"gradevaluetoobig: {value!r}")
                    new[item_index[i]] = number
        if current is None:
            raise MoodleAbort("usermappingerrorusernotfound")
        grades.setdefault(current, {}).update(new)
    return grades
