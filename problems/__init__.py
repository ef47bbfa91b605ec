"""Problem families: randomized, hand-solvable convolution exercises.

Each family is one module of this package with the interface described in
:mod:`convpset.problems.base`. :data:`FAMILIES` lists them; adding a family is adding its module
name here (plus its tests and its strings in ``text/``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from convpset.problems.base import Mistake, Part, PartResult, Variant
from convpset.problems.checking import Submitted, check, mistake_collisions

FAMILY_NAMES: tuple[str, ...] = (
    "conv_as_matrix",
    "param_count",
    "output_shape",
    "conv_backward",
    "pooling",
)
_REQUIRED = ("LEVELS", "generate", "parts", "solve", "mistakes", "statement", "data_code",
             "explain")
MAX_TRIES = 500


class FamilyError(KeyError):
    pass


def get_family(name: str) -> ModuleType:
    """The family module called ``name``; raises FamilyError listing the known ones."""
    if name not in FAMILY_NAMES:
        raise FamilyError(f"unknown problem family {name!r}; known: {', '.join(FAMILY_NAMES)}")
    mod = importlib.import_module(f"convpset.problems.{name}")
    missing = [f for f in _REQUIRED if not hasattr(mod, f)]
    if missing:
        raise FamilyError(f"family {name} lacks {', '.join(missing)}")
    return mod


def make_variant(name: str, rng: np.random.Generator, level: int = 1) -> Variant:
    """Draw a variant of family ``name`` that passes the distractor screen.

    Candidates in which some listed mistake would produce the correct answer are
    rejected: otherwise the grader could not tell the misconception from the truth.
    Only ``rng`` is used, so the same seed always gives the same variant.
    """
    fam = get_family(name)
    if level not in fam.LEVELS:
        raise ValueError(f"family {name} has levels {fam.LEVELS}, got {level}")
    for _ in range(MAX_TRIES):
        v = fam.generate(rng, level)
        if not mistake_collisions(fam, v):
            return v
    raise RuntimeError(f"{name} level {level}: no variant passed the distractor screen")


def variant_from_seed(name: str, seed: int, level: int = 1) -> Variant:
    return make_variant(name, np.random.default_rng(seed), level)


__all__ = [
    "FAMILY_NAMES", "FamilyError", "Mistake", "Part", "PartResult", "Submitted", "Variant",
    "check", "get_family", "make_variant", "mistake_collisions", "variant_from_seed",
]
