"""Why a grade changed between two runs, and the copy of the previous outputs.

Every journal entry records the grading policy it was judged under (per part: points,
tolerance and a digest of the answer key). Comparing two entries then says *why* a
score moved -- the answer key, the points, the tolerance, the maximum, the notebook
itself -- instead of only that it moved. Any run that changes an existing grade keeps
the previous outputs under ``history/<UTC time>/`` (see :func:`archive`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convpset.autograder.results import StudentResult
from convpset.notebooks.variants import Problem
from convpset.problems.checking import solved

# Reasons, in the order they are reported; their sentences are ``regrade.<reason>``.
REASONS = ("answer_key", "points", "tolerance", "maximum", "submission", "override",
           "lateness", "grading")


def _term(r: StudentResult | None) -> Mapping[str, Any]:
    info = r.extra.get("term") if r is not None and isinstance(r.extra, dict) else None
    return info if isinstance(info, dict) else {}


def _override(r: StudentResult | None, part: str) -> Mapping[str, Any] | None:
    over = _term(r).get("overrides")
    o = over.get(part) if isinstance(over, dict) else None
    return o if isinstance(o, dict) else None


def _late_key(r: StudentResult | None) -> tuple:
    t = _term(r)
    return (None if r is None else r.penalty, t.get("due"), t.get("submitted_at"),
            str(t.get("late")))


def _key_digest(value: Any) -> str:
    if isinstance(value, list | tuple) and value and isinstance(value[0], list | tuple):
        data = json.dumps([[int(x) for x in row] for row in value])     # shapes
    else:
        arr = np.asarray(value, dtype=float)
        data = f"{arr.shape}|{arr.tobytes().hex()}"
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def grading_policy(problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """Per notebook part: its points, tolerance and a digest of its key (what a later
    run compares to explain a change)."""
    out: dict[str, dict[str, Any]] = {}
    for p in problems:
        key = solved(p.fam, p.variant)
        for part in p.parts():
            out[part.name] = {"points": part.points, "rtol": part.rtol, "atol": part.atol,
                              "key": _key_digest(key[p.base_name(part.name)])}
    return out


def _policy(r: StudentResult | None) -> Mapping[str, Any] | None:
    if r is None:
        return None
    pol = r.extra.get("policy") if isinstance(r.extra, dict) else None
    return pol if isinstance(pol, dict) else None


def part_reasons(old: StudentResult | None, new: StudentResult | None, part: str) -> list[str]:
    """Why one part's result differs: key, points or tolerance (from the recorded
    policies), the notebook, else the grading itself (code, limits)."""
    a, b = _policy(old), _policy(new)
    why = []
    if a is not None and b is not None and part in a and part in b:
        pa, pb = a[part], b[part]
        if pa.get("key") != pb.get("key"):
            why.append("answer_key")
        if pa.get("points") != pb.get("points"):
            why.append("points")
        if (pa.get("rtol"), pa.get("atol")) != (pb.get("rtol"), pb.get("atol")):
            why.append("tolerance")
    if old is not None and new is not None and old.sha256 != new.sha256:
        why.append("submission")
    oa, ob = _override(old, part), _override(new, part)
    if oa != ob and (oa or ob):
        why.append("override")
    return why or ["grading"]


def diff_results(old: dict[str, StudentResult], new: dict[str, StudentResult]) -> list[dict]:
    """Who changed, from what to what, which parts, and why (reason codes and an English
    sentence; the terminal and ``regrade_diff.json`` show both)."""
    from convpset.problems.text import render

    changes = []
    for sid in sorted(set(old) | set(new)):
        a, b = old.get(sid), new.get(sid)
        sa = None if a is None else a.score
        sb = None if b is None else b.score
        pa = {} if a is None else {x.part: x for p in a.problems for x in p.parts}
        pb = {} if b is None else {x.part: x for p in b.problems for x in p.parts}
        parts = []
        reasons: list[str] = []
        if a is not None and b is not None and _late_key(a) != _late_key(b):
            reasons.append("lateness")
        for name in sorted(set(pa) | set(pb)):
            xa, xb = pa.get(name), pb.get(name)
            ob = _override(b, name)
            held = ob is not None and (_override(a, name) or {}).get("raw") != ob.get("raw")
            if (xa and xa.score) != (xb and xb.score) or (xa and xa.mistake) != (xb and xb.mistake) \
                    or held:
                why = part_reasons(a, b, name)
                reasons += [w for w in why if w not in reasons]
                parts.append({"part": name, "old": None if xa is None else xa.score,
                              "new": None if xb is None else xb.score,
                              "old_max": None if xa is None else xa.max_score,
                              "new_max": None if xb is None else xb.max_score,
                              "old_status": None if xa is None else xa.status,
                              "new_status": None if xb is None else xb.status,
                              "why": why,
                              "reason": "; ".join(render("en", f"regrade.{w}") for w in why),
                              "verdict": (xb.message.get("en", "") if xb else ""),
                              # the part is held by an override: its score is the
                              # instructor's, whatever the key now gives (raw_new)
                              "override": ob,
                              "raw_old": (_override(a, name) or {}).get(
                                  "raw", None if xa is None else xa.score),
                              "raw_new": (ob or {}).get("raw", None if xb is None else xb.score)})
        ma = None if a is None else a.max_score
        mb = None if b is None else b.max_score
        if ma is not None and mb is not None and ma != mb and "maximum" not in reasons:
            reasons.append("maximum")
        if sa != sb or parts:        # a 0 that stays 0 under a new maximum is not listed
            reasons = [r for r in REASONS if r in reasons] or ["grading"]
            changes.append({"student_id": sid, "old": sa, "new": sb, "old_max": ma,
                            "new_max": mb, "why": reasons,
                            "reason": "; ".join(render("en", f"regrade.{w}", old=ma, new=mb)
                                                for w in reasons),
                            "parts": parts})
    return changes


def archive(out_dir: Path) -> Path | None:
    """Copy the current outputs to ``history/<UTC time>/`` before anything overwrites
    them; None when there is nothing to keep."""
    keep = [p for p in out_dir.iterdir() if p.name != "history"] if out_dir.exists() else []
    if not keep:
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    dest = out_dir / "history" / stamp
    dest.mkdir(parents=True)
    for p in keep:
        if p.is_dir():
            shutil.copytree(p, dest / p.name)
        else:
            shutil.copy2(p, dest / p.name)
    return dest


def drop_archive(path: Path) -> None:
    """Remove a copy that turned out not to be needed (no grade changed)."""
    shutil.rmtree(path, ignore_errors=True)
    parent = path.parent
    if parent.name == "history" and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
