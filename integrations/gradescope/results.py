"""Gradescope's results.json from a :class:`StudentResult`, and the zero result for a
submission that cannot be graded.

Spec: gradescope-autograders.readthedocs.io, "Autograder Specifications" → "Output
format". Top level: ``score`` (overrides the sum of the tests), ``execution_time``,
``output`` + ``output_format``, ``visibility``, ``stdout_visibility``, ``extra_data``,
``tests``; each test: ``name``, ``number``, ``score``, ``max_score``, ``status``,
``output`` + ``output_format``, ``tags``, ``extra_data``.

Verdicts and notes are written as HTML (``html``) from :func:`inline_html`: their
substitutions may be a student's (exception text, a class name) and a stored message no
longer says which, while Gradescope's Markdown would render a student's ``![](http://…)``
or link; escaped HTML shows every character as itself. A rejection message stays Markdown
(``md``): the caller puts every untrusted part of it in a code span (:func:`md_code`).
"""

from __future__ import annotations

import re
from typing import Any

from convpset.autograder.htmltext import inline_html
from convpset.autograder.results import StudentResult
from convpset.autograder.untrusted import terminal_text
from convpset.problems.text import render

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


def md_code(s: object, limit: int = 200) -> str:
    """``s`` as a Markdown code span: shown literally by any Markdown renderer (no
    emphasis, links, images or HTML), bounded, without control characters. For text we
    do not control in results.json (account names and emails, file names)."""
    text = terminal_text(s, limit).replace("\n", " ")
    run = max((len(m) for m in re.findall("`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _text(message: dict[str, str], lang: str) -> str:
    return message.get(lang) or next(iter(message.values()), "")


def tests_of(r: StudentResult, lang: str) -> list[dict[str, Any]]:
    """One Gradescope test per answer part: its verdict, and the named mistake as a tag."""
    tests = []
    for p in r.problems:
        for i, pr in enumerate(p.parts, start=1):
            test: dict[str, Any] = {
                "name": render(lang, "gradescope.part_name", number=p.number, family=p.family,
                               part=pr.part),
                "number": f"{p.number}.{i}",
                "score": pr.score, "max_score": pr.max_score,
                "status": "passed" if pr.score >= pr.max_score else "failed",
                "output": str(inline_html(_text(pr.message, lang))), "output_format": "html",
                "tags": [p.family] + ([pr.mistake] if pr.mistake else []),
            }
            if pr.mistake:
                test["extra_data"] = {"mistake": pr.mistake}
            tests.append(test)
    return tests


def checks_of(r: StudentResult, lang: str) -> list[str]:
    """Everything said about the notebook as a whole and about its problems (someone
    else's notebook, edited data, a cell that raised, a run that was stopped)."""
    lines = [_text(n, lang) for n in r.notes]
    lines += [_text(n, lang) for p in r.problems for n in p.notes]
    return lines


def results_json(r: StudentResult, lang: str, *, visibility: str, stdout_visibility: str,
                 student: str, extra_notes: list[str] = (), seconds: float = 0.0,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full results.json of a graded notebook."""
    head = render(lang, "gradescope.score", score=f"{r.score:g}", max=f"{r.max_score:g}",
                  assignment=r.assignment, student=student)
    checks = [*extra_notes, *checks_of(r, lang)]
    output = f"<p>{inline_html(head)}</p>"
    if checks:
        items = "".join(f"<li>{inline_html(c)}</li>" for c in checks)
        output += f"<p>{inline_html(render(lang, 'gradescope.checks'))}</p><ul>{items}</ul>"
    return {
        "score": r.score,
        "execution_time": round(seconds),
        "output": output, "output_format": "html",
        "visibility": visibility, "stdout_visibility": stdout_visibility,
        "tests": tests_of(r, lang),
        "extra_data": {"student_id": r.student_id, "flags": list(r.flags),
                       "max_score": r.max_score, **(extra or {})},
    }


def rejected_json(message: str, *, visibility: str, stdout_visibility: str,
                  reason: str, seconds: float = 0.0,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score 0 and one clear message: a submission we cannot grade (no notebook, two
    notebooks, another assignment's notebook, a student we cannot identify)."""
    return {
        "score": 0.0, "execution_time": round(seconds),
        "output": message, "output_format": "md",
        "visibility": visibility, "stdout_visibility": stdout_visibility,
        "tests": [],
        "extra_data": {"rejected": reason, **(extra or {})},
    }
