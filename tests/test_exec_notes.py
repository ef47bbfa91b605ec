"""The sandbox returns a status and a detail, not sentences; the note a student reads is
rendered once, from the text tables, in their language (issue 16, item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from convpset.autograder.pipeline import Plan, judge
from convpset.autograder.sandbox import Answer, ExecResult, Limits
from convpset.autograder.submissions import Submission
from convpset.notebooks.course import load_course
from convpset.notebooks.variants import problems_for

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "course"


def _judged(status: str, detail: str):
    course = load_course(EXAMPLE)
    problems = problems_for(course, course.assignment("conv1"), "s001")
    pl = Plan(Submission("s001", None, "missing"), problems)
    names = [part.name for p in problems for part in p.parts()]
    ex = ExecResult(status, detail, {n: Answer(n, False, "", None, "not collected") for n in names},
                    (), "", 0.1)
    return judge(pl, ex, Limits())


@pytest.mark.parametrize("status, detail, en, ru", [
    ("crashed", "SIGSEGV", "killed by SIGSEGV", "остановлен сигналом SIGSEGV"),
    ("crashed", "setup_failed", "could not be set up", "не удалось подготовить"),
    ("exited", "3", "exit code 3", "код выхода 3"),
    ("bad_result", "malformed", "could not be read back", "не удалось получить"),
])
def test_exec_note_is_rendered_once_in_the_students_language(status, detail, en, ru):
    r = _judged(status, detail)
    note = r.notes[-1]
    assert en in note["en"] and ru in note["ru"]
    assert note["en"].count("crashed") <= 1 and "(The" not in note["en"]
    # no English inside the Russian note, and the part messages embed it only once
    assert "Python process" not in note["ru"] and "crashed" not in note["ru"]
    part = r.problems[0].parts[0]
    assert part.message["ru"].count(ru) == 1 and part.message["en"].count(en) == 1
