"""Simulated returns for the sample course, tests and benchmarks.

Each roster student gets a *kind* of submission from a fixed 100-long cycle: fully
correct (literal values, torch code, nested lists), each family's listed mistakes,
partially done, empty, wrong format, raising cells, edited data, swapped between two
students, tampered stamp, unreadable files and a few hostile notebooks (exit, memory
bomb, output flood, monkeypatching, file access, an infinite loop). The first 30
positions hold every kind, so the 30-student sample course shows them all; the rest
of the cycle is what a real class mostly returns: correct work and single mistakes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from convpset.notebooks.build import answer_cell_id, build_notebook, dumps, literal
from convpset.notebooks.course import Course, Student
from convpset.notebooks.generate import _write
from convpset.notebooks.variants import STAMP_KEY, Problem, problems_for
from convpset.problems.checking import Submitted, mistakes_of, solved

FIRST_30 = [
    "correct", "correct_torch", "mistakes:0", "mistakes:1", "partial", "empty",
    "correct_lists", "mistakes:2", "wrong_format", "swap_a", "swap_b", "mistakes:3",
    "raises", "edited_data", "correct", "unreadable_json", "mistakes:4", "hostile_exit",
    "hostile_memory", "hostile_flood", "partial_mistakes", "tampered_stamp",
    "reordered_cells", "hostile_monkeypatch", "correct_torch", "mistakes:5",
    "hostile_files", "empty_file", "correct", "hostile_loop",
]
REST_70 = (["correct"] * 20 + ["correct_torch"] * 8 + ["correct_lists"] * 6
           + [f"mistakes:{i % 6}" for i in range(24)] + ["partial"] * 6 + ["partial_mistakes"] * 4
           + ["empty"] * 2)
CYCLE = FIRST_30 + REST_70
assert len(CYCLE) == 100


def kind_of(index: int) -> str:
    return CYCLE[index % len(CYCLE)]


# ----------------------------------------------------------------- answer code per kind
def _values(problem: Problem, how: str, k: int = 0) -> dict[str, Any]:
    key = dict(solved(problem.fam, problem.variant))
    if how == "mistake":
        ms = mistakes_of(problem.fam, problem.variant)
        key.update(ms[k % len(ms)].answers)
    return key


def _literal_lines(problem: Problem, values: dict[str, Any], as_lists: bool = False) -> list[str]:
    lines = []
    for part in problem.parts():
        v = values[problem.base_name(part.name)]
        src = literal(part, v)
        if as_lists:
            if src.startswith("np.array("):
                src = src[len("np.array("):-1]
            elif part.kind == "int":
                src = f"{float(src)!r}"          # 44426.0: an int given as a float
        lines.append(f"{part.name} = {src}")
    return lines


def answer_code(problem: Problem, kind: str, student_index: int) -> str:
    """The body a simulated student writes into the answer cell of ``problem``."""
    n = problem.number
    if kind in ("correct", "swap_a", "swap_b", "edited_data", "tampered_stamp", "reordered_cells"):
        return "\n".join(_literal_lines(problem, _values(problem, "correct")))
    if kind == "correct_lists":
        return "\n".join(_literal_lines(problem, _values(problem, "correct"), as_lists=True))
    if kind == "correct_torch":
        code = problem.fam.torch_answer(problem.variant, problem.suffix)
        if code is None:
            return "\n".join(_literal_lines(problem, _values(problem, "correct")))
        return code
    if kind.startswith("mistakes:"):
        k = int(kind.split(":")[1]) + n
        return "\n".join(_literal_lines(problem, _values(problem, "mistake", k)))
    if kind == "partial":
        return "\n".join(_literal_lines(problem, _values(problem, "correct"))) if n <= 2 else ""
    if kind == "partial_mistakes":
        if n % 2:
            return "\n".join(_literal_lines(problem, _values(problem, "mistake", student_index)))
        return ""
    if kind == "wrong_format":
        names = [p.name for p in problem.parts()]
        bad = ["'forty-two'", "None", "float('nan')", "[[1, 2], [3]]", "{'a': 1}", "1 + 2j"]
        return "\n".join(f"{name} = {bad[(i + n) % len(bad)]}" for i, name in enumerate(names))
    if kind == "raises":
        body = _literal_lines(problem, _values(problem, "correct"))
        if n == 2:
            return "\n".join([body[0], "undefined_helper(42)  # NameError", *body[1:]])
        return "\n".join(body)
    if kind.startswith("hostile_"):
        body = "\n".join(_literal_lines(problem, _values(problem, "correct")))
        if n != 3:
            return body
        return body + "\n" + HOSTILE[kind]
    return ""


HOSTILE = {
    "hostile_exit": "import os\nos._exit(3)",
    "hostile_memory": "_hog = [bytearray(10**8) for _ in range(10**4)]",
    "hostile_flood": "import sys\nfor _ in range(200000):\n    print('x' * 1000)",
    "hostile_monkeypatch": ("import numpy\nnumpy.asarray = lambda *a, **k: 0\n"
                            "numpy.array = lambda *a, **k: 0\nimport builtins\n"
                            "class _Liar:\n    def __eq__(self, other): return True\n"
                            "builtins.isinstance = lambda *a: True\n"
                            "total_always_equal = _Liar()"),
    "hostile_files": ("import os\n"
                      "for _p in ['/proc/1/cwd/pset.toml', '/proc/%d/cwd/pset.toml' % os.getppid(),\n"
                      "           os.path.expanduser('~/pset.toml'), '/etc/shadow']:\n"
                      "    try:\n"
                      "        print(open(_p).read()[:100])\n"
                      "    except OSError as _e:\n"
                      "        print('blocked:', _e)\n"
                      "try:\n"
                      "    open('/tmp/pset_pwned.txt', 'w').write('x')\n"
                      "except OSError as _e:\n"
                      "    print('blocked:', _e)"),
    "hostile_loop": "while True:\n    pass",
}


@dataclass(frozen=True)
class Simulated:
    student_id: str
    kind: str
    expected_score: float | None     # None where only the grader can tell (e.g. resource limits)
    max_score: float


def _fill(nb: nbformat.NotebookNode, problems: list[Problem], kind: str, index: int) -> None:
    for cell in nb.cells:
        for p in problems:
            if cell.get("id") == answer_cell_id(p.number):
                body = answer_code(p, kind, index)
                if body:
                    head = [ln for ln in cell.source.splitlines() if ln.startswith("#")]
                    cell.source = "\n".join([*head, "", body])


def expected_score(problems: list[Problem], kind: str, index: int) -> float | None:
    """The score the kind deserves, judged in-process (no sandbox) where it is defined."""
    if kind in ("empty", "empty_file", "unreadable_json", "wrong_format"):
        return 0.0
    if kind in ("hostile_exit", "hostile_memory", "hostile_monkeypatch"):
        return None
    total = 0.0
    for p in problems:
        body = answer_code(p, kind, index)
        if not body or kind == "correct_torch" and p.fam.torch_answer(p.variant, p.suffix):
            if body:
                total += p.max_score
            continue
        if kind == "raises" and p.number == 2:
            body = body.replace("undefined_helper(42)  # NameError\n", "")
            ns: dict[str, Any] = {}
            first = body.splitlines()[0]
            exec("import numpy as np\n" + first, ns)  # only the line before the error runs
        else:
            ns = {}
            exec("import numpy as np\n" + body.split("\n" + HOSTILE.get(kind, "\0"))[0], ns)
        answers = {part.name: Submitted.of(ns.get(part.name)) if part.name in ns else None
                   for part in p.parts()}
        total += sum(r.score for r in p.judge(answers))
    return round(total, 2)


def simulate(course: Course, assignment: str, out: Path | None = None,
             students: list[Student] | None = None) -> list[Simulated]:
    """Write one simulated return per roster student into nbgrader's ``submitted/``."""
    spec = course.assignment(assignment)
    roster = course.roster() if students is None else students
    out = out or course.root / "submitted"
    made: list[Simulated] = []
    notebooks: dict[str, tuple[nbformat.NotebookNode, list[Problem]]] = {}
    for i, st in enumerate(roster):
        problems = problems_for(course, spec, st.student_id)
        nb = build_notebook(course, assignment, spec.title, problems, st.student_id, st.display,
                            course.language, "personal")
        kind = kind_of(i)
        _fill(nb, problems, kind, i)
        notebooks[st.student_id] = (nb, problems)
        made.append(Simulated(st.student_id, kind, expected_score(problems, kind, i),
                              round(sum(p.max_score for p in problems), 2)))
    for i, st in enumerate(roster):
        nb, problems = notebooks[st.student_id]
        kind = made[i].kind
        path = out / st.student_id / assignment / f"{assignment}.ipynb"
        if kind == "swap_a" and i + 1 < len(roster):
            # a submits b's correctly solved notebook: graded against a's own variant
            other_nb = copy.deepcopy(notebooks[roster[i + 1].student_id][0])
            other_problems = notebooks[roster[i + 1].student_id][1]
            for cell in other_nb.cells:
                for p in other_problems:
                    if cell.get("id") == answer_cell_id(p.number):
                        head = [ln for ln in cell.source.splitlines() if ln.startswith("#")]
                        cell.source = "\n".join([*head, "", answer_code(p, "correct", i)])
            nb = other_nb
            made[i] = Simulated(st.student_id, kind, _swap_expected(problems, other_problems),
                                made[i].max_score)
        if kind == "edited_data":
            for cell in nb.cells:
                if cell.get("id") == "data_1":
                    cell.source = cell.source.replace("1", "2", 1)
        if kind == "tampered_stamp":
            nb.metadata[STAMP_KEY]["problems"][0]["digest"] = "0" * 64
        if kind == "reordered_cells":
            # tests and self-checks deleted, statements moved to the end: code order kept
            drop = [c for c in nb.cells if c.get("id", "").startswith(("test_", "selfcheck_"))]
            moved = [c for c in nb.cells if c.get("id", "").startswith("statement_")]
            nb.cells = [c for c in nb.cells if c not in drop and c not in moved] + moved
        if kind == "unreadable_json":
            _write(path, dumps(nb)[: len(dumps(nb)) // 2])
        elif kind == "empty_file":
            _write(path, "")
        else:
            _write(path, dumps(nb))
    manifest = course.root / "simulated.json"
    manifest.write_text(json.dumps([m.__dict__ for m in made], indent=1) + "\n", encoding="utf-8")
    return made


def _swap_expected(own: list[Problem], other: list[Problem]) -> float:
    """Score of another student's correct answers judged against one's own variant."""
    total = 0.0
    for mine, theirs in zip(own, other, strict=True):
        key = solved(theirs.fam, theirs.variant)
        answers = {part.name: Submitted.of(key[theirs.base_name(part.name)]) for part in theirs.parts()}
        total += sum(r.score for r in mine.judge(answers))
    return round(total, 2)
