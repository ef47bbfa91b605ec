"""The family contract, checked generically for every registered family and level.

Whatever a family is -- built in, from a plugin, a course's own -- it must be
deterministic, pass its own distractor screen, render its statement in every language,
agree with its independent oracle, name every listed mistake when a student makes it,
and stay within its hand-work budgets. Nothing here knows any particular family.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from convpset.problems import (
    Submitted,
    Variant,
    check,
    families,
    mistake_collisions,
    variant_from_seed,
)
from convpset.problems.base import LANGS
from convpset.problems.registry import register_folder
from convpset.problems.text import has

SEEDS = range(12)          # per family and level: 8 families × 3 levels × 12 = 288 variants
ORACLE_SEEDS = range(5)    # the oracles run torch: fewer
CYRILLIC = re.compile(r"[а-яё]{3,}", re.IGNORECASE)

# A course's families/ folder to hold to the same contract (tests/test_course_family.py
# runs this file so for the example course's own family).
if os.environ.get("CONVPSET_TEST_FAMILIES"):
    register_folder(Path(os.environ["CONVPSET_TEST_FAMILIES"]))

CASES = [(name, level) for name, fam in families().items() for level in fam.levels]
IDS = [f"{name}-L{level}" for name, level in CASES]


def _submit(answers: dict) -> dict[str, Submitted]:
    return {k: Submitted.of(v) for k, v in answers.items()}


def _same(a, b) -> bool:
    if isinstance(a, list | tuple) and a and isinstance(a[0], tuple | list):
        return [tuple(r) for r in a] == [tuple(r) for r in b]
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0, atol=1e-9))


@pytest.mark.parametrize(("name", "level"), CASES, ids=IDS)
def test_deterministic(name, level):
    fam = families()[name]
    for seed in SEEDS:
        a, b = variant_from_seed(name, seed, level), variant_from_seed(name, seed, level)
        assert a.family == name and a.level == level
        assert a.digest() == b.digest()
        assert fam.data_code(a) == fam.data_code(b)
        # the grader rebuilds the variant from the notebook's stamp (JSON, sorted keys):
        # the data cell it regenerates must be the one the student received
        stamped = Variant.from_json(json.loads(json.dumps(a.to_json(), sort_keys=True)))
        assert stamped.digest() == a.digest()
        assert fam.data_code(stamped) == fam.data_code(a)
        for lang in LANGS:
            assert fam.statement(stamped, lang) == fam.statement(a, lang)
        for lang in LANGS:
            assert fam.statement(a, lang).encode() == fam.statement(b, lang).encode()
    assert len({variant_from_seed(name, s, level).digest() for s in SEEDS}) > 1


@pytest.mark.parametrize(("name", "level"), CASES, ids=IDS)
def test_screen_passes_and_mistakes_are_distinct(name, level):
    fam = families()[name]
    # the screen must not reject most candidates: what it keeps would be a skewed sample
    rng = np.random.default_rng(12345)
    kept = sum(not mistake_collisions(fam, fam.generate(rng, level)) for _ in range(40))
    assert kept >= 8, f"{name} level {level}: the screen keeps {kept} of 40 candidates"
    for seed in SEEDS:
        v = variant_from_seed(name, seed, level)
        assert mistake_collisions(fam, v) == []
        keys = [m.key for m in fam.mistakes(v)]
        n = len(set(keys))   # each slip once, then narrower scopes of listed slips only
        assert len(set(keys[:n])) == n and set(keys[n:]) <= set(keys[:n]), keys
        parts = {p.name for p in fam.parts(v)}
        for m in fam.mistakes(v):
            assert m.answers and set(m.answers) <= parts, (m.key, set(m.answers))


@pytest.mark.parametrize(("name", "level"), CASES, ids=IDS)
def test_statement_and_explanation_render_in_every_language(name, level):
    fam = families()[name]
    for seed in SEEDS[:4]:
        v = variant_from_seed(name, seed, level)
        texts = {lang: (fam.statement(v, lang), fam.explain(v, lang)) for lang in LANGS}
        for lang, (statement, explain) in texts.items():
            for t in (statement, explain):
                assert t.strip() and "{{" not in t and "{%" not in t
            for p in fam.parts(v):
                assert f"`{p.name}`" in statement, (lang, p.name)
                assert p.label[lang].strip()
        assert texts["en"] != texts["ru"]
        assert len(CYRILLIC.findall(texts["ru"][0])) >= 5
        exec(fam.data_code(v), {})          # the data cell is valid Python


@pytest.mark.parametrize(("name", "level"), CASES, ids=IDS)
def test_solve_equals_oracle(name, level):
    fam = families()[name]
    for seed in ORACLE_SEEDS:
        v = variant_from_seed(name, seed, level)
        want = fam.oracle(v)
        if want is None:
            pytest.skip(f"{name} has no oracle")
        key = fam.solve(v)
        assert set(key) == set(want) == {p.name for p in fam.parts(v)}
        for part in fam.parts(v):
            assert _same(key[part.name], want[part.name]), (seed, part.name)
            if part.shape is not None:
                assert np.asarray(key[part.name]).shape == part.shape


@pytest.mark.parametrize(("name", "level"), CASES, ids=IDS)
def test_every_mistake_is_named_when_submitted(name, level):
    fam = families()[name]
    for seed in SEEDS:
        v = variant_from_seed(name, seed, level)
        key = fam.solve(v)
        full = check(fam, v, _submit(key))
        assert all(r.status == "correct" for r in full)
        for m in fam.mistakes(v):
            for lang in LANGS:        # its text exists, the family's own or a common one
                assert has(lang, f"{name}.mistake.{m.key}") or has(lang, f"mistake.common.{m.key}")
            results = {r.part: r for r in check(fam, v, _submit(dict(key) | dict(m.answers)))}
            for part, r in results.items():
                if part in m.answers:
                    assert r.mistake == m.key, (seed, m.key, part, r)
                    assert r.score < r.max_score
                    assert r.message["en"] != r.message["ru"]
                else:
                    assert r.status == "correct", (seed, m.key, part, r)


@pytest.mark.parametrize(("name", "level"), CASES, ids=IDS)
def test_budgets_hold(name, level):
    fam = families()[name]
    budget = fam.budgets.get(level, {})
    for seed in SEEDS:
        measures = fam.size_budget(variant_from_seed(name, seed, level))
        assert set(budget) <= set(measures), f"{name}: budgets name unmeasured {set(budget)}"
        for measure, most in budget.items():
            assert measures[measure] <= most, (seed, measure, measures[measure], most)


@pytest.mark.parametrize(("name", "level"), CASES, ids=IDS)
def test_features_are_numbers_with_labels(name, level):
    fam = families()[name]
    v = variant_from_seed(name, 0, level)
    for feature, value in fam.features(v).items():
        assert isinstance(value, float) and np.isfinite(value)
        for lang in LANGS:
            assert has(lang, f"{name}.feature.{feature}"), (lang, feature)
