"""Fill our totals into the gradebook CSV the instructor downloaded from Canvas
(*Grades → Export → Export Entire Gradebook*), ready for *Grades → Import*.

Canvas's export: a header ``Student, ID, SIS User ID, SIS Login ID, [Integration ID,]
Section, <Assignment> (<assignment id>), ..., Current Points, Final Points, Current Score,
...``, then a ``Points Possible`` row (and, with manual posting, a ``Manual Posting``
row), then one row per student. Canvas matches an imported row by its ``ID`` and an
assignment column by the id in its title, both of which we keep as Canvas wrote them.

Students are matched to rows by SIS User ID (= our student id), then SIS Login ID
(= our student id or email), then email (an ``Email`` column, if the export has one),
then name (``Last, First`` or ``First Last``, only when unique on the roster). Rows of
students we have no grade for, and every other column and row, are left untouched;
graded students with no row are reported.
"""

from __future__ import annotations

import re
from pathlib import Path

from convpset.autograder.results import StudentResult
from convpset.integrations.lms.export import max_total, write_text
from convpset.integrations.lms.gradebook import (
    Filled,
    choose_column,
    norm,
    read_sheet,
)
from convpset.notebooks.course import Course, CourseError
from convpset.problems.text import render

IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Root Account",
            "Section")
SUMMARY = re.compile(r"(^|\s)(Current|Final|Unposted Current|Unposted Final) "
                     r"(Points|Score|Grade)$")
EMAIL_COLUMNS = ("Email", "Email Address", "E-mail")
NON_STUDENT = ("points possible", "manual posting", "muted")


def column_name(title: str) -> str:
    """``Convolutions by hand (7148451)`` → ``Convolutions by hand``."""
    return re.sub(r"\s*\(\d+\)$", "", title)


def _index(header: list[str], names: tuple[str, ...]) -> int | None:
    for i, h in enumerate(header):
        if h.strip() in names:
            return i
    return None


def _is_student_row(row: list[str]) -> bool:
    return bool(row) and not any(norm(c) in NON_STUDENT for c in row[:8]) \
        and any(c.strip() for c in row)


def fill_canvas(course: Course, assignment: str, results: dict[str, StudentResult],
                template: Path, out: Path, column: str | None = None,
                lang: str | None = None) -> Filled:
    """Write ``template`` with our column filled to ``out``; returns what was done."""
    lang = lang or course.language
    sheet = read_sheet(template, "Canvas", lang)
    header = sheet.header
    cols = {name: _index(header, (name,)) for name in IDENTITY}
    email_col = _index(header, EMAIL_COLUMNS)
    if cols["SIS User ID"] is None and cols["SIS Login ID"] is None and cols["Student"] is None:
        raise CourseError(render(lang, "lms.not_csv", template=template, system="Canvas",
                                 reason=render(lang, "lms.missing_id_columns",
                                               columns="Student, SIS User ID, SIS Login ID")))
    first = max([i for i in (*cols.values(), email_col) if i is not None]) + 1
    spec = course.assignment(assignment)
    usable = [h if not SUMMARY.search(h) else "\0" for h in header]
    col = choose_column(usable, first, column, spec.title, assignment, template, lang,
                        name_of=column_name)
    roster = course.roster()
    ids = {norm(sid): sid for sid in [*results, *(s.student_id for s in roster)]}
    emails = {norm(s.email): s.student_id for s in roster if s.email}
    names: dict[str, list[str]] = {}
    for s in roster:
        for form in (f"{s.last_name}, {s.first_name}", f"{s.first_name} {s.last_name}"):
            if s.first_name or s.last_name:
                names.setdefault(norm(form), []).append(s.student_id)

    def cell(row: list[str], i: int | None) -> str:
        return norm(row[i]) if i is not None and i < len(row) else ""

    def match(row: list[str]) -> tuple[str, str] | None:
        for rule, key in (("SIS User ID", cell(row, cols["SIS User ID"])),
                          ("SIS Login ID", cell(row, cols["SIS Login ID"]))):
            if key and key in ids:
                return ids[key], rule
        for key in (cell(row, email_col), cell(row, cols["SIS Login ID"])):
            if key and key in emails:
                return emails[key], "email"
        hit = names.get(cell(row, cols["Student"]), [])
        return (hit[0], "name") if len(hit) == 1 else None

    report = Filled(out, header[col])
    top = max_total(course, assignment)
    for row in sheet.rows[1:]:
        if not _is_student_row(row):
            if row and norm(row[0]) == "points possible" and col < len(row):
                possible = row[col].strip()
                try:
                    differs = abs(float(possible) - top) > 1e-9
                except ValueError:
                    differs = False
                if differs:
                    report.warnings.append(render(lang, "lms.points_differ", column=header[col],
                                                  possible=possible, max=f"{top:g}"))
            continue
        report.rows += 1
        m = match(row)
        if m is None or m[0] not in results:
            continue
        sid, rule = m
        report.put(row, col, sid, rule, results[sid], None)
    write_text(out, sheet.text())
    return report.finish(results)
