"""Markdown and TeX to HTML for the pages we publish (feedback, report), with no network.

Formulas are converted to MathML on the server (``latex2mathml``), which every current
browser renders natively: a page opened on a lab machine without internet, in an exam
room or as an e-mail attachment shows the same mathematics as online, and loads no
script, style or font from anywhere.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

import cmarkgfm

_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
_PLACEHOLDER = re.compile(r"MATHPH(\d+)X")
# A matrix's brackets are written beside its table; MathML Core stretches an operator to
# its row's height only as a prefix/postfix fence, so mark them as such.
_OPEN = re.compile(r"<mo>(&#x0002[8B];|&#x0005B;|&#x0007[BC];|&#x02016;)</mo>(?=<mtable)")
_CLOSE = re.compile(r"(?<=</mtable>)<mo>(&#x0002[9D];|&#x0005D;|&#x0007[CD];|&#x02016;)</mo>")


def _stretch_fences(mathml: str) -> str:
    mathml = _OPEN.sub(r'<mo form="prefix" stretchy="true">\1</mo>', mathml)
    return _CLOSE.sub(r'<mo form="postfix" stretchy="true">\1</mo>', mathml)


@lru_cache(maxsize=4096)
def tex_html(tex: str, display: bool) -> str:
    """One formula as MathML; the TeX itself, escaped, in ``<code>`` if it cannot be
    converted (so a converter gap shows the source rather than breaking the page).

    Cached: short formulas (``$W$``, ``$x$``) repeat on every page of a batch.
    """
    from latex2mathml.converter import convert

    try:
        return _stretch_fences(convert(tex.strip(), display="block" if display else "inline"))
    except Exception:  # noqa: BLE001 -- any converter failure falls back to the source
        return f'<code class="tex">{html.escape(tex)}</code>'


def _math_html(source: str) -> str:
    display = source.startswith("$$")
    return tex_html(source[2:-2] if display else source[1:-1], display)


def markdown_html(text: str) -> str:
    """Markdown with ``$…$``/``$$…$$`` formulas to HTML with MathML.

    Math is swapped for placeholders before parsing: markdown would otherwise mangle
    ``\\`` and ``_`` inside formulas, and scanning long matrices dominates the cost.
    GitHub's C cmark (tables, raw HTML suppressed) renders a statement in ~0.1 ms, ten
    times faster than a pure-Python parser: it runs once per problem per student.
    """
    maths: list[str] = []

    def hide(m: re.Match[str]) -> str:
        maths.append(m.group(0))
        return f"MATHPH{len(maths) - 1}X"

    out = cmarkgfm.github_flavored_markdown_to_html(_MATH.sub(hide, text))
    return _PLACEHOLDER.sub(lambda m: _math_html(maths[int(m.group(1))]), out)


def inline_html(text: str) -> str:
    """A one-paragraph message (a verdict, a note) as inline HTML: `code`, *emphasis*
    and formulas rendered, no wrapping ``<p>``."""
    out = markdown_html(text).strip()
    if out.startswith("<p>") and out.endswith("</p>") and out.count("<p>") == 1:
        out = out[3:-4]
    return out
