"""The practice page: a fresh random variant of any family and level, judged on the spot,
with the worked solution on request. No grades, no roster, no state on the server.

A practice variant comes from its own seed space (a two-word seed sequence tagged
``PRACTICE``, never the single 64-bit HMAC seed of a graded variant) and, to be sure, is
redrawn when it equals any variant issued to a roster student for a graded assignment:
the worked solution of a practice variant can then never be the key of someone's graded
problem. The page's form carries the seed with an HMAC, so only variants the server drew
can be judged or explained.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from convpset.notebooks.course import Course
from convpset.notebooks.variants import Problem, problems_for
from convpset.problems import family_names, get_family, make_variant
from convpset.problems.base import Variant

PRACTICE = 0x5052414354494345          # "PRACTICE": the first word of every practice seed
MAX_REDRAWS = 20


@dataclass(frozen=True)
class PracticeVariant:
    family: str
    level: int
    seed: int
    problem: Problem

    def ticket(self, secret: bytes) -> str:
        return f"{self.seed}.{_sign(secret, self.family, self.level, self.seed)}"


def _sign(secret: bytes, family: str, level: int, seed: int) -> str:
    msg = f"practice|{family}|{level}|{seed}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:32]


_GRADED: dict[tuple[str, bytes, str, int], frozenset[str]] = {}


def graded_digests(course: Course, family: str, level: int) -> frozenset[str]:
    """Digests of every variant of ``family``/``level`` issued to a roster student
    (computed once per course, family and level)."""
    key = (str(course.root), course.secret, family, level)
    if key not in _GRADED:
        _GRADED[key] = _graded(course, family, level)
    return _GRADED[key]


def _graded(course: Course, family: str, level: int) -> frozenset[str]:
    out = set()
    ids = [s.student_id for s in course.roster()]
    for spec in course.assignments.values():
        if any(p.family == family and p.level == level for p in spec.all_specs()):
            for sid in ids:
                out.update(p.variant.digest() for p in problems_for(course, spec, sid)
                           if p.family == family and p.level == level)
    return frozenset(out)


def _variant(family: str, level: int, seed: int, excluded: frozenset[str]) -> Variant | None:
    rng = np.random.default_rng(np.random.SeedSequence([PRACTICE, seed]))
    for _ in range(MAX_REDRAWS):
        v = make_variant(family, rng, level)
        if v.digest() not in excluded:
            return v
    return None


def valid(family: str, level: Any) -> bool:
    return family in family_names() and isinstance(level, int) \
        and level in get_family(family).levels


def draw(course: Course, family: str, level: int, seed: int | None = None,
         excluded: frozenset[str] | None = None) -> PracticeVariant | None:
    """A practice variant (a fresh seed unless given); None if every redraw was a graded
    student's variant (a family with very few variants at that level)."""
    seed = secrets.randbits(63) if seed is None else seed
    excluded = graded_digests(course, family, level) if excluded is None else excluded
    v = _variant(family, level, seed, excluded)
    if v is None:
        return None
    return PracticeVariant(family, level, seed, Problem(1, family, level, v, 1.0))


def from_ticket(course: Course, family: str, level: int, ticket: str) -> PracticeVariant | None:
    """The variant a form was drawn with, if its ticket is ours."""
    seed_text, _, sig = ticket.partition(".")
    if not seed_text.isdigit() or len(seed_text) > 20:
        return None
    seed = int(seed_text)
    if not hmac.compare_digest(_sign(course.secret, family, level, seed), sig):
        return None
    return draw(course, family, level, seed)
