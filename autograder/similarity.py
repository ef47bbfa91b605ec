"""Copied answers: a wrong answer that is exactly another student's right answer.

Personal variants make this visible where nbgrader, otter and PrairieLearn see nothing: a
student who hands in a friend's numbers answers the friend's variant, so their (wrong)
answer equals, within the part's tolerance, the key of the friend's variant. After a
batch (:func:`mark`, called once by ``grade``) every such row gets the flag
``answers_match`` and a note naming the other student -- in the instructor's outputs only
(``answers_match.json`` beside the journal, grades.csv's flags column, ``pset report``),
never in a feedback page or results.json. The student whose answers were copied answered their own variant correctly
and is not flagged.

How it stays cheap and honest:

* every judged part leaves a *print* in the journal row (``extra["answer_prints"]``): a
  short hash of its right answer and, when the student's answer is wrong without a named
  misconception, of that answer -- values rounded to the part's tolerance (integers
  exact), so "equal within tolerance" is one dict look-up. One pass over the rows builds
  ``part -> print -> students`` for the right answers and one pass looks the wrong
  answers up: linear in students × parts (``benchmarks/bench_similarity.py``).
* a wrong answer is evidence only if its value is the right answer of exactly **one**
  other roster student, and only on parts whose right answers are mostly distinct across
  the roster (at least :data:`MIN_DISTINCT_SHARE` distinct values per student): a small
  integer or a shape that many variants share says nothing about who copied from whom.
* an answer that matches a named misconception of the student's own variant is explained
  by that mistake and is not looked up.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from convpset.autograder.outputs import atomic_write
from convpset.autograder.untrusted import json_text
from convpset.problems.base import Part, PartResult
from convpset.problems.checking import FormatError, Submitted, _expected, _fit_shape, normalize
from convpset.problems.text import render_all

FILE = "answers_match.json"    # beside grades.csv: pairs, clusters, per-student details
PRINTS = "answer_prints"      # extra key of a journal row: {"right": {...}, "wrong": {...}}
MATCH = "answers_match"       # extra key (details) and flag (the row)
MIN_DISTINCT_SHARE = 0.5      # a part is evidence when distinct right answers / students >= this
MIN_STUDENTS = 4              # below this many students the share is not judged


# ------------------------------------------------------------------ prints
@cache
def _decimals_of(atol: float) -> int:
    return max(0, math.ceil(-math.log10(max(atol, 1e-12))) - 1)


def _decimals(part: Part) -> int:
    """Decimals that resolve the part's tolerance: atol 5e-3 -> 2, 1e-6 -> 5."""
    return _decimals_of(part.atol)


def value_print(part: Part, value: Any) -> str:
    """A short hash of ``value`` rounded to the part's tolerance (its base name, shape and
    numbers; -0 and 0 alike), equal for answers the grader would call equal."""
    h = hashlib.blake2b(part.name.encode(), digest_size=8)
    if part.kind == "shapes":
        h.update(repr(tuple(tuple(int(x) for x in row) for row in value)).encode())
    else:
        arr = np.asarray(value, dtype=float)
        arr = np.round(arr) if part.dtype == "int" else np.round(arr, _decimals(part))
        h.update(repr(arr.shape).encode())
        h.update((arr + 0.0).tobytes())
    return h.hexdigest()


def answer_prints(parts: Iterable[Part], answers: Mapping[str, Submitted | None],
                  key: Mapping[str, Any], results: Iterable[PartResult]) -> dict[str, dict]:
    """Prints of one problem's parts for the journal: the right answer of every part, and
    the student's answer where it is wrong and no named mistake explains it.

    ``parts`` carry the notebook names (``W_1``), ``key`` is keyed by the same names.
    """
    right: dict[str, str] = {}
    wrong: dict[str, str] = {}
    for part, res in zip(parts, results, strict=True):
        want = _expected(part, key[part.name])
        right[part.name] = value_print(part, want)
        sub = answers.get(part.name)
        if res.status not in ("wrong", "partial") or res.mistake or sub is None:
            continue
        try:
            got = normalize(part, sub)
        except FormatError:
            continue
        if part.kind == "array":
            fitted = _fit_shape(part, got, want)
            got = got if fitted is None else fitted
        wrong[part.name] = value_print(part, got)
    return {"right": right, "wrong": wrong}


def problem_prints(problem: Any, answers: Mapping[str, Submitted | None],
                   results: Iterable[PartResult]) -> dict[str, dict]:
    """:func:`answer_prints` of one :class:`~convpset.notebooks.variants.Problem`."""
    from convpset.problems.checking import solved

    key = solved(problem.fam, problem.variant)
    parts = problem.parts()
    return answer_prints(parts, answers, {p.name: key[problem.base_name(p.name)] for p in parts},
                         results)


def merge_prints(into: dict[str, dict], more: Mapping[str, Mapping[str, str]]) -> dict:
    for side in ("right", "wrong"):
        into.setdefault(side, {}).update(more.get(side, {}))
    return into


# ------------------------------------------------------------------ matching
@dataclass(frozen=True)
class Match:
    student: str      # whose answer is wrong for them
    source: str       # whose variant it is the right answer of
    part: str


@dataclass
class Findings:
    matches: list[Match] = field(default_factory=list)
    ignored_parts: list[str] = field(default_factory=list)   # answers shared by many variants

    def by_student(self) -> dict[str, list[Match]]:
        out: dict[str, list[Match]] = defaultdict(list)
        for m in self.matches:
            out[m.student].append(m)
        return dict(out)

    def pairs(self) -> list[tuple[str, str, list[str]]]:
        """(student, source, parts), one row per pair."""
        out: dict[tuple[str, str], list[str]] = defaultdict(list)
        for m in self.matches:
            out[(m.student, m.source)].append(m.part)
        return [(a, b, parts) for (a, b), parts in sorted(out.items())]

    def clusters(self) -> list[list[str]]:
        """Groups of three or more students linked by matches (union-find)."""
        parent: dict[str, str] = {}

        def find(a: str) -> str:
            parent.setdefault(a, a)
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for m in self.matches:
            parent[find(m.student)] = find(m.source)
        groups: dict[str, list[str]] = defaultdict(list)
        for a in list(parent):
            groups[find(a)].append(a)
        return sorted(sorted(g) for g in groups.values() if len(g) >= 3)


def find_matches(prints: Mapping[str, Mapping[str, Mapping[str, str]]]) -> Findings:
    """Matches over ``student -> {"right": {part: print}, "wrong": {part: print}}``.

    Two passes over the prints (a dict per part), so the cost is linear in students ×
    parts. See the module docstring for what counts as evidence.
    """
    owners: dict[str, dict[str, str | None]] = defaultdict(dict)   # None: several owners
    counts: dict[str, int] = defaultdict(int)
    for sid, pr in prints.items():
        for part, h in pr.get("right", {}).items():
            by_print = owners[part]
            by_print[h] = sid if h not in by_print else None
            counts[part] += 1
    ignored = sorted(part for part, by_print in owners.items()
                     if counts[part] >= MIN_STUDENTS
                     and len(by_print) / counts[part] < MIN_DISTINCT_SHARE)
    skip = set(ignored)
    out = Findings(ignored_parts=ignored)
    for sid in sorted(prints):
        for part, h in sorted(prints[sid].get("wrong", {}).items()):
            if part in skip:
                continue
            who = owners.get(part, {}).get(h)
            if who is not None and who != sid:
                out.matches.append(Match(sid, who, part))
    return out


# ------------------------------------------------------------------ the batch
def _strip(r: Any) -> Any:
    """A journal row without the flag and details of an earlier pass."""
    if MATCH not in r.flags and MATCH not in r.extra:
        return r
    extra = {k: v for k, v in r.extra.items() if k != MATCH}
    return replace(r, flags=tuple(f for f in r.flags if f != MATCH), extra=extra)


def _missing_prints(course: Any, assignment: str, sids: Iterable[str]) -> dict[str, dict]:
    """Right-answer prints of roster students without a judged row (no notebook, an
    unreadable one): their variants can still be the source of a copy."""
    from convpset.notebooks.variants import problems_for
    from convpset.problems.checking import solved

    spec = course.assignment(assignment)
    out = {}
    for sid in sids:
        right = {}
        for prob in problems_for(course, spec, sid):
            key = solved(prob.fam, prob.variant)
            for part in prob.parts():
                right[part.name] = value_print(part, _expected(part, key[prob.base_name(part.name)]))
        out[sid] = {"right": right, "wrong": {}}
    return out


def annotate(rows: Mapping[str, Any], findings: Findings) -> dict[str, Any]:
    """The rows with the flag and the instructor's note on every student with a match
    (rows of earlier passes are cleared first)."""
    by_student = findings.by_student()
    out = {}
    for sid, r in rows.items():
        r = _strip(r)
        ms = by_student.get(sid)
        if ms:
            sources = sorted({m.source for m in ms})
            parts = [m.part for m in ms]
            details = {"sources": sources, "parts": parts,
                       "pairs": [{"part": m.part, "source": m.source} for m in ms],
                       "note": render_all("similarity.note", part_names=", ".join(parts),
                                          sources=", ".join(sources))}
            r = replace(r, flags=(*r.flags, MATCH), extra={**r.extra, MATCH: details})
        out[sid] = r
    return out


def mark(course: Any, assignment: str, rows: Mapping[str, Any], out_dir: Path,
         roster_ids: Iterable[str] = ()) -> dict[str, Any]:
    """Find copied answers over the batch's final rows; write them to
    ``out_dir/answers_match.json`` (the instructor's record, replaced on every run) and
    return the rows with the flag and the note, for grades.csv and the report.

    The journal stays the record of grading -- one line per graded notebook -- and is
    not rewritten: this pass is derived from it and recomputed on every run.
    """
    prints = {sid: r.extra[PRINTS] for sid, r in rows.items()
              if isinstance(r.extra.get(PRINTS), dict)}
    lacking = [sid for sid in roster_ids if sid not in prints]
    if lacking:
        prints.update(_missing_prints(course, assignment, lacking))
    findings = find_matches(prints)
    new = annotate(rows, findings)
    record = {"students": {x["student"]: {k: v for k, v in x.items() if k != "student"}
                           for x in findings_from_rows(new)},
              "pairs": [{"student": a, "source": b, "parts": parts}
                        for a, b, parts in findings.pairs()],
              "clusters": findings.clusters(), "ignored_parts": findings.ignored_parts}
    atomic_write(Path(out_dir) / FILE, json_text(record, indent=1) + "\n")
    return new


def apply_saved(grades_dir: Path, rows: Mapping[str, Any]) -> dict[str, Any]:
    """``rows`` (read from the journal) with the flags and notes of the last run's
    ``answers_match.json``; unchanged when there is none."""
    path = Path(grades_dir) / FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["students"]
    except (OSError, ValueError, KeyError, TypeError):
        return dict(rows)
    out = {}
    for sid, r in rows.items():
        r = _strip(r)
        details = saved.get(sid) if isinstance(saved, dict) else None
        if isinstance(details, dict):
            r = replace(r, flags=(*r.flags, MATCH), extra={**r.extra, MATCH: details})
        out[sid] = r
    return out


def student_view(results: Iterable[Any]) -> list[Any]:
    """Results as students may see them (results.json): without the flag and details."""
    return [_strip(r) for r in results]


def findings_from_rows(rows: Mapping[str, Any]) -> list[dict[str, Any]]:
    """(student, sources, parts) per flagged row, for ``pset report``."""
    return [{"student": sid, **r.extra[MATCH]} for sid, r in sorted(rows.items())
            if MATCH in r.flags and isinstance(r.extra.get(MATCH), dict)]


def clusters_from_rows(rows: Mapping[str, Any]) -> list[list[str]]:
    f = Findings(matches=[Match(x["student"], p["source"], p["part"])
                          for x in findings_from_rows(rows) for p in x.get("pairs", [])])
    return f.clusters()


def report_context(rows: Mapping[str, Any], names: Mapping[str, str], lang: str) -> dict:
    """What ``pset report``'s section on copied answers shows (its template:
    ``templates/similarity.html.j2``): the pairs, the clusters, and how it was decided."""
    from convpset.problems.text import render

    def who(sid: str) -> str:
        return f"{names[sid]} ({sid})" if names.get(sid) else sid

    pairs = [{"student": who(x["student"]), "sid": x["student"],
              "sources": ", ".join(who(s) for s in x["sources"]),
              "parts": ", ".join(x["parts"])} for x in findings_from_rows(rows)]
    clusters = [", ".join(who(s) for s in c) for c in clusters_from_rows(rows)]
    text = {k: render(lang, f"similarity.{k}") for k in
            ("heading", "student", "sources", "parts", "clusters", "none")}
    text["how"] = render(lang, "similarity.how", share=round(MIN_DISTINCT_SHARE * 100),
                         min_students=MIN_STUDENTS)
    return {"pairs": pairs, "clusters": clusters, "text": text}
