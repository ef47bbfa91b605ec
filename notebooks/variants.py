"""Which variant each student gets, and the signed stamp that travels in the notebook.

A variant is a deterministic function of the course secret, the assignment, the
problem's position and the student id: the same inputs always give the same numbers,
and without the secret nobody can predict another student's numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from convpset.notebooks.course import AssignmentSpec, Course
from convpset.problems import get_family, make_variant
from convpset.problems.base import LANGS, Part, PartResult, Variant, suffixed
from convpset.problems.checking import (
    Submitted,
    acceptor,
    check_part,
    mistakes_of,
    parts_of,
    solved,
)
from convpset.problems.contract import Family
from convpset.problems.text import render_all

STAMP_KEY = "pset"
STAMP_VERSION = 1


@dataclass(frozen=True)
class Problem:
    """One numbered problem of a student's assignment."""

    number: int                 # 1-based position in the notebook
    family: str
    level: int
    variant: Variant
    scale: float                # points multiplier relative to the family's defaults
    rtol: float | None = None   # the course's tolerance for float answers (pset.toml)
    atol: float | None = None
    mistake_credit: str | float = "partial"   # the assignment's policy (pset.toml)

    @property
    def suffix(self) -> str:
        return f"_{self.number}"

    @property
    def fam(self) -> Family:
        """The family's implementation (the contract object from the registry)."""
        return get_family(self.family)

    def parts(self) -> list[Part]:
        """The parts with notebook names (``W_1``), the course's points and the course's
        tolerance (float parts only: integers are compared exactly)."""
        return list(self.variant.cached(
            f"parts{self.suffix}*{self.scale}~{self.rtol}~{self.atol}", self._course_parts))

    def _course_parts(self) -> list[Part]:
        out = []
        for p in suffixed(parts_of(self.fam, self.variant), self.suffix):
            p = replace(p, points=round(p.points * self.scale, 2))
            if p.dtype == "float" and p.kind != "shapes":
                p = replace(p, rtol=p.rtol if self.rtol is None else self.rtol,
                            atol=p.atol if self.atol is None else self.atol)
            out.append(p)
        return out

    def statement(self, lang: str) -> str:
        """The statement as this notebook shows it: answers named ``W_1``, course points."""
        return self.fam.statement(self.variant, lang, self.parts())

    def explain(self, lang: str) -> str:
        return self.fam.explain(self.variant, lang)

    def data_code(self) -> str:
        return self.fam.data_code(self.variant)

    def base_name(self, part_name: str) -> str:
        return part_name[: -len(self.suffix)] if part_name.endswith(self.suffix) else part_name

    def judge(self, answers: Mapping[str, Submitted | None]) -> list[PartResult]:
        """Verdicts for this problem; ``answers`` is keyed by notebook names (``W_1``)."""
        fam, v = self.fam, self.variant
        key = solved(fam, v)

        def mistakes() -> list:
            return mistakes_of(fam, v)

        return [check_part(named, answers.get(named.name), key[base.name], mistakes, v.family,
                           answer_key=base.name, mistake_credit=self.mistake_credit,
                           accept=acceptor(fam, v, base.name))
                for base, named in zip(parts_of(fam, v), self.parts(), strict=True)]

    @property
    def max_score(self) -> float:
        return round(sum(p.points for p in self.parts()), 2)


def variant_seed(secret: bytes, assignment: str, number: int, family: str, level: int,
                 student_id: str) -> int:
    msg = f"variant|{assignment}|{number}|{family}|{level}|{student_id}".encode()
    return int.from_bytes(hmac.new(secret, msg, hashlib.sha256).digest()[:8], "big")


def problems_for(course: Course, assignment: AssignmentSpec, student_id: str) -> list[Problem]:
    """The student's problems, numbered as in the notebook."""
    return list(_problems_for(course.secret, assignment, student_id))


@lru_cache(maxsize=4096)
def _problems_for(secret: bytes, assignment: AssignmentSpec, student_id: str) -> tuple[Problem, ...]:
    """Cached: a batch needs each student's variants for the notebook, the key and the
    feedback; they are pure functions of the arguments."""
    course_secret = secret
    out: list[Problem] = []
    number = 0
    for spec in assignment.problems:
        for _ in range(spec.count):
            number += 1
            seed = variant_seed(course_secret, assignment.name, number, spec.family, spec.level,
                                student_id)
            v = make_variant(spec.family, np.random.default_rng(seed), spec.level)
            scale = 1.0
            if spec.points is not None:
                scale = spec.points / sum(p.points for p in parts_of(get_family(spec.family), v))
            out.append(Problem(number, spec.family, spec.level, v, scale, spec.rtol,
                               spec.atol, assignment.mistake_credit))
    return tuple(out)


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def make_stamp(course: Course, assignment: str, student_id: str, problems: list[Problem]) -> dict:
    """Notebook metadata naming the student and the variants, signed with the course secret."""
    payload = {
        "version": STAMP_VERSION,
        "course": course.name,
        "assignment": assignment,
        "student": student_id,
        "problems": [{"number": p.number, "family": p.family, "level": p.level,
                      "digest": p.variant.digest(), "variant": p.variant.to_json()}
                     for p in problems],
    }
    sig = hmac.new(course.secret, _canonical(payload), hashlib.sha256).hexdigest()
    return {**payload, "signature": sig}


@dataclass(frozen=True)
class StampCheck:
    status: str        # "ok" | "missing" | "tampered" | "other_student" | "other_assignment" | "stale"
    claimed_student: str | None
    messages: Mapping[str, str]   # lang -> text ("" when ok)

    @property
    def message(self) -> str:
        return self.messages.get("en", "")


def _check(status: str, claimed_student: str | None, **args: Any) -> StampCheck:
    if status == "ok":
        return StampCheck(status, claimed_student, {lang: "" for lang in LANGS})
    return StampCheck(status, claimed_student, render_all(f"stamp.{status}", **args))


def verify_stamp(course: Course, stamp: Any, assignment: str, student_id: str,
                 problems: list[Problem]) -> StampCheck:
    """Compare a notebook's stamp with what the path's student should have."""
    if not isinstance(stamp, dict):
        return _check("missing", None)
    claimed = stamp.get("student") if isinstance(stamp.get("student"), str) else None
    if not _check_signature(course, stamp):
        return _check("tampered", claimed)
    if claimed != student_id:
        return _check("other_student", claimed, claimed=claimed, student=student_id)
    if stamp.get("assignment") != assignment:
        return _check("other_assignment", claimed, other=str(stamp.get("assignment")))
    digests = [p.get("digest") for p in stamp.get("problems", [])]
    if digests != [p.variant.digest() for p in problems]:
        return _check("stale", claimed)
    return _check("ok", claimed)


def problems_from_stamp(course: Course, assignment: AssignmentSpec, stamp: Any,
                        student_id: str) -> list[Problem] | None:
    """The problems issued to ``student_id``, read from a stamp we signed for them.

    None unless the signature holds, the stamp names this student and assignment, and
    its problems are the ones the assignment lists now (family, level, order). The
    variants are then exactly what the student was given, so grading need not
    regenerate them -- and grades against the issued numbers even if a generator changed.
    """
    if not isinstance(stamp, dict) or stamp.get("student") != student_id \
            or stamp.get("assignment") != assignment.name:
        return None
    if not _check_signature(course, stamp):
        return None
    listed = stamp.get("problems")
    wanted = [spec for spec in assignment.problems for _ in range(spec.count)]
    if not isinstance(listed, list) or len(listed) != len(wanted):
        return None
    out = []
    for number, (spec, entry) in enumerate(zip(wanted, listed, strict=True), start=1):
        family, level = spec.family, spec.level
        if not isinstance(entry, dict) or entry.get("number") != number \
                or entry.get("family") != family or entry.get("level") != level:
            return None
        try:
            v = Variant.from_json(entry["variant"])
        except (KeyError, TypeError, ValueError):
            return None
        # (the entry's digest is not recomputed: the signature above already covers both
        # the variant and its digest, and rehashing every variant cost ~0.5 ms a notebook)
        if v.family != family:
            return None
        scale = 1.0
        if spec.points is not None:
            scale = spec.points / sum(p.points for p in parts_of(get_family(family), v))
        out.append(Problem(number, family, level, v, scale, spec.rtol, spec.atol,
                           assignment.mistake_credit))
    return out


def _check_signature(course: Course, stamp: dict) -> bool:
    payload = {k: v for k, v in stamp.items() if k != "signature"}
    try:
        expected = hmac.new(course.secret, _canonical(payload), hashlib.sha256).hexdigest()
    except (TypeError, ValueError):
        return False
    sig = stamp.get("signature")
    return isinstance(sig, str) and hmac.compare_digest(expected, sig)
