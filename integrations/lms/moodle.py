"""Fill our totals into Moodle's grader export (*Grades → Export → Plain text file*),
ready for *Grades → Import → CSV file*.

Moodle's export: ``First name, Last name, ID number, Institution, Department, Email
address`` (the user fields chosen at export), then one column per grade item titled
``<Type>: <Item name> (Real)`` (``Assignment: Convolutions by hand (Real)``; ``(Percentage)``
or ``(Letter)`` for other display types, ``(Feedback)`` for feedback), ``Course total
(Real)`` and ``Last downloaded from this course``. We keep that title, so the column is
recognisable in the import's grade-item mapping, and every other cell as Moodle wrote it.

Students are matched by ID number (= our student id), then email. Points are scaled
when the Moodle grade item's maximum differs from ours (``--moodle-max``).
"""

from __future__ import annotations

import re
from pathlib import Path

from convpset.autograder.results import StudentResult
from convpset.integrations.lms.export import write_text
from convpset.integrations.lms.gradebook import (
    Filled,
    choose_column,
    norm,
    read_sheet,
)
from convpset.notebooks.course import Course, CourseError
from convpset.problems.text import render

ITEM = re.compile(r"^(?:[^:]+:\s*)?(?P<name>.*?)\s*\((?P<kind>Real|Percentage|Letter|Feedback)\)$")
ID_NUMBER, EMAIL = "ID number", "Email address"


def item_name(title: str) -> str:
    """``Assignment: Convolutions by hand (Real)`` → ``Convolutions by hand``."""
    m = ITEM.match(title.strip())
    return m.group("name") if m else title


def _gradable(title: str) -> bool:
    m = ITEM.match(title.strip())
    return bool(m) and m.group("kind") == "Real" and not title.startswith("Course total")


def fill_moodle(course: Course, assignment: str, results: dict[str, StudentResult],
                template: Path, out: Path, column: str | None = None,
                moodle_max: float | None = None, lang: str | None = None) -> Filled:
    """Write ``template`` with our column filled to ``out``; returns what was done."""
    lang = lang or course.language
    sheet = read_sheet(template, "Moodle", lang)
    header = [h.strip() for h in sheet.header]
    id_col = header.index(ID_NUMBER) if ID_NUMBER in header else None
    email_col = header.index(EMAIL) if EMAIL in header else None
    if id_col is None and email_col is None:
        raise CourseError(render(lang, "lms.not_csv", template=template, system="Moodle",
                                 reason=render(lang, "lms.missing_id_columns",
                                               columns=f"{ID_NUMBER}, {EMAIL}")))
    spec = course.assignment(assignment)
    usable = header if column is not None else [h if _gradable(h) else "\0" for h in header]
    col = choose_column(usable, 0, column, spec.title, assignment, template, lang,
                        name_of=item_name)
    ids = {norm(sid): sid for sid in [*results, *(s.student_id for s in course.roster())]}
    emails = {norm(s.email): s.student_id for s in course.roster() if s.email}
    report = Filled(out, sheet.header[col])
    for row in sheet.rows[1:]:
        if not any(c.strip() for c in row):
            continue
        report.rows += 1
        key_id = norm(row[id_col]) if id_col is not None and id_col < len(row) else ""
        key_mail = norm(row[email_col]) if email_col is not None and email_col < len(row) else ""
        if key_id and key_id in ids:
            sid, rule = ids[key_id], "ID number"
        elif key_mail and key_mail in emails:
            sid, rule = emails[key_mail], "email"
        else:
            continue
        if sid not in results:
            continue
        report.put(row, col, sid, rule, results[sid], moodle_max)
    write_text(out, sheet.text())
    return report.finish(results)
