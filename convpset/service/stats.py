"""The report's attempts section: how students used the check service before submitting.

Per problem: students who checked, attempts judged, the share that got every part right
within k attempts; and the named mistakes met while practising next to the same mistakes
in the final submissions (a mistake that disappears by the deadline was learnt from).
Read from the attempts database only; None when the assignment was never checked.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from convpset.notebooks.course import Course
from convpset.problems.text import render
from convpset.service.store import db_path

KS = (1, 2, 3, 5)


def _rows(path: Path, assignment: str) -> list[tuple]:
    uri = f"file:{path}?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        return con.execute("SELECT student, problem, verdict FROM attempts WHERE"
                           " assignment=? AND status='judged' ORDER BY id",
                           (assignment,)).fetchall()
    except sqlite3.Error:
        return []
    finally:
        con.close()


def _parse(verdict: str) -> list[tuple[str, str, str | None]]:
    out = []
    for item in filter(None, verdict.split(",")):
        part, _, rest = item.partition("=")
        status, _, mistake = rest.partition(":")
        out.append((part, status, mistake or None))
    return out


def attempts_context(course: Course, assignment: str, lang: str,
                     final: Iterable[Any] = ()) -> dict[str, Any] | None:
    """The section's rows and labels, or None without any judged attempt."""
    path = db_path(course.root)
    if not path.is_file():
        return None
    rows = _rows(path, assignment)
    if not rows:
        return None
    spec = course.assignment(assignment)
    # a pool's numbers name its alternatives ("a | b"): students hold different families
    families = [getattr(p, "family", None) or " | ".join(a.family for a in p.alternatives)
                for p in spec.problems for _ in range(p.count)]
    tries: dict[int, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    practised: dict[tuple[str, str], set[str]] = defaultdict(set)
    for student, problem, verdict in rows:
        parts = _parse(verdict)
        tries[problem][student].append(bool(parts) and all(s == "correct" for _, s, _ in parts))
        for _, _, mistake in parts:
            if mistake and 1 <= problem <= len(families):
                practised[(families[problem - 1], mistake)].add(student)
    problems = []
    for number in sorted(tries):
        per = tries[number]
        n = len(per)
        solved_at = [next((i + 1 for i, ok in enumerate(v) if ok), None) for v in per.values()]
        problems.append({
            "number": number,
            "family": families[number - 1] if number <= len(families) else "?",
            "students": n, "attempts": sum(len(v) for v in per.values()),
            "solved": [f"{sum(1 for s in solved_at if s is not None and s <= k) / n:.0%}"
                       for k in KS],
        })
    submitted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in final:
        for p in r.problems:
            for x in p.parts:
                if x.mistake:
                    submitted[(p.family, x.mistake)].add(r.student_id)
    mistakes = [{"family": fam, "key": key, "practice": len(practised[(fam, key)]),
                 "final": len(submitted.get((fam, key), ()))}
                for fam, key in sorted(practised, key=lambda k: (-len(practised[k]), k))]
    labels = {k: render(lang, f"serve.report_{k}") for k in (
        "title", "note", "problem", "family", "students", "attempts", "mistake",
        "practice", "final", "mistakes_title")}
    labels["solved"] = [render(lang, "serve.report_solved", k=k) for k in KS]
    return {"problems": problems, "mistakes": mistakes, "T": labels}
