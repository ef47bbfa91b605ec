"""Problem families: randomized, hand-solvable convolution exercises.

Each family implements :class:`convpset.problems.contract.Family` in one module, with its
text beside it; :mod:`convpset.problems.registry` finds them (built-ins, entry points,
a course's ``families/`` folder). This module draws variants through the distractor
screen, written once for every family.
"""

from __future__ import annotations

import numpy as np

from convpset.problems.base import Mistake, Part, PartResult, Variant
from convpset.problems.checking import Submitted, check, mistake_collisions
from convpset.problems.contract import Family
from convpset.problems.registry import FamilyError, families, family_names, get_family

MAX_TRIES = 500


def make_variant(name: str, rng: np.random.Generator, level: int = 1) -> Variant:
    """Draw a variant of family ``name`` that passes the distractor screen.

    Candidates in which some listed mistake would produce the correct answer are
    rejected: otherwise the grader could not tell the misconception from the truth.
    Only ``rng`` is used, so the same seed always gives the same variant.
    """
    fam = get_family(name)
    if level not in fam.levels:
        raise ValueError(f"family {name} has levels {fam.levels}, got {level}")
    for _ in range(MAX_TRIES):
        v = fam.generate(rng, level)
        if not over_budget(fam, v) and not mistake_collisions(fam, v):
            return v
    raise FamilyError(f"family {name} level {level}: no variant passed the distractor screen "
                      f"in {MAX_TRIES} draws (every candidate let a listed mistake give the "
                      f"right answer, or two mistakes the same one)")


def over_budget(fam: Family, v: Variant) -> list[str]:
    """The hand-work measures of ``v`` above its level's budget (empty: within budget).

    The budget (:attr:`Family.budgets`) keeps a personal variant solvable on paper in the
    time the course plans; the generator redraws instead of handing out a heavy one.
    """
    limits = fam.budgets.get(v.level, {})
    if not limits:
        return []
    measured = fam.size_budget(v)
    return [f"{k}={measured[k]:g} > {cap:g}" for k, cap in limits.items()
            if k in measured and measured[k] > cap]


def variant_from_seed(name: str, seed: int, level: int = 1) -> Variant:
    return make_variant(name, np.random.default_rng(seed), level)


__all__ = [
    "Family", "FamilyError", "Mistake", "Part", "PartResult", "Submitted", "Variant",
    "check", "families", "family_names", "get_family", "make_variant", "mistake_collisions",
    "over_budget",
    "variant_from_seed",
]
