"""A gradebook CSV downloaded from an LMS, read and written back without disturbing it.

The instructor's export is the template: every row, every other column and every cell
we do not fill go back exactly as they were (same cells, same line ending, same byte
order mark), so the LMS sees an upload that differs only in our column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from convpset.autograder.results import StudentResult
from convpset.notebooks.course import CourseError
from convpset.problems.text import render


@dataclass
class Sheet:
    rows: list[list[str]]
    newline: str = "\n"
    bom: bool = False

    @property
    def header(self) -> list[str]:
        return self.rows[0]

    def text(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator=self.newline).writerows(self.rows)
        return ("\ufeff" if self.bom else "") + buf.getvalue()


@dataclass
class Filled:
    """What a fill did: for the terminal (and the tests)."""

    path: Path
    column: str
    filled: int = 0
    rows: int = 0
    unmatched: list[str] = field(default_factory=list)     # graded, not in the file
    matched_by: dict[str, str] = field(default_factory=dict)   # student id -> rule
    warnings: list[str] = field(default_factory=list)

    def put(self, row: list[str], col: int, sid: str, rule: str, result: StudentResult,
            scale_to: float | None = None) -> None:
        """Write ``result``'s total into ``row[col]`` (padding a short row) and record how
        the student was matched."""
        while len(row) <= col:
            row.append("")
        row[col] = points(result.score, result.max_score, scale_to)
        self.filled += 1
        self.matched_by[sid] = rule

    def finish(self, results: Mapping[str, StudentResult]) -> Filled:
        """Graded students the file had no row for: listed on the terminal, not dropped."""
        self.unmatched = sorted(set(results) - set(self.matched_by))
        return self


def read_sheet(path: Path, system: str, lang: str) -> Sheet:
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
    newline = "\r\n" if "\r\n" in text else "\n"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return Sheet(rows, newline, bom)


def norm(s: str) -> str:
    """Case- and space-insensitive form of an id, email or name."""
    return re.sub(r"\s+", " ", s).strip().casefold()


def points(score: float, max_score: float, scale_to: float | None) -> str:
    """Our total as the LMS cell: points, or rescaled to the LMS item's maximum."""
    value = score if scale_to is None or max_score <= 0 else score / max_score * scale_to
    return f"{round(value, 2):g}"


def choose_column(header: list[str], first: int, column: str | None, title: str,
                  assignment: str, template: Path, lang: str,
                  name_of=lambda h: h) -> int:
    """The assignment's column: ``--column`` (the full title, or the title without the
    LMS's decorations) or the one whose title starts with the assignment's title."""
    candidates = list(range(first, len(header)))
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
