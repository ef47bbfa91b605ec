"""The practice page's HTML (jinja2, autoescaped; statements and verdicts through the same
markdown + MathML renderer as the feedback pages)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from convpset.autograder.htmltext import inline_html, markdown_html
from convpset.notebooks.course import Course
from convpset.notebooks.variants import Problem
from convpset.problems import families
from convpset.problems.base import Part, PartResult
from convpset.problems.checking import Submitted
from convpset.problems.text import render
from convpset.service.practice import PracticeVariant, draw, from_ticket, valid
from convpset.service.wire import WireError, parse_answer_text, submitted

MAX_FIELD = 20_000     # characters of one typed answer (the whole body is capped too)


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("convpset.service", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("practice.html.j2")


def _labels(lang: str) -> dict[str, str]:
    keys = ("title", "intro", "level", "check", "reveal", "new", "index", "hint", "verdict",
            "worked")
    t = {k: render(lang, f"serve.practice_{k}") for k in keys}
    return {"title": t["title"], "intro": t["intro"], "level_label": t["level"],
            "check_label": t["check"], "reveal_label": t["reveal"], "new_label": t["new"],
            "index_label": t["index"], "hint": t["hint"], "verdict_title": t["verdict"],
            "worked_title": t["worked"]}


def _answer(text: str, lang: str) -> Submitted | str:
    """The judge's view of a typed answer, or the sentence saying why it was refused."""
    if len(text) > MAX_FIELD:
        return render(lang, "serve.reason_too_large", limit=MAX_FIELD)
    try:
        return submitted(parse_answer_text(text))
    except WireError as err:
        return render(lang, f"serve.{err.reason}", **err.args_)


def practice_statement(prob: Problem, lang: str) -> str:
    """The statement with its answer list worded for the form: a family's statement embeds
    the notebook's list ("define these variables in the answer cell"), which on this page
    would send a student looking for a cell that is not there."""
    parts = prob.parts()
    text = prob.statement(lang)
    notebook = render(lang, "answers.list", parts=parts)
    return text.replace(notebook, render(lang, "serve.practice_answers_list", parts=parts))


def _verdict_message(result: PartResult, part: Part, lang: str) -> str:
    """A part's verdict; an empty field is named as one (the judge's text speaks of the
    notebook's answer cell)."""
    if result.status == "missing":
        return render(lang, "serve.practice_missing", part=part)
    return result.message[lang]


def practice_page(course: Course, base: str, lang: str, family: str | None,
                  level: str | None, form: dict[str, str] | None) -> tuple[int, str]:
    """(HTTP status, page) for the index, a fresh variant, or a checked form."""
    ctx: dict[str, Any] = {"lang": lang, "base": base, **_labels(lang)}
    if family is None:
        ctx["index"] = [{"name": name, "levels": fam.levels} for name, fam in families().items()]
        return 200, _template().render(**ctx)
    lvl = int(level) if level and level.isdigit() else None
    if not valid(family, lvl):
        ctx.update(index=None, message=render(lang, "serve.practice_not_found"),
                   family="", level="")
        return 404, _template().render(**ctx)
    ctx.update(family=family, level=lvl)
    pv: PracticeVariant | None = None
    if form is not None:
        pv = from_ticket(course, family, lvl, form.get("ticket", ""))
        if pv is None:
            ctx["message"] = render(lang, "serve.practice_bad_ticket")
            form = None
    if pv is None:
        pv = draw(course, family, lvl)
    if pv is None:
        ctx["message"] = render(lang, "serve.practice_exhausted")
        return 503, _template().render(**ctx)
    prob = pv.problem
    parts = prob.parts()
    ctx.update(statement=markdown_html(practice_statement(prob, lang)), ticket=pv.ticket(course.secret),
               parts=[{"name": p.name, "contract": p.contract(lang),
                       "value": (form or {}).get(p.name, "")[:MAX_FIELD]} for p in parts])
    if form is not None and form.get("action") == "reveal":
        ctx["worked"] = markdown_html(prob.explain(lang))
    elif form is not None:
        answers: dict[str, Submitted | None] = {}
        refused: dict[str, str] = {}
        for p in parts:
            text = form.get(p.name, "").strip()
            if not text:
                continue
            got = _answer(text, lang)
            if isinstance(got, str):
                refused[p.name] = got
            else:
                answers[p.name] = got
        results = {r.part: r for r in prob.judge(answers)}
        verdicts = []
        for p in parts:
            if p.name in refused:
                verdicts.append({"status": "format_error", "message": inline_html(
                    f"`{p.name}`: " + render(lang, "serve.bad_request",
                                             reason=refused[p.name]))})
            else:
                r = results[p.name]
                verdicts.append({"status": r.status,
                                 "message": inline_html(_verdict_message(r, p, lang))})
        ctx["verdicts"] = verdicts
    return 200, _template().render(**ctx)
