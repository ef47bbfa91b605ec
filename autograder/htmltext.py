"""Text to HTML for the pages we publish (feedback, report), with no network.

Two kinds of text reach a page, and they are rendered differently:

* **Our own text with formulas** — a problem's statement and worked solution, written in
  our text tables and filled with our numbers (the variant comes from the course secret
  or from a stamp we signed). Only this goes through markdown and TeX
  (:func:`markdown_html`). Formulas are converted to MathML on the server
  (``latex2mathml``), which every current browser renders natively: a page opened on a
  lab machine without internet, in an exam room or as an e-mail attachment shows the
  same mathematics as online, and loads no script, style or font from anywhere.
* **Messages** — verdicts and notes. Their sentences are ours, but they carry what a
  student controls: exception text, class names, file and folder names, ids. A message is
  escaped as plain text (:func:`inline_html`); the only markup recognised is our tables'
  inline ``code``, ``**bold**`` and ``*emphasis*``: elements without attributes. A message
  never goes through markdown or TeX, so ``\\text{<img …>}``, ``\\href{javascript:…}``,
  ``![](http://tracker/…)`` or ``<script>`` in it are shown as the characters they are.

Every page is rendered by :func:`render_page`: autoescape on for every template (a value
that is not :class:`~markupsafe.Markup` made here is escaped), and a restrictive
Content-Security-Policy ``<meta>`` as a second wall (:func:`page_csp`): no script but our
own, hashed; no request anywhere; images from ``data:`` only; no forms, no ``<base>``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from functools import lru_cache
from typing import Any

import cmarkgfm
import jinja2
from cmarkgfm.cmark import Options
from markupsafe import Markup

from convpset.autograder.untrusted import page_text

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


# What our statements' HTML and MathML may contain: the elements cmark and latex2mathml
# write for our tables, with attributes that carry no URL, script or style.
_ALLOWED_TAGS = frozenset("""
    p em strong code pre br hr h1 h2 h3 h4 h5 h6 ul ol li blockquote table thead tbody tr th td
    del sup sub
    math mrow mi mn mo mtext mspace mfrac msub msup msubsup munder mover munderover msqrt mroot
    mtable mtr mtd mstyle mpadded mphantom menclose
""".split())
_ALLOWED_ATTRS = frozenset({"display", "xmlns", "mathvariant", "form", "stretchy", "width",
                            "fence", "separator", "lspace", "rspace", "columnalign",
                            "rowalign", "columnspacing", "rowspacing", "align", "linethickness",
                            "displaystyle", "scriptlevel", "accent", "accentunder", "movablelimits",
                            "largeop", "symmetric", "minsize", "maxsize", "notation", "start"})
_MATHML_NS = "http://www.w3.org/1998/Math/MathML"
_TAG = re.compile(r"<!--.*?-->|<(/?)([A-Za-z][A-Za-z0-9]*)([^<>]*)>|<", re.S)
_ATTR = re.compile(r'\s+([A-Za-z][A-Za-z0-9_:.-]*)="([^"<>]*)"')


def _tag_ok(name: str, rest: str) -> bool:
    if name.lower() not in _ALLOWED_TAGS:
        return False
    rest = rest.rstrip("/ ")
    pos = 0
    for m in _ATTR.finditer(rest):
        if rest[pos:m.start()].strip():
            return False
        attr, value = m.group(1).lower(), m.group(2)
        if attr not in _ALLOWED_ATTRS or (attr == "xmlns" and value != _MATHML_NS):
            return False
        pos = m.end()
    return not rest[pos:].strip()


def allowed_markup(fragment: str) -> str:
    """``fragment`` with every tag outside the allowlist shown as text (escaped).

    A guard on the converters' output, not the first wall: latex2mathml copies ``\\text``
    arguments into ``<mtext>`` unescaped and turns ``\\href`` into a link, and cmark keeps
    markdown images. Our statements use none of that; should one ever do, it reads as
    source instead of becoming an element that loads or runs something.
    """
    def one(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole.startswith("<!--"):
            return ""
        if m.group(2) is not None and _tag_ok(m.group(2), m.group(3)):
            return whole
        return html.escape(whole, quote=False)

    return _TAG.sub(one, fragment)


@lru_cache(maxsize=4096)
def _convert(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    text = tex.strip()
    if text.endswith("\\") and tex.rstrip() != tex:      # keep a trailing "\ " (a space)
        text += " "
    return allowed_markup(_stretch_fences(convert(text, display="block" if display else "inline")))


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


def markdown_html(text: str) -> Markup:
    """Our own markdown (a statement, a worked solution) with ``$…$``/``$$…$$`` formulas
    to HTML with MathML. Never for text that carries anything a student wrote: that is
    :func:`inline_html`.

    Math is swapped for placeholders before parsing: markdown would otherwise mangle
    ``\\`` and ``_`` inside formulas, and scanning long matrices dominates the cost.
    GitHub's C cmark renders a statement in ~0.1 ms, ten times faster than a pure-Python
    parser: it runs once per problem per student. Safe mode (raw HTML omitted, unsafe
    URLs dropped), tables only: no autolinks, so a URL is never made a link.
    """
    maths: list[str] = []

    def hide(m: re.Match[str]) -> str:
        maths.append(m.group(0))
        return f"MATHPH{len(maths) - 1}X"

    out = cmarkgfm.markdown_to_html_with_extensions(
        _MATH.sub(hide, text), options=Options.CMARK_OPT_DEFAULT, extensions=["table"])
    if "<a " in out or "<img" in out:
        # cmark's safe mode escapes all text and omits raw HTML: links and images are the
        # only elements it writes that point anywhere (checked here, not on every tag:
        # the check over every tag of every statement was a quarter of a page's cost)
        out = allowed_markup(out)
    return Markup(_PLACEHOLDER.sub(lambda m: _math_html(maths[int(m.group(1))]), out))


_CODE = re.compile(r"`([^`\n]+)`")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EM = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")


def _plain_with_strong(text: str) -> str:
    out = _STRONG.sub(r"<strong>\1</strong>", html.escape(text, quote=False))
    return _EM.sub(r"<em>\1</em>", out)


def inline_html(text: str) -> Markup:
    """A message (a verdict, a note) as inline HTML: every character shown as itself.

    The message's sentence is ours but its substitutions may be a student's (exception
    text, a class name, a folder name), and a stored message no longer says which is
    which. So all of it is escaped text; only our tables' inline markup is kept —
    ```code```, ``**bold**`` and ``*emphasis*``, elements without attributes — and
    nothing else: no TeX, no links, no images, no raw HTML. A student's own backticks or
    asterisks can at most set their text in monospace or bold.
    """
    text = page_text(text)
    out: list[str] = []
    pos = 0
    for m in _CODE.finditer(text):
        out.append(_plain_with_strong(text[pos:m.start()]))
        out.append(f"<code>{html.escape(m.group(1), quote=False)}</code>")
        pos = m.end()
    out.append(_plain_with_strong(text[pos:]))
    return Markup("".join(out))


# ----------------------------------------------------------------------------- pages
PAGE_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("convpset.autograder", "templates"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True,
    # every plain string a template prints (an id, a name, a flag) shows its controls and
    # bidi overrides as escapes; our own Markup (formulas, inline_html) is left as it is
    finalize=lambda v: v if isinstance(v, Markup) or not isinstance(v, str) else page_text(v))


def page_number(value: float, lang: str, fmt: str = "%g") -> str:
    """A number on a page as its reader writes it: ``1.5`` in English, ``1,5`` in Russian
    (the template filter ``num``)."""
    text = fmt % value
    return text.replace(".", ",") if lang == "ru" else text


PAGE_ENV.filters["num"] = page_number
_BLOCK = re.compile(r"<(style|script)>(.*?)</\1>", re.S)
_INCLUDE = re.compile(r"""{%-?\s*include\s+["']([^"']+)["']""")


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _blocks(name: str, seen: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(kind, text) of every ``<style>``/``<script>`` block in template ``name`` and the
    templates it includes, read from the template *source*: a block that appears only in
    the rendered page (which holds student text) is never allowed."""
    source = PAGE_ENV.loader.get_source(PAGE_ENV, name)[0]
    found = [(m.group(1), m.group(2)) for m in _BLOCK.finditer(source)]
    for inc in _INCLUDE.findall(source):
        if inc not in seen:
            found += _blocks(inc, seen | {name})
    return found


@lru_cache(maxsize=32)
def page_csp(name: str) -> str:
    """The Content-Security-Policy of template ``name``: nothing from anywhere, images
    from ``data:`` (the report's plots), its own ``<style>`` and ``<script>`` blocks by
    hash. The blocks hold no template expressions, so the hash of the source is the hash
    of the page."""
    blocks = _blocks(name)
    for kind, text in blocks:
        if "{{" in text or "{%" in text:
            raise ValueError(f"{name}: a <{kind}> block must not hold template code")
    styles = " ".join(_csp_hash(t) for k, t in blocks if k == "style") or "'none'"
    scripts = " ".join(_csp_hash(t) for k, t in blocks if k == "script") or "'none'"
    return (f"default-src 'none'; script-src {scripts}; style-src {styles}; img-src data:; "
            "font-src 'none'; connect-src 'none'; media-src 'none'; object-src 'none'; "
            "frame-src 'none'; child-src 'none'; worker-src 'none'; manifest-src 'none'; "
            "form-action 'none'; base-uri 'none'")


def render_page(name: str, **ctx: Any) -> str:
    """Template ``name`` rendered with autoescape and its CSP (``{{ csp }}``)."""
    # ours, with quotes only ('none', 'sha256-…') inside the attribute's double quotes
    return PAGE_ENV.get_template(name).render(csp=Markup(page_csp(name)), **ctx)
