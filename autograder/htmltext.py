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


_MATRIX = re.compile(r"\\begin\{([pb])matrix\}(.*?)\\end\{\1matrix\}", re.S)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FENCES = {"p": ("&#x00028;", "&#x00029;"), "b": ("&#x0005B;", "&#x0005D;")}
_INNER = re.compile(r"^<math[^>]*>(.*)</math>$", re.S)


def _number_matrix(kind: str, body: str) -> str | None:
    """MathML of a matrix of plain numbers (the personal data of every statement), or
    None when an entry is anything else. Written directly: the general converter takes
    ~1 ms per matrix, the largest cost of a feedback page."""
    rows = [r.strip() for r in body.strip().split("\\\\")]
    cells = [[c.strip() for c in r.split("&")] for r in rows if r]
    if not cells or not all(_NUMBER.fullmatch(c) for r in cells for c in r):
        return None

    def num(c: str) -> str:
        return (f"<mrow><mo>&#x02212;</mo><mn>{c[1:]}</mn></mrow>" if c.startswith("-")
                else f"<mn>{c}</mn>")

    table = "".join("<mtr>" + "".join(f"<mtd>{num(c)}</mtd>" for c in r) + "</mtr>"
                    for r in cells)
    left, right = _FENCES[kind]
    return (f'<mo form="prefix" stretchy="true">{left}</mo><mtable>{table}</mtable>'
            f'<mo form="postfix" stretchy="true">{right}</mo>')


@lru_cache(maxsize=4096)
def _convert(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    text = tex.strip()
    if text.endswith("\\") and tex.rstrip() != tex:      # keep a trailing "\ " (a space)
        text += " "
    return _stretch_fences(convert(text, display="block" if display else "inline"))


def _with_fast_matrices(tex: str, display: bool) -> str | None:
    """Formulas with numeric matrices: the text around them through the (cached)
    converter, the matrices written directly; None when this shortcut does not apply."""
    pieces: list[str] = []
    pos = 0
    for m in _MATRIX.finditer(tex):
        matrix = _number_matrix(m.group(1), m.group(2))
        if matrix is None:
            return None
        around = tex[pos:m.start()]
        if around.strip():
            inner = _INNER.match(_convert(around, display))
            if inner is None:
                return None
            pieces.append(inner.group(1))
        pieces.append(matrix)
        pos = m.end()
    if not pieces:
        return None
    if tex[pos:].strip():
        inner = _INNER.match(_convert(tex[pos:], display))
        if inner is None:
            return None
        pieces.append(inner.group(1))
    mode = "block" if display else "inline"
    return (f'<math xmlns="http://www.w3.org/1998/Math/MathML" display="{mode}"><mrow>'
            + "".join(pieces) + "</mrow></math>")


@lru_cache(maxsize=4096)
def tex_html(tex: str, display: bool) -> str:
    """One formula as MathML; the TeX itself, escaped, in ``<code>`` if it cannot be
    converted (so a converter gap shows the source rather than breaking the page).

    Cached: short formulas (``$W$``, ``$x$``) repeat on every page of a batch.
    """
    try:
        if "matrix}" in tex:
            fast = _with_fast_matrices(tex, display)
            if fast is not None:
                return fast
        return _convert(tex, display)
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
