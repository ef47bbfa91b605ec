"""Student- and instructor-facing text: tables per language, rendered with jinja2.

The common sentences (verdicts, notes, notebook chrome) live in
``problems/text/{en,ru}.toml``; a page's own sentences in ``problems/text/PAGE.{en,ru}.toml``,
mounted under ``PAGE`` (``report.title``, ``page.total``); each family's own sentences live beside its module in
``<family>.toml`` (an ``[en]`` and a ``[ru]`` table), mounted under the family's name
(``conv_as_matrix.statement``, ``conv_as_matrix.mistake.transpose``). A translator edits
tables, never code, and the code never hard-codes a sentence.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import jinja2

from convpset.problems.base import LANGS

if TYPE_CHECKING:
    from convpset.problems.contract import Family

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          autoescape=False)


def decimal(value: float, lang: str, digits: int = 1) -> str:
    """A number as a reader of ``lang`` writes it: ``5.7`` in English, ``5,7`` in Russian
    (a decimal point reads as a typo there); whole numbers without a fraction."""
    x = round(float(value), digits)
    text = str(int(x)) if x == int(x) else f"{x:.{digits}f}".rstrip("0")
    return text.replace(".", ",") if lang == "ru" else text


def ru_plural(n: float, one: str, few: str, many: str) -> str:
    """The Russian form for ``n``: 1 балл, 2 балла, 5 баллов, 21 балл, 1,5 балла (a
    fraction takes the genitive singular)."""
    if float(n) != int(n):
        return few
    k = abs(int(n))
    if k % 10 == 1 and k % 100 != 11:
        return one
    if 2 <= k % 10 <= 4 and not 12 <= k % 100 <= 14:
        return few
    return many


def points_text(value: float, lang: str) -> str:
    """``2 pt`` / ``2 балла``: the points of a part in the answer list."""
    n = decimal(value, lang)
    if lang == "ru":
        return f"{n} {ru_plural(round(float(value), 1), 'балл', 'балла', 'баллов')}"
    return f"{n} pt"


_ENV.filters["decimal"] = decimal
_ENV.filters["points"] = points_text
_family_tables: dict[str, Path] = {}


def _flatten(prefix: str, node: dict[str, Any], flat: dict[str, str]) -> None:
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(name, value, flat)
        else:
            flat[name] = str(value)


@cache
def _read_toml(path: str) -> dict[str, Any]:
    return tomllib.loads(Path(path).read_text(encoding="utf-8"))


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise ValueError(f"language must be one of {', '.join(LANGS)}, got {lang!r}")


@cache
def _catalog(lang: str) -> dict[str, str]:
    _check_lang(lang)
    raw = resources.files("convpset.problems").joinpath(f"text/{lang}.toml").read_text(
        encoding="utf-8")
    flat: dict[str, str] = {}
    _flatten("", tomllib.loads(raw), flat)
    for res in sorted(resources.files("convpset.problems").joinpath("text").iterdir(),
                      key=lambda r: r.name):
        prefix, _, rest = res.name.partition(".")
        if rest == f"{lang}.toml":
            _flatten(prefix, tomllib.loads(res.read_text(encoding="utf-8")), flat)
    for name, path in _family_tables.items():
        table = _read_toml(str(path)).get(lang)
        if isinstance(table, dict):
            _flatten(name, table, flat)
    return flat


def register_family_text(fam: Family) -> None:
    """Mount a family's table (called by the registry); clears the rendered caches."""
    if fam.text_path is None or _family_tables.get(fam.name) == Path(fam.text_path):
        return
    _family_tables[fam.name] = Path(fam.text_path)
    for f in (_catalog, _template, _name_only, fixed_all):
        f.cache_clear()


def family_keys(fam: Family, lang: str) -> set[str] | None:
    """The keys of ``fam``'s own ``[lang]`` table, or None when it has none."""
    if fam.text_path is None:
        return None
    try:
        table = _read_toml(str(fam.text_path)).get(lang)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(table, dict):
        return None
    flat: dict[str, str] = {}
    _flatten("", table, flat)
    return set(flat)


def _ensure_families() -> None:
    """Family text is mounted when the registry loads the families."""
    from convpset.problems.registry import families

    families()


@cache
def _template(lang: str, key: str) -> jinja2.Template:
    try:
        source = _catalog(lang)[key]
    except KeyError:
        raise KeyError(f"no text {key!r} for language {lang!r}") from None
    return _ENV.from_string(source)


_NAME_ONLY = "{{ part.name }}"


@cache
def _name_only(lang: str, key: str) -> str | None:
    """The source of a text whose only placeholder is the part's name, else None.

    Such texts ("`W_1` is correct.") are most of the verdicts written in a batch; a
    string replace gives jinja's exact output without building a template context.
    """
    source = _catalog(lang).get(key)
    if source is None or _NAME_ONLY not in source:
        return None
    rest = source.replace(_NAME_ONLY, "")
    return None if "{{" in rest or "{%" in rest or "{#" in rest else source


def has(lang: str, key: str) -> bool:
    if key not in _catalog(lang):
        _ensure_families()
    return key in _catalog(lang)


def render(lang: str, key: str, **ctx: Any) -> str:
    """Render the text ``key`` in ``lang`` with ``ctx``; a missing key or variable raises."""
    if key not in _catalog(lang):
        _ensure_families()
    simple = _name_only(lang, key)
    if simple is not None and set(ctx) == {"part"}:
        return simple.replace(_NAME_ONLY, str(ctx["part"].name)).strip()
    if "parts" in ctx and key != "answers.list":
        ctx.setdefault("answers_list", render(lang, "answers.list", parts=ctx["parts"]))
    return _template(lang, key).render(lang=lang, **ctx).strip()


def render_all(key: str, **ctx: Any) -> dict[str, str]:
    """The same message in every language, as stored in results."""
    return {lang: render(lang, key, **ctx) for lang in LANGS}


@cache
def fixed_all(key: str) -> Mapping[str, str]:
    """A text without variables (a part's label) in every language, rendered once: parts
    are built for every student's every variant, their labels never change."""
    return MappingProxyType(render_all(key))


def keys(lang: str) -> set[str]:
    _ensure_families()
    return set(_catalog(lang))
