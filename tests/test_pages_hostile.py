"""Student text is text on every page we write (issue 19, point 1).

Payloads go in through every channel a student controls — a folder name (the student id
comes from it), roster names, exception text with TeX and HTML, the class name of an
answer and of an exception, markdown images and links, printed output — into a real
``grade`` run and ``pset report``. Each payload, if it ever became markup, would set a
``data-pwned-*`` attribute on ``<body>`` (an ``onerror`` handler, a ``<script>``, a
``javascript:`` link) or fetch ``http://tracker.example/…``. Headless Chromium, whose
only network is a proxy that records and refuses every request, opens every feedback
page and the report; the tests assert that nothing ran, nothing was fetched, no element
a payload could make is in the DOM, and the payloads read as the characters they are.

The second wall, the Content-Security-Policy ``<meta>``, is tested on its own: markup
injected into a page as if escaping had failed neither runs nor fetches, while the same
page without its CSP does both (which also shows the markers would catch a payload).
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import RecordingProxy, chromium, run  # noqa: E402

from convpset.autograder.htmltext import (  # noqa: E402
    PAGE_ENV,
    allowed_markup,
    inline_html,
    markdown_html,
    page_csp,
)
from convpset.notebooks.cells import answer_cell_id  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
BIN = Path(sys.executable).parent
TRACKER = "http://tracker.example/pixel.png"


def _img(marker: str) -> str:
    return f"<img src=x onerror=document.body.dataset.pwned{marker}=1>"


FOLDER = _img("Folder")                                   # a folder name: the student id
FIRST = _img("Roster")                                    # roster names
LAST = "<script>document.body.dataset.pwnedScript=1</script>"
TEX = (r"$\text{<img/src/onerror=document.body.dataset.pwnedTex=1>}$ "
       r"$\href{javascript:document.body.dataset.pwnedHref=1}{click}$ "
       r"$$\text{<svg/onload=document.body.dataset.pwnedSvg=1>}$$")
MARKDOWN = (f"![t]({TRACKER}) [link](javascript:document.body.dataset.pwnedLink=1) "
            "<http://evil.example/auto> www.evil.example **b** `c`")
CLASS = _img("Class") + r" $\href{javascript:document.body.dataset.pwnedClassHref=1}{x}$"
ENAME = _img("Ename")
OUTPUT = _img("Output") + " " + TEX


def _code(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _hostile_notebooks(course: Path) -> None:
    """s001: an answer cell raises TeX and HTML, an answer is an object of a hostile class;
    s002: an added cell prints payloads and raises an exception of a hostile class with
    markdown in its text; a folder named like markup holds s003's notebook."""
    sub = course / "submitted"
    nb = json.loads((EXAMPLE / "submitted" / "s001" / ASSIGNMENT / "conv1.ipynb").read_text())
    c1 = _code(nb, answer_cell_id(1))
    c1["source"] = _source(c1) + f"\nraise ValueError({TEX + ' ' + _img('Exc')!r})\n"
    c2 = _code(nb, answer_cell_id(2))
    c2["source"] = _source(c2) + f"\nparams_2 = type({CLASS!r}, (), {{}})()\n"
    (sub / "s001" / ASSIGNMENT).mkdir(parents=True)
    (sub / "s001" / ASSIGNMENT / "conv1.ipynb").write_text(json.dumps(nb))

    nb = json.loads((EXAMPLE / "submitted" / "s002" / ASSIGNMENT / "conv1.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {},
                        "outputs": [], "id": "added-by-student",
                        "source": f"print({OUTPUT!r})\n"
                                  f"raise type({ENAME!r}, (Exception,), {{}})({MARKDOWN!r})\n"})
    (sub / "s002" / ASSIGNMENT).mkdir(parents=True)
    (sub / "s002" / ASSIGNMENT / "conv1.ipynb").write_text(json.dumps(nb))

    shutil.copytree(EXAMPLE / "submitted" / "s003", sub / FOLDER)


def _hostile_roster(course: Path) -> None:
    with (EXAMPLE / "roster.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    for row in rows[1:]:
        if row[0] == "s001":
            row[head.index("first_name")] = FIRST
            row[head.index("last_name")] = LAST
    with (course / "roster.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def _cli(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
    return r


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("hostile_pages")
    course = d / "course"
    course.mkdir()
    shutil.copy2(EXAMPLE / "pset.toml", course / "pset.toml")
    _hostile_roster(course)
    _hostile_notebooks(course)
    out = d / "grades"
    # generous limits: only the outcome matters, on a busy machine too
    _cli("grade", str(course / "submitted"), "--course", str(course), "--out", str(out),
         "--jobs", "1", "--lang", "en", "--reveal", "--timeout", "120",
         "--cell-timeout", "30", "--cell-cpu", "10", "--import-cpu", "30")
    # the pages with payloads: s001, s002 and the folder's (whatever its file is named);
    # the other roster students returned nothing
    found = sorted(p for p in (out / "feedback").glob("*.html")
                   if p.stem in ("s001", "s002") or not re.fullmatch(r"s0\d\d", p.stem))
    assert len(found) == 3, sorted(p.name for p in (out / "feedback").iterdir())
    for lang in ("en", "ru"):
        (d / lang).mkdir()
        _cli("pset", "report", ASSIGNMENT, "--course", str(course), "--grades", str(out),
             "--out", str(d / lang), "--lang", lang)
        found.append(d / lang / "report.html")
    return found


# ----------------------------------------------------------------------------- DOM reading
class _Dom(HTMLParser):
    """Elements with their attributes, and the text a reader sees (outside <script>,
    <style>, <title>)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.hidden = 0
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag in ("script", "style", "title"):
            self.hidden += 1
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title"):
            self.hidden -= 1
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        if self.hidden == 0:
            self.text.append(data)


def read_dom(dom: str) -> _Dom:
    p = _Dom()
    p.feed(dom)
    return p


def dangerous(d: _Dom, own_scripts: set[str]) -> list[str]:
    """Every element or attribute in a DOM that could run script, fetch or navigate,
    other than our own script blocks."""
    bad = []
    for tag, attrs in d.elements:
        if tag in ("iframe", "object", "embed", "link", "base", "form", "meta") and not (
                tag == "meta" and set(attrs) <= {"charset", "name", "content", "http-equiv"}):
            bad.append(f"<{tag}>")
        plot = tag == "img" and attrs.get("src", "").startswith("data:image/png;base64,")
        if tag in ("img", "svg", "a", "use", "image", "video", "audio", "source") and not plot:
            bad.append(f"<{tag} {attrs}>")
        for k, v in attrs.items():
            if k.startswith("on") or k in ("href", "xlink:href", "srcdoc", "formaction",
                                           "action", "style"):
                bad.append(f"<{tag} {k}={v!r}>")
            if "javascript:" in v.lower():
                bad.append(f"<{tag} {k}={v!r}>")
    bad += [f"<script>{s[:60]}" for s in d.scripts if s.strip() and s not in own_scripts]
    return bad


CONSOLE = ("--enable-logging=stderr", "--v=0")   # the page's console, CSP reports included


def csp_violations(stderr: str) -> list[str]:
    return [line[-300:] for line in stderr.splitlines() if "Content Security Policy" in line]


def _own_scripts() -> set[str]:
    src = PAGE_ENV.loader.get_source(PAGE_ENV, "report.html.j2")[0]
    return set(re.findall(r"<script>(.*?)</script>", src, re.S))


# ----------------------------------------------------------------------------- the tests
@pytest.mark.slow
def test_hostile_text_shows_literally_and_nothing_runs_or_loads_in_chromium(pages, tmp_path):
    browser = chromium()
    assert len(pages) >= 5, pages            # s001, s002, the folder, a report per language
    own = _own_scripts()
    seen = ""
    problems: dict[str, list[str]] = {}        # every page's findings, not just the first
    with RecordingProxy() as proxy:
        for i, page in enumerate(pages):
            r = run(browser, tmp_path / f"p{i}", page.resolve().as_uri(), "--dump-dom",
                    *CONSOLE, proxy=proxy)
            assert r.returncode == 0, r.stderr[-2000:]
            dom = r.stdout
            assert "<body" in dom, page
            body = re.search(r"<body[^>]*>", dom).group(0)
            d = read_dom(dom)
            # a CSP violation would mean markup got past escaping (and the CSP caught it),
            # or that the CSP blocked our own style or script
            found = (re.findall(r"data-pwned[\w-]*", dom) + dangerous(d, own)
                     + csp_violations(r.stderr))
            if page.name == "report.html" and 'data-ok="true"' not in body:
                found.append(f"our own hashed script did not run: {body}")
            if found:
                problems[f"{page.parent.name}/{page.name}"] = found
            seen += " ".join(d.text) + "\n"
        requests = proxy.page_requests()
    assert problems == {}, problems
    assert requests == [], requests
    # every payload reads as the characters it is
    for literal in (FOLDER, FIRST, LAST, r"\text{<img/src/onerror=", r"\href{javascript:",
                    f"![t]({TRACKER})", "[link](javascript:", "<http://evil.example/auto>",
                    ENAME, "<img src=x onerror=document.body.dataset.pwnedClass=1>",
                    r"\href{javascript:document.body.dataset.pwnedClassHref=1}"):
        assert literal in seen, literal
    assert "<img src=x onerror=" in seen


@pytest.mark.slow
def test_every_page_written_carries_the_restrictive_csp(pages):
    for page in pages:
        text = page.read_text(encoding="utf-8")
        head = text[:text.index("<style>")]
        m = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', head)
        assert m is not None, page.name
        policy = {d.split()[0]: d.split()[1:] for d in html.unescape(m.group(1)).split("; ")}
        assert policy["default-src"] == ["'none'"]
        assert policy["img-src"] == ["data:"]
        assert policy["form-action"] == ["'none'"] and policy["base-uri"] == ["'none'"]
        assert all(s.startswith("'sha256-") for s in policy["style-src"])
        assert policy["script-src"] == ["'none'"] or all(
            s.startswith("'sha256-") for s in policy["script-src"])
        assert "unsafe" not in m.group(1)


def _inject(page: str, markup: str, *, keep_csp: bool) -> str:
    if not keep_csp:
        page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    return page.replace("</body>", markup + "</body>")


@pytest.mark.slow
def test_csp_alone_stops_markup_that_escaping_missed(pages, tmp_path):
    """As if a value had slipped through unescaped: the CSP blocks the handler, the
    script and the fetch; without the CSP the same markup runs and fetches (the control
    that shows the markers and the proxy catch what they are meant to)."""
    browser = chromium()
    injected = (f'<img src=x onerror="document.body.dataset.pwnedA=1">'
                f'<script>document.body.dataset.pwnedB=1</script><img src="{TRACKER}">')
    for page in (pages[0], pages[-1]):
        text = page.read_text(encoding="utf-8")
        for keep_csp in (True, False):
            f = tmp_path / f"{keep_csp}-{page.name}"
            f.write_text(_inject(text, injected, keep_csp=keep_csp), encoding="utf-8")
            with RecordingProxy() as proxy:
                r = run(browser, tmp_path / f"prof-{keep_csp}-{page.name}", f.as_uri(),
                        "--dump-dom", *CONSOLE, proxy=proxy)
                assert r.returncode == 0, r.stderr[-2000:]
                body = re.search(r"<body[^>]*>", r.stdout).group(0)
                fetched = [q for q in proxy.page_requests() if "tracker.example" in q]
            if keep_csp:
                assert "data-pwned" not in body and fetched == [], (page.name, body, fetched)
                assert len(csp_violations(r.stderr)) >= 3, r.stderr[-3000:]
            else:
                assert 'data-pwned-a="1"' in body and 'data-pwned-b="1"' in body, body
                assert fetched, proxy.requests


@pytest.mark.slow
def test_the_journal_keeps_the_payloads_the_pages_escaped(pages):
    """The payloads really reached the results (so the pages had them to escape)."""
    journal = (pages[0].parent.parent / "journal.jsonl").read_text(encoding="utf-8")
    for literal in ("pwnedTex", "pwnedClass", "pwnedEname", "pwnedFolder", "tracker.example"):
        assert literal in journal, literal


# ----------------------------------------------------------------------------- units
def test_messages_never_go_through_markdown_or_tex():
    out = inline_html(TEX + " " + MARKDOWN + " " + _img("X") + " " + LAST)
    assert dangerous(read_dom(out), set()) == []
    assert "<math" not in out and "<a" not in out and "<img" not in out
    assert "<script" not in out and "<svg" not in out and "href=" not in out
    assert r"$\text{&lt;img/src/onerror=document.body.dataset.pwnedTex=1&gt;}$" in out
    assert f"![t]({TRACKER})" in out
    # our tables' inline markup still reads as before
    assert inline_html("`W_1` is **partly** correct.") == \
        "<code>W_1</code> is <strong>partly</strong> correct."
    assert inline_html("`<b onclick=x>`") == "<code>&lt;b onclick=x&gt;</code>"


def test_our_formulas_cannot_make_elements_that_load_or_run():
    """A guard on latex2mathml's and cmark's output, for our own text: raw text in
    \\text, \\href links, images and autolinks come out as text."""
    out = markdown_html(TEX + "\n\n" + MARKDOWN)
    d = read_dom(out)
    assert dangerous(d, set()) == [], dangerous(d, set())
    assert out.count("<math") == 3
    assert "&lt;img/src/onerror=document.body.dataset.pwnedTex=1&gt;" in out
    assert allowed_markup('<mi onclick="x">a</mi><mo form="prefix">(</mo>') == \
        '&lt;mi onclick="x"&gt;a</mi><mo form="prefix">(</mo>'
    assert allowed_markup('<math xmlns="http://evil.example/">') == \
        '&lt;math xmlns="http://evil.example/"&gt;'


def test_every_page_template_is_autoescaped_and_has_a_csp():
    templates = PAGE_ENV.loader.list_templates()
    assert "feedback.html.j2" in templates and "report.html.j2" in templates
    for name in templates:
        assert PAGE_ENV.is_async is False and PAGE_ENV.autoescape is True
        tpl = PAGE_ENV.get_template(name)
        source = PAGE_ENV.loader.get_source(PAGE_ENV, name)[0]
        assert "|safe" not in source.replace(" ", ""), name
        if source.lstrip().startswith("<!DOCTYPE"):
            assert '<meta http-equiv="Content-Security-Policy" content="{{ csp }}">' in source
            assert "default-src 'none'" in page_csp(name)
        assert tpl is not None


@pytest.mark.slow
def test_nbgrader_feedback_shows_student_text_literally(pages):
    """The autograded notebook we write for nbgrader: ``generate_feedback`` turns its
    markdown into the student's page with nbconvert (raw HTML kept, bare URLs linked,
    MathJax over ``$…$``). A roster name in the header and the notes in the summary are
    written as literal text (a code span), so they stay text there too."""
    from nbconvert import HTMLExporter

    from convpset.autograder.results import StudentResult
    from convpset.integrations.nbgrader.feedback import autograded_notebook
    from convpset.notebooks.course import load_course

    course = load_course(pages[0].parents[2] / "course")
    lines = (pages[0].parents[1] / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    results = {r.student_id: r for r in (StudentResult.from_json(json.loads(x)) for x in lines)}
    roster = {s.student_id: s for s in course.roster()}
    for sid in ("s001", "s002"):
        r = results[sid]
        assert r.notes or any(p.notes for p in r.problems), sid
        nb = autograded_notebook(course, ASSIGNMENT, roster[sid].display, r, None, "en",
                                 reveal=False)
        page, _ = HTMLExporter().from_notebook_node(nb)
        d = read_dom(page)
        for tag, attrs in d.elements:
            for k, v in attrs.items():
                assert not k.startswith("on"), (sid, tag, attrs)
                assert "javascript:" not in v.lower() and "tracker.example" not in v, \
                    (sid, tag, attrs)
            assert tag not in ("svg", "image"), (sid, tag, attrs)
            assert not (tag == "img" and not attrs.get("src", "").startswith("data:")), attrs
        assert not any("pwned" in s for s in d.scripts), sid
        text = " ".join(d.text)
        if sid == "s001":
            assert FIRST in text and LAST in text
        else:
            assert ENAME in text and f"![t]({TRACKER})" in text
        # MathJax skips <code> and <pre> (the verdicts' stream output): every payload's
        # "$" is inside one
        for m in re.finditer(r"\$\\(?:text|href)", page):
            before = page[:m.start()]
            assert any(before.rfind(f"<{t}>") > before.rfind(f"</{t}>") for t in ("code", "pre")), \
                page[m.start() - 200:][:400]


def test_markdown_text_keeps_plain_names_and_fences_everything_else():
    from convpset.autograder.untrusted import markdown_text

    for plain in ("Anna Ivanova (s001)", "Anne-Marie O'Brien", "Иван Петров (s002)", "template"):
        assert markdown_text(plain) == plain
    assert markdown_text("a `b` ``c``") == "``` a `b` ``c`` ```"
    assert markdown_text("x\n\n# y\x1b[2J") == "` x  # y [2J `"
    assert markdown_text("*a*") == "` *a* `"


# Characters escaping leaves alone but a reader must see: a bidi override that makes a
# folder read as a classmate's id ("x\u202e100s" shows as "xs001"), C0/C1 controls, NUL.
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                       "\u202a-\u202e\u2066-\u2069]")
SPOOF = "x\u202e100s"
EXC_TEXT = "\x9b2J\x1b]52;c;eA==\x07 \u2066bidi\u2069 \x00nul"


def test_controls_and_bidi_in_student_text_are_visible_escapes_on_pages(tmp_path):
    """A real ``grade`` and ``pset report`` (en, ru): a folder whose name reorders itself
    and an exception text with C1/ESC/bidi/NUL reach no page raw; each shows as its
    escape (``\\u202e``), as on the terminal."""
    course = tmp_path / "course"
    (course / "submitted" / "s002" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy2(EXAMPLE / "pset.toml", course / "pset.toml")
    shutil.copy2(EXAMPLE / "roster.csv", course / "roster.csv")
    nb = json.loads((EXAMPLE / "submitted" / "s002" / ASSIGNMENT / "conv1.ipynb").read_text())
    c1 = _code(nb, answer_cell_id(1))
    c1["source"] = _source(c1) + f"\nraise ValueError({EXC_TEXT!r})\n"
    (course / "submitted" / "s002" / ASSIGNMENT / "conv1.ipynb").write_text(json.dumps(nb))
    shutil.copytree(EXAMPLE / "submitted" / "s003", course / "submitted" / SPOOF)
    out = tmp_path / "grades"
    _cli("grade", str(course / "submitted"), "--course", str(course), "--out", str(out),
         "--jobs", "1", "--lang", "en", "--timeout", "120", "--cell-timeout", "30",
         "--cell-cpu", "10", "--import-cpu", "30")
    pages = sorted((out / "feedback").glob("*.html"))
    for lang in ("en", "ru"):
        (tmp_path / lang).mkdir()
        _cli("pset", "report", ASSIGNMENT, "--course", str(course), "--grades", str(out),
             "--out", str(tmp_path / lang), "--lang", lang)
        pages.append(tmp_path / lang / "report.html")
    text = {p: html.unescape(p.read_text(encoding="utf-8")) for p in pages}
    for p, t in text.items():
        assert not INVISIBLE.search(t), (p, INVISIBLE.findall(t))
    s002 = text[out / "feedback" / "s002.html"]
    assert "\\x9b2J\\x1b]52;c;eA==\\x07" in s002, "the exception text is not shown"
    for lang in ("en", "ru"):
        assert "x\\u202e100s" in text[tmp_path / lang / "report.html"]
