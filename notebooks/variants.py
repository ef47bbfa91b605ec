"""Which variant each student gets, and the signed stamp that travels in the notebook.

A variant is a deterministic function of the course secret, the assignment, the
problem's position and the student id: the same inputs always give the same numbers,
and without the secret nobody can predict another student's numbers. Which
alternatives of a pool a student holds is such a function too (:func:`pool_draw`).
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

from convpset.notebooks.course import AssignmentSpec, Course, PoolSpec, ProblemSpec
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
    pool: int | None = None          # index of the pool entry in pset.toml's problems
    alternative: int | None = None   # which of the pool's alternatives this student drew
    total: float | None = None       # the parts sum to exactly this (pooled problems)

    @property
    def pooled(self) -> bool:
        return self.pool is not None

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
            f"parts{self.suffix}*{self.scale}~{self.rtol}~{self.atol}~{self.total}",
            self._course_parts))

    def _course_parts(self) -> list[Part]:
        out = []
        base = suffixed(parts_of(self.fam, self.variant), self.suffix)
        points = (apportion([p.points * self.scale for p in base], self.total)
                  if self.total is not None else [round(p.points * self.scale, 2) for p in base])
        for p, pts in zip(base, points, strict=True):
            p = replace(p, points=pts)
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


def apportion(shares: list[float], total: float) -> list[float]:
    """Points per part, in hundredths, summing to exactly ``total`` (largest remainder).

    Rounding each scaled part alone can make 4 points over three parts 3.99; a pooled
    problem must be worth exactly its pool's points for every student, whatever the
    alternative, so the cents lost to rounding go to the parts with the largest remainder.
    """
    whole = sum(shares)
    cents = round(total * 100)
    raw = [s / whole * cents if whole else cents / len(shares) for s in shares]
    out = [int(r) for r in raw]
    by_rest = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in by_rest[: cents - sum(out)]:
        out[i] += 1
    return [c / 100 for c in out]


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, elementwise on uint64 (a public bijection of 64-bit words:
    it scrambles a key with a draw number; the secret is in the key)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def pool_keys(secret: bytes, assignment: str, entry: int, pool: PoolSpec,
              student_id: str) -> np.ndarray:
    """One secret 64-bit key per alternative for this student: HMAC(secret, assignment,
    pool's place, family, level, student)."""
    return np.array([int.from_bytes(hmac.digest(
        secret, f"pool|{assignment}|{entry}|{alt.family}|{alt.level}|{student_id}".encode(),
        "sha256")[:8], "big") for alt in pool.alternatives], dtype=np.uint64)


def pool_weights(keys: np.ndarray, draw: int) -> np.ndarray:
    """The rendezvous weights of ``keys`` (any shape) under a pool's ``draw`` number."""
    return mix64(keys ^ mix64(np.array([draw], dtype=np.uint64)))


def drawn(weights: np.ndarray, choose: int) -> np.ndarray:
    """Per row of ``weights`` (students × alternatives), the ``choose`` smallest, as a
    boolean mask (ties, 2⁻⁶⁴-rare, go to the alternative listed first)."""
    order = np.argsort(weights, axis=-1, kind="stable")[..., :choose]
    mask = np.zeros(weights.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask


def pool_draw(secret: bytes, assignment: str, entry: int, pool: PoolSpec,
              student_id: str) -> tuple[int, ...]:
    """The alternatives (indexes, in listed order) ``student_id`` holds from a pool.

    Rendezvous hashing: each alternative gets a weight from a secret key per (assignment,
    pool's place, family, level, student), scrambled with the pool's ``draw`` number, and
    the ``choose`` smallest are drawn. So the draw depends on nothing but the secret, the
    assignment, the pool's place, its draw number and the student: adding, removing or
    reordering roster students never changes anyone else's draw; reordering the
    alternatives changes nobody's; adding one moves only those who now draw it. Without
    the secret the draw is unpredictable, and every alternative is drawn with the same
    probability choose/n, independently per student (README "Problem pools": why balance
    is then statistical, and how ``draw`` evens out a roster).
    """
    mask = drawn(pool_weights(pool_keys(secret, assignment, entry, pool, student_id),
                              pool.draw), pool.choose)
    return tuple(int(j) for j in np.flatnonzero(mask))


@dataclass(frozen=True)
class Issued:
    """What one problem number of a student's notebook holds, before its variant."""

    number: int
    spec: ProblemSpec
    pool: int | None = None
    alternative: int | None = None


def issued_specs(secret: bytes, assignment: AssignmentSpec, student_id: str) -> list[Issued]:
    """Per problem number, the family/level (and pool draw) the student holds."""
    out: list[Issued] = []
    for i, entry in enumerate(assignment.problems):
        if isinstance(entry, PoolSpec):
            for j in pool_draw(secret, assignment.name, i, entry, student_id):
                out.append(Issued(len(out) + 1, entry.alternatives[j], i, j))
        else:
            out.extend(Issued(len(out) + 1, entry) for _ in range(entry.count))
    return out


def _problem(item: Issued, v: Variant, credit: str | float) -> Problem:
    spec = item.spec
    scale = 1.0
    if spec.points is not None:
        scale = spec.points / sum(p.points for p in parts_of(get_family(spec.family), v))
    return Problem(item.number, spec.family, spec.level, v, scale, spec.rtol, spec.atol,
                   credit, item.pool, item.alternative,
                   spec.points if item.pool is not None else None)


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
    out: list[Problem] = []
    for item in issued_specs(secret, assignment, student_id):
        spec = item.spec
        seed = variant_seed(secret, assignment.name, item.number, spec.family, spec.level,
                            student_id)
        v = make_variant(spec.family, np.random.default_rng(seed), spec.level)
        out.append(_problem(item, v, assignment.mistake_credit))
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
    its problems are the ones the assignment lists now for this student (family, level,
    order, and the student's draw from each pool). The
    variants are then exactly what the student was given, so grading need not
    regenerate them -- and grades against the issued numbers even if a generator changed.
    """
    if not isinstance(stamp, dict) or stamp.get("student") != student_id \
            or stamp.get("assignment") != assignment.name:
        return None
    if not _check_signature(course, stamp):
        return None
    listed = stamp.get("problems")
    wanted = issued_specs(course.secret, assignment, student_id)
    if not isinstance(listed, list) or len(listed) != len(wanted):
        return None
    out = []
    for number, (item, entry) in enumerate(zip(wanted, listed, strict=True), start=1):
        family, level = item.spec.family, item.spec.level
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
        out.append(_problem(item, v, assignment.mistake_credit))
    return out


def _check_signature(course: Course, stamp: dict) -> bool:
    payload = {k: v for k, v in stamp.items() if k != "signature"}
    try:
        expected = hmac.new(course.secret, _canonical(payload), hashlib.sha256).hexdigest()
    except (TypeError, ValueError):
        return False
    sig = stamp.get("signature")
    return isinstance(sig, str) and hmac.compare_digest(expected, sig)


def pool_alternatives(course: Course, assignment: AssignmentSpec,
                      student_id: str = "template") -> dict[int, list[Problem]]:
    """Per pooled problem number, every alternative as ``student_id`` would hold it there
    (the report's per-alternative rows and part names; the source notebook shows one)."""
    out: dict[int, list[Problem]] = {}
    number = 0
    for i, entry in enumerate(assignment.problems):
        for _ in range(entry.count):
            number += 1
            if not isinstance(entry, PoolSpec):
                continue
            for j, alt in enumerate(entry.alternatives):
                seed = variant_seed(course.secret, assignment.name, number, alt.family,
                                    alt.level, student_id)
                v = make_variant(alt.family, np.random.default_rng(seed), alt.level)
                out.setdefault(number, []).append(
                    _problem(Issued(number, alt, i, j), v, assignment.mistake_credit))
    return out
