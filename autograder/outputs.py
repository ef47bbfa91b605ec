"""Everything ``grade`` writes: a crash-safe journal, grades.csv, Gradescope-style
results.json and one feedback page per student.

The journal (JSON lines, one per student) is the source of truth: a run killed
with -9 resumes from it, a re-run skips notebooks whose content hash and key fingerprint
are unchanged, and the summary files are rewritten from it atomically at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from convpset.autograder.htmltext import inline_html, markdown_html, render_page
from convpset.autograder.results import StudentResult
from convpset.autograder.untrusted import csv_table, json_text, safe_name
from convpset.notebooks.variants import Problem

JOURNAL = "journal.jsonl"


def atomic_write(path: Path, text: str, sync: bool = True) -> None:
    """Write via a temporary file and rename: readers never see half a file.

    A file name that is not UTF-8 (``b"\\xff"``) reaches us as a lone surrogate; it is
    written as the visible escape ``\\udcff`` rather than failing the whole batch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8", errors="backslashreplace", newline="") as fh:
        fh.write(text)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


class Journal:
    """Append-only record of graded students; the last entry per student wins (a
    ``removed`` tombstone: none)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / JOURNAL
        self._fh: TextIO | None = None
        out_dir.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, StudentResult]:
        entries: dict[str, StudentResult] = {}
        if not self.path.exists():
            return entries
        with self.path.open("r", encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break                      # a torn last line from a killed run
                try:
                    raw = json.loads(line)
                    if isinstance(raw, dict) and raw.get("removed") is True:
                        entries.pop(str(raw.get("student_id")), None)
                        continue
                    r = StudentResult.from_json(raw)
                except (ValueError, KeyError, TypeError):
                    continue
                entries[r.student_id] = r
        return entries

    def remove(self, student_id: str) -> None:
        """End a student's record (a tombstone line: ``load`` forgets every earlier entry
        of theirs; the lines stay, as history, and in the run's archive)."""
        self.append({"student_id": student_id, "removed": True})

    def _drop_torn_tail(self) -> None:
        """Cut a torn last line (a run killed mid-write) so that the next entry does not
        get glued to it and lost."""
        try:
            fh = self.path.open("rb+")
        except FileNotFoundError:
            return
        with fh:
            end = fh.seek(0, os.SEEK_END)
            if end == 0:
                return
            fh.seek(end - 1)
            if fh.read(1) == b"\n":
                return
            pos = end
            while pos > 0:
                step = min(65536, pos)
                fh.seek(pos - step)
                chunk = fh.read(step)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    pos = pos - step + i + 1
                    break
                pos -= step
            fh.truncate(pos)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, data: dict[str, Any]) -> None:
        """Add one student's result, as ``StudentResult.to_json()`` data."""
        line = json_text(data, sort_keys=True) + "\n"
        if self._fh is None:
            self._drop_torn_tail()
            self._fh = self.path.open("a", encoding="utf-8")
        # Written through to the OS at once (a kill -9 loses nothing written), but no fsync
        # per line: sync() at the end of the batch covers a machine crash.
        self._fh.write(line)
        self._fh.flush()

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        elif self.path.exists():
            with self.path.open("rb") as fh:
                os.fsync(fh.fileno())

    def reset(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.path.exists():
            self.path.unlink()


def part_columns(problems: list[Problem]) -> list[str]:
    return [part.name for p in problems for part in p.parts()]


def student_file_stem(student_id: str) -> str:
    """The name a student's files and folders get (``feedback/STEM.html``, nbgrader's
    ``autograded/STEM/``): the id itself when it is a safe file name, else
    :func:`~convpset.autograder.untrusted.safe_name`'s slug and hash.

    An id can come from a folder or file name the student chose: ESC sequences, bidi
    overrides, ``=HYPERLINK(…)``, Windows device names. None of that becomes a name on
    disk; the id itself stays exact in the journal, grades.csv and results.json.
    """
    return safe_name(student_id)


def feedback_file(student_id: str) -> str:
    """The file name of a student's feedback page inside ``feedback/``."""
    return f"{student_file_stem(student_id)}.html"


def grades_csv(results: Iterable[StudentResult], columns: list[str]) -> str:
    """grades.csv: one row per student, written through
    :func:`~convpset.autograder.untrusted.csv_table` so that an id or a flag never starts
    a spreadsheet formula (the text is kept, behind a ``'``) and scores stay numbers."""
    rows: list[list[object]] = [["student_id", "total", "max", *columns, "flags",
                                 *TERM_COLUMNS]]
    for r in results:
        scores = {pr.part: pr.score for p in r.problems for pr in p.parts}
        rows.append([r.student_id, float(r.score), float(r.max_score),
                     *(float(scores.get(c, 0.0)) for c in columns), ";".join(r.flags),
                     *term_cells(r)])
    return csv_table(rows)


# After the part columns: ``raw`` (what the key gave, before overrides), the late
# penalty in points (``total`` = the final score), the lateness and the overrides.
TERM_COLUMNS = ("raw", "late_penalty", "late_rule", "late_seconds", "late_credit",
                "submitted_at", "time_source", "due", "extension", "overrides")


def term_cells(r: StudentResult) -> list[object]:
    """The TERM_COLUMNS cells of one student (empty where the course sets no due time)."""
    info = r.extra.get("term") if isinstance(r.extra, dict) else None
    info = info if isinstance(info, dict) else {}
    late = info.get("late") if isinstance(info.get("late"), dict) else {}
    over = info.get("overrides") if isinstance(info.get("overrides"), dict) else {}
    shown = "; ".join(f"{part}: {o.get('raw')}→{o.get('score')} ({o.get('source')}: "
                      f"{o.get('reason')})" for part, o in sorted(over.items()))
    return [float(info.get("raw_score", r.raw_score)), float(r.penalty), late.get("rule", ""),
            "" if late.get("late_s") is None else round(float(late["late_s"]), 3),
            "" if late.get("credit") is None else float(late["credit"]),
            info.get("submitted_at", ""), info.get("time_source", ""), info.get("due", ""),
            info.get("extension") or "", shown]


def gradescope_json(r: StudentResult, lang: str) -> dict[str, Any]:
    """One student in Gradescope's autograder results schema."""
    tests = []
    for p in r.problems:
        for pr in p.parts:
            tests.append({
                "name": f"Problem {p.number} ({p.family}): {pr.part}",
                "score": pr.score, "max_score": pr.max_score,
                "status": "passed" if pr.score >= pr.max_score else "failed",
                "output": pr.message[lang] if lang in pr.message else next(iter(pr.message.values())),
            })
    notes = [n.get(lang, next(iter(n.values()))) for n in r.notes]
    term = r.extra.get("term") if isinstance(r.extra, dict) else None
    extra: dict[str, Any] = {"student_id": r.student_id, "flags": list(r.flags)}
    if isinstance(term, dict):     # raw score, penalty, lateness, overrides (what changed why)
        extra["term"] = {"raw_score": term.get("raw_score"), "penalty": r.penalty,
                         "late": term.get("late"), "submitted_at": term.get("submitted_at"),
                         "due": term.get("due"), "extension": term.get("extension"),
                         "overrides": term.get("overrides")}
    return {"score": r.score, "max_score": r.max_score, "output": "\n".join(notes),
            "tests": tests, "extra_data": extra}


def results_json(results: Iterable[StudentResult], lang: str) -> str:
    data = {r.student_id: gradescope_json(r, lang) for r in results}
    return json_text(data, indent=1, sort_keys=True) + "\n"


def feedback_html(r: StudentResult, problems: list[Problem], lang: str, reveal: bool,
                  answers: dict[str, Any] | None = None, *, name: str = "",
                  title: str = "") -> str:
    """The student's page: their name and the assignment's title, the statement with
    their numbers, a verdict per part and the notes -- every sentence from the text
    tables, markdown and formulas rendered on the server (no network needed to read it).

    Markdown and TeX only for the statement and the worked solution (our text, our
    numbers); verdicts and notes are escaped text (:func:`inline_html`); the name, the id
    and the title are plain values the template escapes (:func:`render_page`).

    ``answers`` is accepted for callers that pass it and is not shown.
    """
    from convpset.problems.text import render

    def tr(key: str, **ctx: Any) -> str:
        return render(lang, f"page.{key}", **ctx)

    by_number = {p.number: p for p in problems}
    blocks = []
    for pr in r.problems:
        prob = by_number[pr.number]
        block = {
            "number": pr.number, "family": pr.family, "score": pr.score, "max": pr.max_score,
            "heading": tr("problem", number=pr.number),
            "statement": markdown_html(prob.statement(lang)),
            "parts": [{"name": x.part, "score": x.score, "max": x.max_score, "status": x.status,
                       "message": inline_html(x.message.get(lang, "")), "mistake": x.mistake}
                      for x in pr.parts],
            "notes": [inline_html(n.get(lang, "")) for n in pr.notes],
            "worked": markdown_html(prob.explain(lang)) if reveal else None,
        }
        blocks.append(block)
    title = title or r.assignment
    name = name or r.student_id
    labels = {k: tr(k) for k in ("total", "statement", "answer", "points", "feedback", "worked")}
    return render_page("feedback.html.j2", r=r, blocks=blocks, lang=lang, reveal=reveal,
                       L=labels, notes=[inline_html(n.get(lang, "")) for n in r.notes],
                       page_title=tr("title", title=title, name=name),
                       heading=tr("heading", title=title),
                       student=tr("student", name=name, student=r.student_id),
                       assignment=tr("assignment", assignment=r.assignment))
