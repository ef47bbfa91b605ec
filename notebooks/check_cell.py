"""The notebook side of the check service: ``check(N)`` in a personal notebook's setup cell.

Only when ``pset.toml`` names the service (``[check] url``) and the assignment's policy
allows checks; otherwise the notebook is exactly what it was. The helper needs the
standard library and numpy only (JupyterLab, classic Notebook, Colab): it runs the
self-check's format rules on each answer, converts it to plain lists, and POSTs numbers
-- never code -- with the student's token. It prints the service's sentences, or one
line when the service cannot be reached. The token is a pure function of the secret,
the assignment and the student, so the notebook stays byte-identical across builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from convpset.notebooks.course import CONFIG_NAME, Course
from convpset.notebooks.variants import Problem
from convpset.problems.text import render

_HELPER = '''

# check(N): ask the course's check service whether problem N's answers are right. It sends
# the numbers of your answers (never your code) with this notebook's token.
_PSET_CHECK = {config!r}


def check(number):
    """Send problem `number`'s answers to the course's check service and print its verdict."""
    import json
    import urllib.error
    import urllib.request
    import numpy as _np
    cfg, ns = _PSET_CHECK, globals()
    answers, bad = {{}}, 0
    for name, kind, shape, integer in cfg["spec"].get(number, []):
        if name not in ns or ns[name] is Ellipsis:
            continue
        problem = _pset_format(name, kind, shape, integer)
        if problem:
            print(problem); bad += 1; continue
        v = ns[name]
        if hasattr(v, "detach") and hasattr(v, "numpy"):
            v = v.detach().cpu().numpy()
        if kind == "shapes":
            answers[name] = [[float(x) for x in row] for row in v]
        else:
            answers[name] = _np.asarray(v, dtype=float).tolist()
    if bad:
        print(cfg["format_first"]); return
    body = json.dumps({{"problem": number, "answers": answers, "lang": cfg["lang"],
                       "student": cfg["student"]}}).encode()
    req = urllib.request.Request(cfg["url"] + "/api/check", data=body, method="POST", headers={{
        "Content-Type": "application/json", "Authorization": "Bearer " + cfg["token"]}})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            reply = json.loads(r.read(1 << 16))
    except urllib.error.HTTPError as err:
        try:
            reply = json.loads(err.read(1 << 16))
        except Exception:
            reply = {{"lines": [cfg["unreachable"].format(reason="HTTP %d" % err.code)]}}
    except Exception as err:
        print(cfg["unreachable"].format(reason=type(err).__name__)); return
    for line in reply.get("lines", [])[:50]:
        print(str(line)[:2000])'''


@dataclass(frozen=True)
class CheckCell:
    """What a personal notebook needs to call the service."""

    url: str
    token: str


@lru_cache(maxsize=64)
def _settings(root: Path, config_text: str, assignment: str) -> str | None:
    """The service URL when checks are on for ``assignment``, else None (cached per
    text of pset.toml: generating a class parses it once)."""
    from convpset.notebooks.course import load_course
    from convpset.service.policy import load_check_config

    config = load_check_config(load_course(root))
    return config.url if config.url and config.policy(assignment).enabled else None


def check_cell_for(course: Course, assignment: str, student_id: str) -> CheckCell | None:
    """The check settings of one student's personal notebook, or None (no service)."""
    from convpset.service.tokens import make_token

    path = course.root / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    url = _settings(course.root, text, assignment)
    if url is None:
        return None
    return CheckCell(url, make_token(course.secret, assignment, student_id))


def helper_source(cell: CheckCell, problems: list[Problem], student_id: str,
                  lang: str) -> str:
    """The lines appended to the setup cell (it already defines ``_pset_format``)."""
    from convpset.notebooks.format_check import format_spec

    spec = format_spec(problems)
    config = {"url": cell.url, "token": cell.token, "student": student_id, "lang": lang,
              "spec": spec,
              "unreachable": render(lang, "serve.nb_unreachable"),
              "format_first": render(lang, "serve.nb_format_first")}
    return _HELPER.format(config=config)


def call_lines(number: int, lang: str) -> str:
    """The commented call under each self-check (commented: `nbgrader validate` runs every
    cell, and a validation must not spend an attempt)."""
    return "\n\n" + render(lang, "serve.nb_comment", number=number) + f"\n# check({number})"
