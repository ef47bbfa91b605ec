"""What students and staff look at: feedback pages and the report, read offline.

* every formula of every family converts to MathML on the server (no TeX left);
* a feedback page names the student and the assignment, renders verdict markdown, and
  calls a blank answer "not answered" (not a format error);
* in a real headless Chromium whose only "network" is a proxy that records and refuses
  every request, the pages show no TeX source and ask for nothing remote.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import RecordingProxy, chromium, run  # noqa: E402
from session_build import build_once  # noqa: E402

from convpset.autograder.batch import BatchOptions, grade_folder  # noqa: E402
from convpset.autograder.htmltext import inline_html, markdown_html  # noqa: E402
from convpset.autograder.report import build_report  # noqa: E402
from convpset.autograder.sandbox import Limits  # noqa: E402
from convpset.notebooks.course import load_course  # noqa: E402
from convpset.problems import families, variant_from_seed  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
FAST = Limits(wall_s=10, cell_s=2, cpu_s=5)
# s003: mistakes; s006: the untouched notebook (every answer still `...`); s010: swapped;
# s013: a cell raises
STUDENTS = ["s003", "s006", "s010", "s013"]
TEX_LEFT = re.compile(r"\$|\\(begin|end|frac|text|cdot|times|sum|mathbf|left|right)\b")


# ----------------------------------------------------------------------------- fixtures
def _graded(tmp_path_factory) -> Path:
    def build(d: Path) -> str:
        course = d / "course"
        course.mkdir()
        for name in ("pset.toml", "roster.csv"):
            shutil.copy2(EXAMPLE / name, course / name)
        for sid in STUDENTS:
            shutil.copytree(EXAMPLE / "submitted" / sid, course / "submitted" / sid)
        c = load_course(course)
        for lang in ("en", "ru"):
            grade_folder(course / "submitted", c, ASSIGNMENT,
                         BatchOptions(out=d / lang, jobs=1, limits=FAST, lang=lang, reveal=True))
        for lang in ("en", "ru"):
            (d / f"report-{lang}.html").write_text(build_report(c, ASSIGNMENT, d / "en", lang),
                                                   encoding="utf-8")
        return "ok"

    return build_once(tmp_path_factory, "pages_sample", "done", build)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    return _graded(tmp_path_factory)


def _pages(d: Path) -> list[Path]:
    return [*(d / lang / "feedback" / f"{sid}.html" for lang in ("en", "ru") for sid in STUDENTS),
            d / "report-en.html", d / "report-ru.html"]


class _Text(HTMLParser):
    """The text a reader sees: everything outside <math>, <script>, <style>, <title>."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("math", "script", "style", "title"):
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("math", "script", "style", "title"):
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth == 0:
            self.chunks.append(data)


def visible_text(page: str) -> str:
    p = _Text()
    p.feed(page)
    return " ".join(p.chunks)


def remote_references(page: str) -> list[str]:
    """Every way a page could pull a script, style, font or image from elsewhere."""
    pats = [r'(?:src|href)\s*=\s*["\']?(?:https?:)?//[^"\'\s>]+', r"@import", r"url\(",
            r"<link\b[^>]*>", r"<script\b[^>]*\bsrc="]
    return [m for pat in pats for m in re.findall(pat, page, re.I)]


# ----------------------------------------------------------------------------- math
def test_every_formula_of_every_family_becomes_mathml():
    n = 0
    for name, fam in families().items():
        for level in fam.levels:
            for seed in range(3):
                v = variant_from_seed(name, seed, level)
                for lang in ("en", "ru"):
                    for text in (fam.statement(v, lang), fam.explain(v, lang)):
                        out = markdown_html(text)
                        n += out.count("<math")
                        assert 'class="tex"' not in out, (name, level, seed, lang)
                        left = TEX_LEFT.search(visible_text(out))
                        assert left is None, (name, level, seed, lang, left)
    assert n > 100


def test_inline_html_renders_backticks_and_drops_raw_html():
    assert inline_html("`W_1` is correct.") == "<code>W_1</code> is correct."
    assert "<script" not in inline_html("A cell raised <script>alert(1)</script>")


# ----------------------------------------------------------------------------- feedback
@pytest.mark.slow
def test_feedback_names_student_and_assignment_and_renders_verdicts(graded):
    c = load_course(graded / "course")
    title = c.assignment(ASSIGNMENT).title
    page = (graded / "en" / "feedback" / "s003.html").read_text(encoding="utf-8")
    name = next(f"{s.first_name} {s.last_name}" for s in c.roster() if s.student_id == "s003")
    assert f"<h1>{html.escape(title)}</h1>" in page
    assert f"{name} (s003)" in page and f"<title>{title} — {name}</title>" in page
    cells = re.findall(r'<td class="(?:correct|partial|wrong|missing|format_error)">(.*?)</td>',
                       page, re.S)
    assert cells and not any("`" in cell for cell in cells)
    assert any("<code>" in cell for cell in cells)
    ru = (graded / "ru" / "feedback" / "s003.html").read_text(encoding="utf-8")
    assert "Итого" in ru and f"{name} (s003)" in ru


@pytest.mark.slow
def test_blank_answers_are_not_answered_not_format_errors(graded):
    journal = {json.loads(line)["student_id"]: json.loads(line) for line in
               (graded / "en" / "journal.jsonl").read_text(encoding="utf-8").splitlines()}
    blank = journal["s006"]
    parts = [x for p in blank["problems"] for x in p["parts"]]
    assert parts and all(x["status"] == "missing" for x in parts)
    assert all("not answered" in x["message"]["en"] for x in parts)
    assert all("ответа нет" in x["message"]["ru"] for x in parts)
    assert not any("format" in f for f in blank["flags"])
    page = (graded / "en" / "feedback" / "s006.html").read_text(encoding="utf-8")
    assert "Format error" not in page and "ellipsis" not in page
    report = (graded / "report-en.html").read_text(encoding="utf-8")
    summary = re.search(r'<section id="summary">(.*?)</section>', report, re.S).group(1)
    # attempted, not attempted, without a submission
    n_roster = len(load_course(graded / "course").roster())
    assert re.findall(r'<td class="num">([^<]*)</td>', summary)[:3] == \
        ["3", "1", str(n_roster - len(STUDENTS))]


# ----------------------------------------------------------------------------- offline
@pytest.mark.slow
def test_pages_offline_in_chromium_show_no_tex_and_fetch_nothing(graded, tmp_path):
    browser = chromium()
    pages = _pages(graded)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert remote_references(text) == [], page
    with RecordingProxy() as proxy:
        # the proxy sees what a page asks for: a page with a CDN script must be recorded
        control = tmp_path / "control.html"
        control.write_text('<html><body>$x$<script src="https://cdn.jsdelivr.net/npm/'
                           'mathjax@3/es5/tex-chtml.js"></script></body></html>')
        r = run(browser, tmp_path / "p0", control.as_uri(), "--dump-dom", proxy=proxy)
        assert r.returncode == 0, r.stderr[-2000:]
        assert any("cdn.jsdelivr.net" in req for req in proxy.page_requests()), proxy.requests
        proxy.requests.clear()
        for i, page in enumerate(pages):
            r = run(browser, tmp_path / f"p{i + 1}", page.as_uri(), "--dump-dom", proxy=proxy)
            assert r.returncode == 0, r.stderr[-2000:]
            dom = r.stdout
            assert "<body" in dom
            if "feedback" in page.parts:
                assert dom.count("<math") >= 5, page       # statements and worked solutions
            left = TEX_LEFT.search(visible_text(dom))
            assert left is None, (page, visible_text(dom)[max(0, left.start() - 80):][:200])
            assert "`" not in visible_text(dom).replace("`...`", ""), page
        assert proxy.page_requests() == [], proxy.requests


def test_fast_numeric_matrices_match_the_converter():
    """The direct MathML of numeric matrices equals latex2mathml's (up to grouping)."""
    from convpset.autograder.htmltext import _MATH, _convert, _with_fast_matrices

    def flat(mathml: str) -> str:
        return re.sub(r"</?mrow>", "", mathml)

    n = 0
    for name, fam in families().items():
        for level in fam.levels:
            v = variant_from_seed(name, 1, level)
            for m in _MATH.findall(fam.statement(v, "en") + fam.explain(v, "en")):
                display = m.startswith("$$")
                tex = m[2:-2] if display else m[1:-1]
                fast = _with_fast_matrices(tex, display)
                if fast is not None:
                    n += 1
                    assert flat(fast) == flat(_convert(tex, display)), tex
    assert n >= 5
