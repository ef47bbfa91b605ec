"""Student-facing text: one TOML file per language, templates rendered with jinja2.

Keeping every sentence in ``problems/text/{en,ru}.toml`` means a translator edits one file
and the code never hard-codes a student-facing string.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from convpset.problems.base import LANGS

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          autoescape=False)


@cache
def _catalog(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise ValueError(f"language must be one of {', '.join(LANGS)}, got {lang!r}")
    raw = resources.files("convpset.problems").joinpath(f"text/{lang}.toml").read_text(encoding="utf-8")
    flat: dict[str, str] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(name, value)
            else:
                flat[name] = str(value)

    walk("", tomllib.loads(raw))
    return flat


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
    return key in _catalog(lang)


def render(lang: str, key: str, **ctx: Any) -> str:
    """Render the text ``key`` in ``lang`` with ``ctx``; a missing key or variable raises."""
    simple = _name_only(lang, key)
    if simple is not None and set(ctx) == {"part"}:
        return simple.replace(_NAME_ONLY, str(ctx["part"].name)).strip()
    if "parts" in ctx and key != "answers.list":
        ctx.setdefault("answers_list", render(lang, "answers.list", parts=ctx["parts"]))
    return _template(lang, key).render(lang=lang, **ctx).strip()


def render_all(key: str, **ctx: Any) -> dict[str, str]:
    """The same message in every language, as stored in results."""
    return {lang: render(lang, key, **ctx) for lang in LANGS}


def keys(lang: str) -> set[str]:
    return set(_catalog(lang))
