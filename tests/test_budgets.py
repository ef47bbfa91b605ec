"""Hand work: every level under a stated budget, and a higher level never lighter.

The budget is stated here, independent of the families' own ``budgets``: a 20-minute
exercise leaves 11, 13 and 16 minutes of writing at levels 1-3, and a convolution matrix
(mostly zeros and copied kernel weights) is written at about 8 entries a minute. So the
matrix families may ask at most 88, 104 and 128 numbers (all answers together) -- the
audit of issue 23 found 152 (``conv_as_matrix`` level 3) and 127 (``transposed_conv``
level 2, more than its level 3). Every family's levels must also grow: the median number
of answer entries of level 1 ≤ level 2 ≤ level 3. Deterministic seeds; outcomes only.
"""

from __future__ import annotations

import numpy as np
import pytest

from convpset.problems import family_names, get_family, variant_from_seed
from convpset.problems.checking import solved
from convpset.problems.contract import answer_entries

pytestmark = pytest.mark.slow   # ~3,000 variants drawn through the screen

SEEDS = range(120)
ENTRIES_PER_MINUTE = 8
MINUTES = {1: 11, 2: 13, 3: 16}
MATRIX_FAMILIES = ("conv_as_matrix", "transposed_conv")


def _entries(name: str, level: int) -> np.ndarray:
    fam = get_family(name)
    return np.array([answer_entries(solved(fam, variant_from_seed(name, s, level)))
                     for s in SEEDS])


def _w_entries(name: str, level: int) -> np.ndarray:
    fam = get_family(name)
    return np.array([solved(fam, variant_from_seed(name, s, level))["W"].size for s in SEEDS])


@pytest.mark.parametrize("name", MATRIX_FAMILIES)
def test_matrix_families_fit_the_stated_minutes(name):
    """Every drawn variant of every level is within its minutes of writing."""
    for level in get_family(name).levels:
        cap = ENTRIES_PER_MINUTE * MINUTES[level]
        worst = int(_entries(name, level).max())
        assert worst <= cap, f"{name} level {level}: {worst} entries > {cap}"


@pytest.mark.parametrize("name", MATRIX_FAMILIES)
def test_matrix_families_level_2_lighter_than_level_3(name):
    """Level 2 asks strictly less than level 3, in all entries and in entries of W."""
    for measure in (_entries, _w_entries):
        m2, m3 = (float(np.median(measure(name, lv))) for lv in (2, 3))
        assert m2 < m3, f"{name} {measure.__name__}: median L2 {m2} ≥ L3 {m3}"


@pytest.mark.parametrize("name", family_names())
def test_levels_never_get_lighter(name):
    """By the median number of answer entries, level 1 ≤ level 2 ≤ level 3."""
    levels = get_family(name).levels
    medians = [float(np.median(_entries(name, lv))) for lv in levels]
    assert medians == sorted(medians), f"{name}: median entries per level {medians}"


@pytest.mark.parametrize("name", MATRIX_FAMILIES)
def test_generator_enforces_the_stated_budget(name):
    """The family's own budget (what ``make_variant`` redraws on) is no looser than the
    stated one, so a future generator change cannot hand out more."""
    fam = get_family(name)
    for level in fam.levels:
        assert fam.budgets[level]["entries"] <= ENTRIES_PER_MINUTE * MINUTES[level]
