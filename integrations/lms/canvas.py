"""Fill our totals into the gradebook CSV the instructor downloaded from Canvas
(*Grades → Export → Export Entire Gradebook*), ready for *Grades → Import*.

Canvas's export: a header ``Student, ID, SIS User ID, SIS Login ID, [Integration ID,]
Section, <Assignment> (<assignment id>), ..., Current Points, Final Points, Current Score,
...``, then a ``Points Possible`` row (and, with manual posting, a ``Manual Posting``
row), then one row per student; ``,`` or ``;`` separated (``;`` with decimal commas in
ru, de, fr and other decimal-comma locales). Canvas matches an imported row by its ``ID``
and an assignment column by the id in its title, both of which we keep as Canvas wrote
them, so a filled row can only land on the Canvas user the row already belongs to.

Which of *our* students a row is: the roster's ``lms_user_id`` = the row's ``ID``, then
SIS User ID (= our student id), then SIS Login ID (= our student id or email), then
email (an ``Email`` column, if the export has one), then name (``Last, First`` or
``First Last``) only when the name is unique on the roster *and* in the file, and then
with a warning naming the students matched that way. Two rows that claim one student
fill neither. ``EX`` (excused) and ``N/A`` cells are kept. Rows of students we have no
grade for, and every other cell and row, are left byte for byte as Canvas wrote them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from convpset.autograder.results import StudentResult
from convpset.integrations.lms.export import max_total, write_text
from convpset.integrations.lms.gradebook import (
    Filled,
    choose_column,
    norm,
    read_sheet,
)
from convpset.notebooks.course import Course, CourseError, Student
from convpset.problems.text import render

IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Root Account",
            "Section")
SUMMARY = re.compile(r"(^|\s)(Current|Final|Unposted Current|Unposted Final|Override) "
                     r"(Points|Score|Grade|Status)$")
EMAIL_COLUMNS = ("Email", "Email Address", "E-mail")
_MARK_ROW = re.compile(r"\s*(Muted|Manual Posting.*)?\s*", re.I | re.S)
# Canvas writes only these two (gradebook_importer.rb, identify_delimiter)
CANVAS_DELIMITERS = (",", ";")


def column_name(title: str) -> str:
    """``Convolutions by hand (7148451)`` → ``Convolutions by hand``."""
    return re.sub(r"\s*\(\d+\)$", "", title)


def canvas_number(cell: str) -> float | None:
    """A number as Canvas's importer reads it (``decimal_comma_to_period``: the last
    ``,`` or ``.`` is the decimal point, earlier ones are dropped)."""
    s = cell.strip()
    if not re.fullmatch(r"-?[0-9.,]+", s):
        return None
    parts = re.split(r"[,.]", s)
    last = parts.pop()
    try:
        return float("".join(parts) + "." + last if parts else last)
    except ValueError:
        return None


def _index(header: list[str], names: tuple[str, ...]) -> int | None:
    for i, h in enumerate(header):
        if h.strip() in names:
            return i
    return None


def _is_student_row(row: list[str]) -> bool:
    """Not the Points Possible row, and not a row of only ``Muted`` / ``Manual Posting``
    marks and blanks (Canvas skips those: ``check_for_non_student_row``)."""
    if not row or _points_row(row):
        return False
    return not all(_MARK_ROW.fullmatch(c) for c in row)


def _points_row(row: list[str]) -> bool:
    return bool(row) and "points possible" in norm(row[0])


def _check_points(report: Filled, row: list[str], col: int, header: list[str], top: float,
                  template: Path, lang: str) -> None:
    """Canvas's ``Points Possible`` for our column: a read-only column cannot be imported
    into; a different maximum (``21,00`` read as 21) is a warning."""
    possible = row[col].strip() if col < len(row) else ""
    if re.search(r"read\s+only", possible):
        raise CourseError(render(lang, "lms.read_only", template=template, column=header[col]))
    value = canvas_number(possible)
    if value is not None and abs(value - top) > 1e-9:
        report.warnings.append(render(lang, "lms.points_differ", column=header[col],
                                      possible=possible, max=f"{top:g}"))


@dataclass(frozen=True)
class RowMatcher:
    """Which of our students a Canvas row is (see the module docstring for the order).

    A student whose Canvas id we know is never the row of another Canvas id: that row is
    a namesake, or the dropped student's name now worn by someone else.
    """

    cols: dict[str, int | None]
    email_col: int | None
    ids: dict[str, str]                 # norm(student id) -> roster student id
    lms_ids: dict[str, str]             # Canvas user id -> student id
    emails: dict[str, str]              # norm(email) -> student id
    names: dict[str, list[str]]         # norm(name form) -> student ids
    names_in_file: Counter[str]

    @classmethod
    def build(cls, header: list[str], rows: list[list[str]], roster: list[Student]) -> RowMatcher:
        cols = {name: _index(header, (name,)) for name in IDENTITY}
        names: dict[str, list[str]] = {}
        for s in roster:
            if s.first_name or s.last_name:
                for form in {f"{s.last_name}, {s.first_name}", f"{s.first_name} {s.last_name}"}:
                    names.setdefault(norm(form), []).append(s.student_id)
        student = cols["Student"]
        in_file = Counter(norm(r[student]) if student is not None and student < len(r) else ""
                          for r in rows)
        return cls(cols, _index(header, EMAIL_COLUMNS),
                   {norm(s.student_id): s.student_id for s in roster},
                   {s.lms_user_id.strip(): s.student_id for s in roster if s.lms_user_id.strip()},
                   {norm(s.email): s.student_id for s in roster if s.email}, names, in_file)

    def _cell(self, row: list[str], i: int | None) -> str:
        return norm(row[i]) if i is not None and i < len(row) else ""

    def match(self, row: list[str]) -> tuple[str, str] | None:
        """(student id, rule) of the row, or None."""
        canvas_id = self._cell(row, self.cols["ID"])
        if canvas_id and canvas_id in self.lms_ids:
            return self.lms_ids[canvas_id], "ID"
        m = self._match_other(row)
        known = {sid: lms for lms, sid in self.lms_ids.items()}
        if m is not None and canvas_id and known.get(m[0], canvas_id) != canvas_id:
            return None
        return m

    def _match_other(self, row: list[str]) -> tuple[str, str] | None:
        for rule in ("SIS User ID", "SIS Login ID"):
            key = self._cell(row, self.cols[rule])
            if key and key in self.ids:
                return self.ids[key], rule
        for key in (self._cell(row, self.email_col), self._cell(row, self.cols["SIS Login ID"])):
            if key and key in self.emails:
                return self.emails[key], "email"
        name = self._cell(row, self.cols["Student"])
        hit = self.names.get(name, [])
        return (hit[0], "name") if len(hit) == 1 and self.names_in_file[name] == 1 else None


def fill_canvas(course: Course, assignment: str, results: dict[str, StudentResult],
                template: Path, out: Path, column: str | None = None,
                lang: str | None = None) -> Filled:
    """Write ``template`` with our column filled to ``out``; returns what was done."""
    lang = lang or course.language
    sheet = read_sheet(template, "Canvas", lang, CANVAS_DELIMITERS)
    header = sheet.header
    cols = {name: _index(header, (name,)) for name in IDENTITY}
    email_col = _index(header, EMAIL_COLUMNS)
    if cols["SIS User ID"] is None and cols["SIS Login ID"] is None and cols["Student"] is None:
        raise CourseError(render(lang, "lms.not_csv", template=template, system="Canvas",
                                 reason=render(lang, "lms.missing_id_columns",
                                               columns="Student, SIS User ID, SIS Login ID")))
    first = max([i for i in (*cols.values(), email_col) if i is not None]) + 1
    spec = course.assignment(assignment)
    usable = [h if not SUMMARY.search(h.strip()) else "\0" for h in header]
    col = choose_column(usable, first, column, spec.title, assignment, template, lang,
                        name_of=column_name)
    report = Filled(out, header[col])
    top = max_total(course, assignment)
    for row in sheet.rows[1:]:
        if _points_row(row):
            _check_points(report, row, col, header, top, template, lang)
    student_rows = [r for r in range(1, len(sheet.rows)) if _is_student_row(sheet.rows[r])]
    matcher = RowMatcher.build(header, [sheet.rows[r] for r in student_rows], course.roster())
    found: dict[str, list[tuple[int, str]]] = {}
    for r in student_rows:
        report.rows += 1
        m = matcher.match(sheet.rows[r])
        if m is not None and m[0] in results:
            found.setdefault(m[0], []).append((r, m[1]))
    for sid, hits in found.items():
        if len(hits) > 1:
            report.ambiguous.append(sid)      # two rows claim one student: fill neither
            continue
        r, rule = hits[0]
        report.put(sheet, r, col, sid, rule, results[sid], None)
    by_name = sorted(s for s, rule in report.matched_by.items() if rule == "name")
    if by_name:
        report.warnings.append(render(lang, "lms.matched_by_name", students=", ".join(by_name)))
    write_text(out, sheet.text())
    return report.finish(results)
