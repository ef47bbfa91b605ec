"""``pset gradebook``: the term at a glance -- per roster student, every assignment's
final score (late penalties and overrides already in it: the journal's ``score``), the
weighted total, and what is missing.

The total is a percentage: sum over assignments of weight × score / maximum, divided
by the sum of the weights (``weight`` in ``[assignments.X]``, default 1). Work not
handed in (no journal row, or ``no_submission``) counts 0 and is listed under
``missing``; a submission whose owner the instructor has not decided yet (held) counts
0 and is listed under ``held``. Written as ``grades/course.csv`` (through
:func:`~convpset.autograder.untrusted.csv_table`: no cell starts a formula) and
``grades/course.html`` (the report's style, autoescaped, its own CSP).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from convpset.autograder.outputs import JOURNAL, Journal, atomic_write
from convpset.autograder.results import StudentResult
from convpset.autograder.submissions import HELD
from convpset.autograder.untrusted import csv_table
from convpset.notebooks.course import Course, Student
from convpset.notebooks.variants import problems_for

CSV_NAME = "course.csv"
HTML_NAME = "course.html"


@dataclass(frozen=True)
class Cell:
    score: float           # final (0 when missing)
    max_score: float
    status: str            # "graded" | "missing" | "held"
    penalty: float = 0.0
    late: bool = False
    override: bool = False


@dataclass
class Row:
    student: Student
    cells: dict[str, Cell] = field(default_factory=dict)
    total: float = 0.0     # weighted percent

    def listed(self, status: str) -> list[str]:
        return [a for a, c in self.cells.items() if c.status == status]


@dataclass
class Book:
    assignments: list[str]
    weights: dict[str, float]
    maxima: dict[str, float]
    rows: list[Row]
    graded: dict[str, bool]        # whether an assignment has a journal at all


def template_max(course: Course, assignment: str) -> float:
    return round(sum(p.max_score for p in problems_for(course, course.assignment(assignment),
                                                       "template")), 2)


def _cell(r: StudentResult | None, top: float) -> Cell:
    if r is None or "no_submission" in r.flags:
        return Cell(0.0, top if r is None else r.max_score, "missing")
    if set(HELD) & set(r.flags):
        return Cell(0.0, r.max_score, "held")
    return Cell(r.score, r.max_score, "graded", r.penalty, "late" in r.flags,
                "override" in r.flags)


def weighted_total(cells: dict[str, Cell], weights: dict[str, float]) -> float:
    """Percent: Σ w·score/max over Σ w (an assignment of maximum 0 counts as 0)."""
    wsum = sum(weights[a] for a in cells)
    if wsum <= 0:
        return 0.0
    got = sum(weights[a] * (c.score / c.max_score if c.max_score > 0 else 0.0)
              for a, c in cells.items())
    return round(100.0 * got / wsum, 2)


def build(course: Course) -> Book:
    """Every roster student × every assignment of pset.toml, from the journals."""
    names = list(course.assignments)
    weights = {a: course.assignments[a].weight for a in names}
    maxima = {a: template_max(course, a) for a in names}
    journals: dict[str, dict[str, StudentResult]] = {}
    graded = {}
    for a in names:
        d = course.grades_dir(a)
        graded[a] = (d / JOURNAL).is_file()
        journals[a] = Journal(d).load() if graded[a] else {}
    rows = []
    for s in course.roster():
        row = Row(s, {a: _cell(journals[a].get(s.student_id), maxima[a]) for a in names})
        row.total = weighted_total(row.cells, weights)
        rows.append(row)
    return Book(names, weights, maxima, rows, graded)


def course_csv(book: Book) -> str:
    header: list[object] = ["student_id", "first_name", "last_name"]
    for a in book.assignments:
        header += [a, f"{a}_max", f"{a}_late_penalty"]
    header += ["total_percent", "missing", "held", "late", "overrides"]
    rows: list[list[object]] = [header]
    for r in book.rows:
        line: list[object] = [r.student.student_id, r.student.first_name, r.student.last_name]
        for a in book.assignments:
            c = r.cells[a]
            line += [float(c.score), float(c.max_score), float(c.penalty)]
        line += [r.total, ";".join(r.listed("missing")), ";".join(r.listed("held")),
                 ";".join(a for a, c in r.cells.items() if c.late),
                 ";".join(a for a, c in r.cells.items() if c.override)]
        rows.append(line)
    return csv_table(rows)


def course_html(course: Course, book: Book, lang: str, csv_path: Path) -> str:
    from convpset.autograder.htmltext import page_number, render_page
    from convpset.autograder.report import histogram_png
    from convpset.problems.text import render

    def tr(key: str, **kw: object) -> str:
        return render(lang, f"term.{key}", **kw)

    labels = {k: tr(k) for k in ("course_title", "h_totals", "h_means", "h_students",
                                 "assignment", "weight", "mean", "max", "submitted_n",
                                 "missing", "total", "student", "name", "late", "overrides",
                                 "held", "late_mark", "override_mark")}
    means = []
    for a in book.assignments:
        done = [r.cells[a] for r in book.rows if r.cells[a].status == "graded"]
        means.append({"name": a, "title": course.assignments[a].title,
                      "weight": page_number(book.weights[a], lang),
                      "max": page_number(book.maxima[a], lang),
                      "mean": page_number(statistics.fmean(c.score for c in done), lang, "%.2f")
                      if done else "–",
                      "submitted": len(done),
                      "missing": sum(1 for r in book.rows if r.cells[a].status != "graded")})
    students = [{"id": r.student.student_id,
                 "name": f"{r.student.first_name} {r.student.last_name}".strip(),
                 "cells": [{"score": page_number(r.cells[a].score, lang),
                            "max": page_number(r.cells[a].max_score, lang),
                            "status": r.cells[a].status, "late": r.cells[a].late,
                            "override": r.cells[a].override} for a in book.assignments],
                 "total": page_number(r.total, lang, "%.2f"),
                 "missing": ", ".join(r.listed("missing") + r.listed("held"))}
                for r in book.rows]
    totals = [r.total for r in book.rows]
    return render_page("course.html.j2", lang=lang, L=labels, course=course,
                       assignments=book.assignments, means=means, students=students,
                       intro=tr("course_intro", students=len(book.rows),
                                assignments=len(book.assignments), csv=str(csv_path)),
                       stats={"mean": page_number(statistics.fmean(totals), lang, "%.2f")
                              if totals else "–",
                              "median": page_number(statistics.median(totals), lang)
                              if totals else "–"},
                       histogram=histogram_png(totals, 100.0, lang))


def write(course: Course, lang: str, out_dir: Path | None = None) -> tuple[Path, Path, Book]:
    """Write course.csv and course.html (default: ``COURSE/grades/``)."""
    out = out_dir or course.root / "grades"
    book = build(course)
    csv_path, html_path = out / CSV_NAME, out / HTML_NAME
    atomic_write(csv_path, course_csv(book))
    atomic_write(html_path, course_html(course, book, lang, csv_path))
    return csv_path, html_path, book
