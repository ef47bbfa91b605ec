"""What the generator really draws, measured over 200 seeds per family and level.

The README's families table and ``pset list`` promise features (padding, stride,
groups, ...) and named mistakes per level; these tests hold every family to the shares
it declares (``Family.advertised``), to the mistakes it declares (``mistake_names``)
and to its hand-work budget (``Family.budgets``).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

import pytest

from convpset.problems import family_names, get_family, over_budget, variant_from_seed
from convpset.problems.base import LANGS, Part
from convpset.problems.registry import BUILTIN
from convpset.problems.text import _catalog, has, keys, render

N_SEEDS = 200
CASES = [(name, level) for name in BUILTIN for level in get_family(name).levels]


@cache
def _draw(name: str, level: int) -> tuple:
    return tuple(variant_from_seed(name, seed, level) for seed in range(N_SEEDS))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "level"), CASES)
def test_every_advertised_feature_is_drawn_in_its_stated_share(name, level):
    fam = get_family(name)
    counts = Counter(t for v in _draw(name, level) for t in fam.traits(v))
    for trait, (lo, hi) in fam.advertised.get(level, {}).items():
        share = counts[trait] / N_SEEDS
        assert lo <= share <= hi, f"{name} level {level}: {trait} in {share:.1%} of seeds"


@pytest.mark.parametrize("name", BUILTIN)
def test_every_level_above_one_advertises_something(name):
    fam = get_family(name)
    for level in fam.levels:
        if level > 1:
            assert fam.advertised.get(level), f"{name} level {level} advertises nothing"
        assert fam.mistake_names.get(level), f"{name} level {level} declares no mistakes"


@pytest.mark.slow
@pytest.mark.parametrize(("name", "level"), CASES)
def test_declared_mistakes_are_the_ones_the_variants_name(name, level):
    """Both ways: every declared mistake shows up in some seed, nothing undeclared does."""
    fam = get_family(name)
    seen = {m.key for v in _draw(name, level) for m in fam.mistakes(v)}
    assert seen == set(fam.mistake_names[level])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "level"), CASES)
def test_hand_work_stays_within_the_level_budget(name, level):
    fam = get_family(name)
    assert fam.budgets.get(level), f"{name} level {level} has no budget"
    worst: dict[str, float] = {}
    for v in _draw(name, level):
        assert not over_budget(fam, v), (v.to_json(), over_budget(fam, v))
        for k, x in fam.size_budget(v).items():
            worst[k] = max(worst.get(k, 0.0), x)
    assert set(worst) >= set(fam.budgets[level]), "size_budget lacks a budgeted measure"


def test_over_budget_names_the_measure():
    """A budget is a real limit: a variant above it is reported (and make_variant redraws)."""
    fam = get_family("conv_as_matrix")
    v = variant_from_seed("conv_as_matrix", 0, 1)
    measured = fam.size_budget(v)
    assert measured["W_entries"] <= fam.budgets[1]["W_entries"]
    params = {k: v.plain(k) for k in v.params}
    params.update(input_shape=[1, 6, 6], x=[[[1] * 6 for _ in range(6)]])
    big = type(v)(v.family, v.level, params)
    assert any(s.startswith("W_entries=") for s in over_budget(fam, big))


def test_padded_conv_as_matrix_w_differs_from_its_transpose():
    """The padded level-2 case the screen used to reject wholesale is now drawn."""
    fam = get_family("conv_as_matrix")
    padded = [v for v in _draw("conv_as_matrix", 2) if "padding" in fam.traits(v)]
    assert padded
    for v in padded[:20]:
        w = fam.solve(v)["W"]
        assert w.shape != w.T.shape or (w != w.T).any()


def test_registered_names_cover_builtins():
    assert set(BUILTIN) <= set(family_names())


# ------------------------------------------------------------------ conventions and language
LATIN_OK = {"torch", "numpy", "Keras", "Fortran", "Python", "Jupyter", "nbgrader", "rtol",
            "atol", "True", "False",
            # tools and packages named in instructor messages
            "Gradescope", "Dask", "dask", "convpset", "JupyterHub", "Canvas", "Moodle"}
_HIDDEN = re.compile(r"`[^`]*`|\$\$.+?\$\$|\$[^$]*\$|\{\{.*?\}\}|\{%.*?%\}|\{\w+\}", re.S)
_WORD = re.compile(r"(?<![\w/.\\-])[A-Za-z][a-z]{2,}(?![\w(/])")  # not --options
PER_SIDE = {"en": "on each side", "ru": "с каждой стороны"}


def english_words(text: str) -> list[str]:
    """Latin words of a Russian text outside code, formulas and the names of tools."""
    return [w for w in _WORD.findall(_HIDDEN.sub(" ", text)) if w not in LATIN_OK]


def _mistake_text(name: str, m, lang: str) -> str:
    key = f"{name}.mistake.{m.key}"
    if not has("en", key):
        key = f"mistake.common.{m.key}"
    part = Part("x", "array", 1.0, {"en": "x", "ru": "x"})
    return render(lang, key, part=part, **dict(m.args))


def test_english_words_finds_english():
    assert english_words("шаг 1, dilation 2") == ["dilation"]
    assert english_words("как в `torch.nn.Conv2d`, $W^T$ и torch") == []


def test_russian_tables_have_no_english():
    bad = {k: english_words(_catalog("ru")[k]) for k in keys("ru")}
    assert not {k: w for k, w in bad.items() if w}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "level"), CASES)
def test_statements_state_the_conventions_the_variant_needs(name, level):
    fam = get_family(name)
    for v in _draw(name, level)[:40]:
        tr = fam.traits(v)
        for lang in LANGS:
            text = fam.statement(v, lang)
            if "padding" in tr:
                assert PER_SIDE[lang] in text, (name, level, lang, "per side")
            if name == "pooling" and "padding" in tr:
                assert ("−∞" in text) == (v.params["mode"] == "max")
                assert ("count_include_pad" in text) == (v.params["mode"] == "avg")
            if "groups" in tr and name == "conv_as_matrix":
                assert {"en": "group 1 reads input channel",
                        "ru": "группа 1 читает входной канал"}[lang] in text
                assert {"en": "and computes output channel 2",
                        "ru": "и вычисляет выходной канал 2"}[lang] in text
            if name == "conv_backward":
                assert {"en": "a bias $b$ (one value per output channel)",
                        "ru": "свободным членом $b$ (по одному на выходной канал)"}[lang] in text
                assert "without bias" not in text
            if lang == "ru":
                assert "разваливается" not in text and "общие веса" not in text
                assert not re.search(r"шаг \d+, паддинг", text)
                explain = fam.explain(v, lang)
                mistakes = " ".join(_mistake_text(name, m, lang) for m in fam.mistakes(v))
                for chunk in (text, explain, mistakes):
                    assert not english_words(chunk), (name, level, english_words(chunk))


def test_pset_list_shows_every_mistake_per_level(monkeypatch):
    from rich.console import Console
    from typer.testing import CliRunner

    from convpset.cli import pset as pset_cli

    monkeypatch.setattr(pset_cli, "console", Console(width=400))   # no wrapped names
    r = CliRunner().invoke(pset_cli.pset_app, ["list"])
    assert r.exit_code == 0, r.output
    for name in BUILTIN:
        for declared in get_family(name).mistake_names.values():
            for key in declared:
                assert key in r.output, key
    for key in ("ignored_padding", "ignore_dilation", "maxpool_zero_pad"):
        assert key in r.output
