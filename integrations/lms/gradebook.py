"""A gradebook CSV downloaded from an LMS, read and written back without disturbing it.

The instructor's export is the template: every row we keep, every other column and every
cell we do not fill go back byte for byte as they were (same quoting, same separator,
same line endings, same byte order mark), so the LMS sees an upload that differs only in
our cells. That is why the file is tokenised here rather than by :mod:`csv`: a re-written
CSV would be equal in meaning but not in bytes (Moodle's PHP writer quotes every field
holding a space, Python's writer does not), and the tests hold us to the bytes.

The separator is sniffed (``,``, ``;`` or tab: Canvas writes ``;`` for users who choose it
and, by autodetection, in decimal-comma locales such as ru, de, fr; Moodle exports with
the separator the teacher picks), and numbers are read and written in the file's own
decimal convention.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from convpset.autograder.results import StudentResult
from convpset.notebooks.course import CourseError
from convpset.problems.text import render

DELIMITERS = (",", ";", "\t")
_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)?$")
_COMMA_DECIMAL = re.compile(r"^-?\d+,\d+$")
_DOT_DECIMAL = re.compile(r"^-?\d+\.\d+$")
# cells an LMS writes instead of a number, with their own meaning: Canvas's "EX" excuses
# the student (a number there un-excuses them), "N/A" marks an assignment not assigned to
# them; both are kept as the LMS wrote them
KEPT_MARKS = ("ex", "n/a")


@dataclass
class Sheet:
    """A CSV as values (``rows``) and as the exact text of every field (``raw``)."""

    rows: list[list[str]]
    raw: list[list[str]]
    ends: list[str]                 # each record's line ending as found ("" for the last)
    delimiter: str = ","
    bom: bool = False
    decimal_comma: bool = False

    @property
    def header(self) -> list[str]:
        return self.rows[0]

    @property
    def newline(self) -> str:
        return next((e for e in self.ends if e), "\n")

    def set(self, r: int, c: int, value: str) -> None:
        """Cell ``(r, c)`` becomes ``value`` (quoted only if it must be); a short row is
        padded with empty cells."""
        row, raw = self.rows[r], self.raw[r]
        while len(row) <= c:
            row.append("")
            raw.append("")
        row[c] = value
        raw[c] = quote(value, self.delimiter)

    def text(self, drop: set[int] | frozenset[int] = frozenset()) -> str:
        """The file again, without the records in ``drop``."""
        out = ["\ufeff" if self.bom else ""]
        kept = [i for i in range(len(self.raw)) if i not in drop]
        for n, i in enumerate(kept):
            end = self.ends[i] or (self.newline if n < len(kept) - 1 else "")
            out.append(self.delimiter.join(self.raw[i]) + end)
        return "".join(out)


def quote(value: str, delimiter: str) -> str:
    """A field as a CSV writer would put it: quoted when it holds the delimiter, a quote
    or a line break."""
    if any(ch in value for ch in (delimiter, '"', "\r", "\n")):
        return '"' + value.replace('"', '""') + '"'
    return value


def tokenise(text: str, delimiter: str) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """Records of ``text`` as (values, raw field texts, line endings); quoted fields may
    hold delimiters, quotes (doubled) and line breaks, as RFC 4180 has them."""
    rows: list[list[str]] = []
    raws: list[list[str]] = []
    ends: list[str] = []
    row: list[str] = []
    raw: list[str] = []
    i, n = 0, len(text)
    while i < n:
        start = i
        value: list[str] = []
        if text[i] == '"':
            i += 1
            while i < n:
                j = text.find('"', i)
                if j < 0:
                    value.append(text[i:])
                    i = n
                    break
                value.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    value.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
        while i < n and text[i] not in (delimiter, "\r", "\n"):
            value.append(text[i])          # text after a closing quote: kept, as csv does
            i += 1
        row.append("".join(value))
        raw.append(text[start:i])
        if i < n and text[i] == delimiter:
            i += 1
            if i == n:
                row.append("")
                raw.append("")
            continue
        end = ""
        if i < n:
            end = "\r\n" if text.startswith("\r\n", i) else text[i]
            i += len(end)
        rows.append(row)
        raws.append(raw)
        ends.append(end)
        row, raw = [], []
    if row:                                # a last record ending in a delimiter
        rows.append(row)
        raws.append(raw)
        ends.append("")
    return rows, raws, ends


def sniff_delimiter(text: str, candidates: tuple[str, ...] = DELIMITERS) -> str:
    """The separator that splits the file into the most columns, every row alike.

    Canvas's importer decides the same way (``identify_delimiter``: the separator whose
    field count is the same on the first lines, and larger); a decimal comma in a ``;``
    file gives ``,`` ragged rows, so it never wins there.
    """
    best, best_score = candidates[0], (-1, -1)
    for d in candidates:
        rows = [r for r in tokenise(text, d)[0] if any(c.strip() for c in r)]
        if not rows:
            continue
        widths = {len(r) for r in rows[:50]}
        score = (1 if len(widths) == 1 else 0, len(rows[0]))
        if len(rows[0]) > 1 and score > best_score:
            best, best_score = d, score
    return best


def _decimal_comma(rows: list[list[str]], delimiter: str) -> bool:
    """Whether the file writes decimals with a comma: from its own numbers, else from the
    separator (a ``;`` file comes from a decimal-comma locale)."""
    commas = sum(1 for r in rows for c in r if _COMMA_DECIMAL.match(c.strip()))
    dots = sum(1 for r in rows for c in r if _DOT_DECIMAL.match(c.strip()))
    if commas != dots:
        return commas > dots
    return delimiter == ";"


def read_sheet(path: Path, system: str, lang: str,
               delimiters: tuple[str, ...] = DELIMITERS) -> Sheet:
    """Parse an LMS export; a file that is not one gets a one-line error."""
    def bad(reason_key: str) -> CourseError:
        return CourseError(render(lang, "lms.not_csv", template=path, system=system,
                                  reason=render(lang, f"lms.{reason_key}")))

    try:
        data = path.read_bytes()
    except OSError as err:
        raise CourseError(f"{path}: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("not_utf8") from None
    bom = text.startswith("\ufeff")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise bad("empty_file")
    delimiter = sniff_delimiter(text, delimiters)
    rows, raw, ends = tokenise(text, delimiter)
    return Sheet(rows, raw, ends, delimiter, bom, _decimal_comma(rows[1:], delimiter))


def parse_number(cell: str) -> float | None:
    """A grade or points cell as a number, in either decimal convention; None if it is
    not one (``EX``, ``-``, ``(read only)``, empty)."""
    s = cell.strip().replace("\u00a0", "").replace(" ", "")
    if not _NUMBER.match(s):
        return None
    return float(s.replace(",", "."))


def is_kept_mark(cell: str) -> bool:
    """``EX`` / ``N/A``: a cell whose meaning a number would destroy."""
    return cell.strip().casefold() in KEPT_MARKS


def norm(s: str) -> str:
    """Case- and space-insensitive form of an id, email or name."""
    return re.sub(r"\s+", " ", s).strip().casefold()


def points(score: float, max_score: float, scale_to: float | None,
           decimal_comma: bool = False) -> str:
    """Our total as the LMS cell: points, or rescaled to the LMS item's maximum, written
    with the file's decimal separator."""
    value = score if scale_to is None or max_score <= 0 else score / max_score * scale_to
    text = f"{round(value, 2):g}"
    return text.replace(".", ",") if decimal_comma else text


@dataclass
class Filled:
    """What a fill (or a template-less file) did: for the terminal, and the tests."""

    path: Path
    column: str
    filled: int = 0
    rows: int = 0
    unmatched: list[str] = field(default_factory=list)     # graded, not in the file
    matched_by: dict[str, str] = field(default_factory=dict)   # student id -> rule
    warnings: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)     # student id -> EX / N/A kept
    left_out: list[str] = field(default_factory=list)      # rows not written, and why
    ambiguous: list[str] = field(default_factory=list)     # students matched twice: none filled
    mapping: str = ""                                      # how the LMS must match rows

    def put(self, sheet: Sheet, r: int, col: int, sid: str, rule: str,
            result: StudentResult, scale_to: float | None = None) -> None:
        """Write ``result``'s total into cell ``(r, col)`` and record how the student was
        matched; an ``EX`` or ``N/A`` cell is kept and reported instead."""
        row = sheet.rows[r]
        current = row[col] if col < len(row) else ""
        self.matched_by[sid] = rule
        if is_kept_mark(current):
            self.kept[sid] = current.strip()
            return
        sheet.set(r, col, points(result.score, result.max_score, scale_to,
                                 sheet.decimal_comma))
        self.filled += 1

    def finish(self, results: Mapping[str, StudentResult]) -> Filled:
        """Graded students the file had no row for: listed on the terminal, not dropped."""
        self.unmatched = sorted(set(results) - set(self.matched_by) - set(self.ambiguous))
        return self


def moodle_max_warnings(moodle_max: float | None, lang: str) -> list[str]:
    """Moodle's importer aborts on a grade above ``gradepointmax`` (100 by default:
    load_data.php, ``insert_grade_record``): said before the upload, not after."""
    if moodle_max is not None and moodle_max > 100:
        return [render(lang, "lms.moodle_over_100", max=f"{moodle_max:g}")]
    return []


def choose_column(header: list[str], first: int, column: str | None, title: str,
                  assignment: str, template: Path, lang: str,
                  name_of=lambda h: h) -> int:
    """The assignment's column: ``--column`` (the full title, or the title without the
    LMS's decorations) or the one whose title starts with the assignment's title."""
    candidates = [i for i in range(first, len(header)) if header[i] != "\0"]
    shown = ", ".join(f'"{header[i]}"' for i in candidates)
    if column is not None:
        for i in candidates:
            if header[i] == column or name_of(header[i]) == column:
                return i
        raise CourseError(render(lang, "lms.unknown_column", template=template, column=column,
                                 columns=shown))
    hits = [i for i in candidates if norm(name_of(header[i])).startswith(norm(title))]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise CourseError(render(lang, "lms.ambiguous_column", template=template, title=title,
                                 columns=", ".join(f'"{header[i]}"' for i in hits)))
    raise CourseError(render(lang, "lms.no_column", template=template, assignment=assignment,
                             title=title, columns=shown))
