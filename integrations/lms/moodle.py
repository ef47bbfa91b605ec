"""Fill our totals into Moodle's grader export (*Grades → Export → Plain text file*),
ready for *Grades → Import → CSV file*.

Moodle's export: the user fields chosen at export (``First name, Last name, ID number,
Institution, Department, Email address``, in the exporting user's language), then one
column per grade item titled ``<Type>: <Item name> (Real)`` (``Assignment: Convolutions
by hand (Real)``; ``(Percentage)`` or ``(Letter)`` for other display types, ``(Feedback)``
for feedback; all localised), ``Course total (Real)`` and ``Last downloaded from this
course``; separated by ``,``, ``;`` or tab as the teacher chose. We keep that title, so
the column is recognisable in the import's grade-item mapping, and every other cell as
Moodle wrote it.

Moodle's importer (``grade/import/csv/classes/load_data.php``,
``map_user_data_with_value``) sets the row's user only when the mapping column of that
row is non-empty; a row with an empty mapping cell is imported onto the *previous* row's
user. So the file we write never holds such a row: we choose the mapping the file
supports (the identity column filled on most rows: ID number, then email, then username),
print it, and leave out and list every row whose cell in it is empty (PHP's ``empty()``:
``""`` and ``"0"``), and every row whose cell another row shares (the importer puts
them all on the first user holding the value).

Students are matched to rows by ID number (= our student id), then email; a row whose
two identities name different students, or two rows naming one student, fill nothing.
Points are scaled when the Moodle grade item's maximum differs from ours
(``--moodle-max``).
"""

from __future__ import annotations

import re
from pathlib import Path

from convpset.autograder.results import StudentResult
from convpset.integrations.lms.export import max_total, write_text
from convpset.integrations.lms.gradebook import (
    Filled,
    choose_column,
    moodle_max_warnings,
    norm,
    parse_number,
    read_sheet,
)
from convpset.notebooks.course import Course, CourseError
from convpset.problems.text import render

# Moodle's own strings for the export's headers, per language: core `moodle.php`
# ('idnumber', 'email', 'username'), `grades.php` ('real', 'coursetotal') and
# `gradeexport_txt.php` ('timeexported'); taken from the Moodle language packs
# (AMOS; mirrored in github.com/projectestac/moodle-langpacks, {en,ru,de,fr,es}/*.php).
# The French pack writes the apostrophe as U+2019, older ones as "'": both are accepted.
HEADERS: dict[str, dict[str, str]] = {
    "idnumber": {"en": "ID number", "ru": "Индивидуальный номер", "de": "ID-Nummer",
                 "fr": "Numéro d'identification", "es": "Número de ID"},
    "email": {"en": "Email address", "ru": "Адрес электронной почты", "de": "E-Mail-Adresse",
              "fr": "Adresse de courriel", "es": "Dirección de correo"},
    "username": {"en": "Username", "ru": "Логин", "de": "Anmeldename",
                 "fr": "Nom d'utilisateur", "es": "Nombre de usuario"},
}
REAL = {"Real", "Punkte", "Brut", "Значение"}                 # grades.php 'real'
COURSE_TOTAL = ("Course total", "Итоговая оценка за курс", "Kurs gesamt", "Total du cours",
                "Total del curso")                            # grades.php 'coursetotal'
# the import form's "Map to" labels (grades.php 'useridnumber', 'useremail', 'username')
MAP_TO = {"idnumber": "ID number (useridnumber)", "email": "Email address (useremail)",
          "username": "Username (username)"}
ITEM = re.compile(r"^(?P<name>.*?)\s*\((?P<kind>[^()]*)\)$", re.S)
ID_NUMBER, EMAIL = HEADERS["idnumber"]["en"], HEADERS["email"]["en"]


def _header_key(h: str) -> str:
    return norm(h.replace("\u2019", "'"))


_FIELD_OF = {_header_key(text): name for name, by_lang in HEADERS.items()
             for text in by_lang.values()}


def identity_columns(header: list[str]) -> dict[str, int]:
    """Moodle user-field columns of the header, in any of the export's languages."""
    found: dict[str, int] = {}
    for i, h in enumerate(header):
        name = _FIELD_OF.get(_header_key(h))
        if name is not None and name not in found:
            found[name] = i
    return found


def item_name(title: str, wanted: str = "") -> str:
    """``Assignment: Convolutions by hand (Real)`` → ``Convolutions by hand`` (the type
    prefix goes up to Moodle's label separator: ``:`` in most languages, a no-break
    space in French)."""
    m = ITEM.match(title.strip())
    name = m.group("name") if m else title.strip()
    if wanted and norm(name).startswith(norm(wanted)):
        return name
    for sep in (":", "\u00a0"):
        if sep in name:
            return name.split(sep, 1)[1].strip()
    return name


def _gradable(title: str) -> bool:
    m = ITEM.match(title.strip())
    return bool(m) and m.group("kind").strip() in REAL \
        and not title.strip().startswith(COURSE_TOTAL)


def php_empty(value: str) -> bool:
    """PHP's ``empty()`` of a trimmed CSV cell, as load_data.php tests the mapping cell."""
    return value.strip() in ("", "0")


def choose_mapping(header: list[str], rows: list[list[str]]) -> tuple[str, int] | None:
    """The identity column the file supports best: the one empty on fewest rows (ID
    number, then email, then username on a tie)."""
    cols = identity_columns(header)
    best: tuple[int, int, str, int] | None = None
    for order, name in enumerate(("idnumber", "email", "username")):
        if name not in cols:
            continue
        i = cols[name]
        empty = sum(1 for row in rows if php_empty(row[i] if i < len(row) else ""))
        if best is None or (empty, order) < best[:2]:
            best = (empty, order, name, i)
    return None if best is None else (best[2], best[3])


def shared_mapping_lines(rows: list[list[str]], data: list[int],
                         map_col: int) -> dict[int, list[int]]:
    """Rows whose mapping cell another row also holds: {row: every row holding it}.
    Moodle keeps neither emails nor ID numbers unique, and its importer puts a row on the
    *first* user with the value (``check_user_exists``: ``get_record`` returns the first
    of several), so such rows would all land on one account. Compared trimmed and with
    letter case aside, as MySQL's default collation compares."""
    by_value: dict[str, list[int]] = {}
    for r in data:
        row = rows[r]
        value = row[map_col].strip() if map_col < len(row) else ""
        if any(c.strip() for c in row) and not php_empty(value):
            by_value.setdefault(value.casefold(), []).append(r)
    return {r: rs for rs in by_value.values() if len(rs) > 1 for r in rs}


def _describe(row: list[str], line: int) -> str:
    """A left-out row for the instructor: its line and the names in it."""
    name = " ".join(c.strip() for c in row[:2] if c.strip())
    return f"line {line}: {name}" if name else f"line {line}"


def fill_moodle(course: Course, assignment: str, results: dict[str, StudentResult],
                template: Path, out: Path, column: str | None = None,
                moodle_max: float | None = None, lang: str | None = None) -> Filled:
    """Write ``template`` with our column filled to ``out``; returns what was done."""
    lang = lang or course.language
    sheet = read_sheet(template, "Moodle", lang)
    header = [h.strip() for h in sheet.header]
    data = [r for r in range(1, len(sheet.rows)) if len(sheet.rows[r]) > 1]
    mapping = choose_mapping(header, [sheet.rows[r] for r in data])
    ident = identity_columns(header)
    if mapping is None or ("idnumber" not in ident and "email" not in ident):
        raise CourseError(render(lang, "lms.not_csv", template=template, system="Moodle",
                                 reason=render(lang, "lms.missing_id_columns",
                                               columns=f"{ID_NUMBER}, {EMAIL}")))
    spec = course.assignment(assignment)
    usable = header if column is not None else [h if _gradable(h) else "\0" for h in header]
    col = choose_column(usable, 0, column, spec.title, assignment, template, lang,
                        name_of=lambda h: item_name(h, spec.title))
    # roster students only: an id off the roster is vouched for by nothing
    ids = {norm(s.student_id): s.student_id for s in course.roster()}
    emails = {norm(s.email): s.student_id for s in course.roster() if s.email}
    report = Filled(out, sheet.header[col])
    map_field, map_col = mapping
    report.mapping = render(lang, "lms.moodle_mapping", column=sheet.header[map_col].strip(),
                            field=MAP_TO[map_field])

    def cell(row: list[str], name: str) -> str:
        i = ident.get(name)
        return norm(row[i]) if i is not None and i < len(row) else ""

    drop: set[int] = set()
    found: dict[str, list[tuple[int, str]]] = {}
    top = max_total(course, assignment)
    highest = 0.0
    shared = shared_mapping_lines(sheet.rows, data, map_col)
    for r in data:
        row = sheet.rows[r]
        if not any(c.strip() for c in row):
            continue
        if php_empty(row[map_col] if map_col < len(row) else ""):
            drop.add(r)
            report.left_out.append(_describe(row, r + 1))
            continue
        if r in shared:
            drop.add(r)
            report.left_out.append(render(lang, "lms.moodle_shared", row=_describe(row, r + 1),
                                          column=sheet.header[map_col].strip(),
                                          lines=", ".join(str(x + 1) for x in shared[r])))
            continue
        report.rows += 1
        value = parse_number(row[col]) if col < len(row) else None
        highest = max(highest, value or 0.0)
        by_id = ids.get(cell(row, "idnumber"))
        by_mail = emails.get(cell(row, "email"))
        if by_id and by_mail and by_id != by_mail:
            report.ambiguous.extend(s for s in (by_id, by_mail) if s in results)
            continue
        sid, rule = (by_id, "ID number") if by_id else (by_mail, "email")
        if sid is not None and sid in results:
            found.setdefault(sid, []).append((r, rule))
    for sid, hits in found.items():
        if len(hits) > 1 or sid in report.ambiguous:
            if sid not in report.ambiguous:
                report.ambiguous.append(sid)
            continue
        r, rule = hits[0]
        report.put(sheet, r, col, sid, rule, results[sid], moodle_max)
    report.ambiguous = sorted(set(report.ambiguous))
    report.warnings.extend(moodle_max_warnings(moodle_max, lang))
    if moodle_max is None and highest > top + 1e-9:
        report.warnings.append(render(lang, "lms.moodle_max_hint", column=sheet.header[col],
                                      highest=f"{highest:g}", max=f"{top:g}"))
    write_text(out, sheet.text(drop))
    return report.finish(results)
