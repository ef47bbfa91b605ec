"""Fast checks of the nbgrader integration's pieces (the real loop is in
test_nbgrader_loop.py): roster names, configs, the format check behind `nbgrader
validate`, the autograded notebook and grade's nbgrader step."""

from __future__ import annotations

import json
import os
import re

import nbformat
import numpy as np
import pytest

from convpset.autograder.results import ProblemResult, StudentResult
from convpset.integrations.nbgrader.exchange import roster_names
from convpset.integrations.nbgrader.feedback import autograded_notebook, read_submitted
from convpset.integrations.nbgrader.gradebook import after_grade
from convpset.notebooks.course import CourseError, Student, init_course, load_roster
from convpset.notebooks.generate import notebook_text
from convpset.notebooks.nbgrader_config import (
    FETCH,
    RELEASE,
    existing_settings,
    refresh_configs,
)
from convpset.notebooks.simulate import answer_code
from convpset.notebooks.variants import problems_for
from convpset.problems.base import PartResult


def test_roster_names_map_logins_and_refuse_clashes():
    names = roster_names([Student("s001", hub_user="anna"), Student("s002"),
                          Student("s003", hub_user="s003")])
    assert names == {"s001": "s001", "anna": "s001", "s002": "s002", "s003": "s003"}
    with pytest.raises(CourseError, match="hub_user s002 of student s001 .* student s002"):
        roster_names([Student("s001", hub_user="s002"), Student("s002")])
    with pytest.raises(CourseError, match="hub_user x of student s002"):
        roster_names([Student("s001", hub_user="x"), Student("s002", hub_user="x")])


def test_roster_reads_id_and_hub_user_columns(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("id,first_name,last_name,email,hub_user\ns001,A,B,a@x,anna@uni\ns002,C,D,c@x,\n",
                    encoding="utf-8")
    a, b = load_roster(path)
    assert (a.student_id, a.hub_user, b.hub_user) == ("s001", "anna@uni", "")
    path.write_text("id,hub_user\ns001,../etc\n", encoding="utf-8")
    with pytest.raises(CourseError, match=r"line 2: hub_user '\.\./etc'"):
        load_roster(path)


def test_configs_written_again_keep_secret_roster_and_settings(tmp_path):
    course = init_course(tmp_path / "c", name="phys101", students=2)
    root = course.root
    for name in ("nbgrader_config.py", "student_nbgrader_config.py"):
        text = (root / name).read_text(encoding="utf-8")
        assert "c.CourseDirectory.course_id = 'phys101'" in text and FETCH in text
        compile(text, name, "exec")
    assert RELEASE in (root / "nbgrader_config.py").read_text(encoding="utf-8")
    assert RELEASE not in (root / "student_nbgrader_config.py").read_text(encoding="utf-8")
    # a course from before: one old config, a custom exchange root; files written again
    (root / "student_nbgrader_config.py").unlink()
    old = "c = get_config()\nc.CourseDirectory.course_id = 'phys101'\nc.Exchange.root = '/srv/x'\n"
    (root / "nbgrader_config.py").write_text(old, encoding="utf-8")
    before = {f: (root / f).read_bytes() for f in ("pset.toml", "roster.csv")}
    assert existing_settings(root) == {"course_id": "phys101", "root": "/srv/x"}
    written = refresh_configs(root, course.name, course.language)
    assert {f: (root / f).read_bytes() for f in before} == before
    assert written[0].backup and written[0].backup.read_text(encoding="utf-8") == old
    for name in ("nbgrader_config.py", "student_nbgrader_config.py"):
        assert "c.Exchange.root = '/srv/x'" in (root / name).read_text(encoding="utf-8")
    # unchanged files are not rewritten or backed up again
    assert all(w.backup is None for w in refresh_configs(root, course.name, course.language))


def _run_personal(text: str, validating: bool = True) -> dict[str, str]:
    """Execute a personal notebook's code cells as ``nbgrader validate`` does
    (``NBGRADER_EXECUTION=validate``) or, ``validating=False``, as Jupyter's Run All
    does; test cell id -> format error ('' = ok)."""
    nb = nbformat.reads(text, as_version=4)
    ns: dict = {}
    errors = {}
    old = os.environ.pop("NBGRADER_EXECUTION", None)
    if validating:
        os.environ["NBGRADER_EXECUTION"] = "validate"
    try:
        _exec_cells(nb, ns, errors)
    finally:
        os.environ.pop("NBGRADER_EXECUTION", None)
        if old is not None:
            os.environ["NBGRADER_EXECUTION"] = old
    return errors


def _exec_cells(nb, ns: dict, errors: dict) -> None:
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            exec(cell.source, ns)
            if cell.id.startswith("test_"):
                errors[cell.id] = ""
        except Exception as err:
            assert cell.id.startswith("test_") and type(err).__name__ == "AnswerFormatError", cell.id
            assert err._render_traceback_() == [str(err)]      # one line in Validate
            errors[cell.id] = str(err)


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_format_checks_blank_malformed_answered(tmp_path, lang):
    course = init_course(tmp_path / "c", students=1, seed=3)
    text = notebook_text(course, "conv1", "s001", "s001", lang, "personal")
    blank = _run_personal(text)
    assert len(blank) == 12 and all(blank.values())
    # Jupyter's Run All: the test cells stay quiet, so nothing stops the run
    assert not any(_run_personal(text, validating=False).values())
    todo = "still `...`" if lang == "en" else "всё ещё `...`"
    assert all(todo in m for m in blank.values())
    nb = nbformat.reads(text, as_version=4)
    problems = problems_for(course, course.assignment("conv1"), "s001")
    for cell in nb.cells:
        for p in problems:
            if cell.get("id") == f"answer_{p.number}":
                cell.source = answer_code(p, "mistakes:0", 0)     # wrong but well-formed
    assert not any(_run_personal(nbformat.writes(nb)).values())
    for cell in nb.cells:                                          # malformed: a string, a NaN
        if cell.get("id") == "answer_1":
            cell.source = cell.source.replace("W_1 = ", "W_1 = 'seven' or ", 1)
        if cell.get("id") == "answer_2":
            cell.source += "\ntotal_2 = float('nan')"
    bad = _run_personal(nbformat.writes(nb))
    assert bad["test_1_W_1"] and "W_1" in bad["test_1_W_1"] and todo not in bad["test_1_W_1"]
    assert bad["test_2_total_2"] and "total_2" in bad["test_2_total_2"]
    assert sum(bool(v) for v in bad.values()) == 2


def _result(course, sid: str) -> StudentResult:
    problems = problems_for(course, course.assignment("conv1"), sid)
    prs = []
    for p in problems:
        parts = tuple(PartResult(part.name, part.points / 2, part.points, "partial",
                                 {"en": f"half of {part.name}", "ru": f"половина {part.name}"},
                                 "flipped_kernel") for part in p.parts())
        prs.append(ProblemResult(p.number, p.family, p.level, parts))
    return StudentResult(sid, "conv1", None, "", tuple(prs),
                         notes=({"en": "a note for you", "ru": "заметка для вас"},))


def test_autograded_notebook_is_rebuilt_from_the_course(tmp_path):
    course = init_course(tmp_path / "c", students=2, seed=5)
    text = notebook_text(course, "conv1", "s001", "Anna (s001)", "en", "personal")
    nb = json.loads(text)
    for cell in nb["cells"]:
        if cell.get("id") == "answer_1":
            cell["source"] = "W_1 = np.zeros((4, 16))  # mine"
        if cell.get("id") == "test_1_W_1":     # a student who edits a locked cell's metadata
            cell["metadata"]["nbgrader"] = {"grade": False, "grade_id": "bogus"}
            cell["source"] = "print('hacked')"
    nb["cells"].insert(5, {"cell_type": "code", "id": "mine", "metadata": {"nbgrader": {
        "grade": True, "grade_id": "fake", "points": 99}}, "source": "x = 1", "outputs": [],
        "execution_count": None})
    path = tmp_path / "sub.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    out = autograded_notebook(course, "conv1", "Anna (s001)", _result(course, "s001"),
                              read_submitted(path), "en", reveal=False)
    nbformat.validate(out)
    by_id = {c.id: c for c in out.cells}
    assert "# mine" in by_id["answer_1"].source
    t = by_id["test_1_W_1"]
    assert t.metadata["nbgrader"]["grade_id"] == "test_1_W_1" and "hacked" not in t.source
    w = next(x for x in _result(course, "s001").problems[0].parts if x.part == "W_1")
    assert f"W_1: {w.score:g} / {w.max_score:g} — half of W_1" in t.outputs[0].text
    assert t.outputs[1].data["text/plain"] == repr(float(w.score))
    extra = [c for c in out.cells if c.source == "x = 1"]
    assert len(extra) == 1 and "nbgrader" not in extra[0].metadata
    grades = [c for c in out.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(grades) == 12 and sum(c.metadata["nbgrader"]["points"] for c in grades) == 21
    assert "a note for you" in by_id["pset_feedback"].source
    assert not any(c.id.startswith("worked_") for c in out.cells)
    revealed = autograded_notebook(course, "conv1", "Anna (s001)", _result(course, "s001"),
                                   None, "ru", reveal=True)
    assert sum(c.id.startswith("worked_") for c in revealed.cells) == 5
    assert "половина W_1" in {c.id: c for c in revealed.cells}["test_1_W_1"].outputs[0].text


def test_grade_step_decides_and_reports_without_gradebook(tmp_path):
    course = init_course(tmp_path / "c", students=1, seed=2)
    assert after_grade(course, "conv1", [], None, None, False) is None     # no gradebook
    msg = after_grade(course, "conv1", [], True, "en", False)             # asked for
    assert msg and "no gradebook" in msg and "generate_assignment conv1" in msg


def test_placeholder_and_messages_have_both_languages():
    from convpset.problems.text import render

    for key in ("placeholder", "not_on_roster", "release_missing", "gradebook_written"):
        en = render("en", f"nbgrader.{key}", assignment="a", course="c", user="u", count=1,
                    students="s", grades=1, submissions=1, db="d")
        ru = render("ru", f"nbgrader.{key}", assignment="a", course="c", user="u", count=1,
                    students="s", grades=1, submissions=1, db="d")
        assert en != ru and re.search("[а-я]", ru)


def test_personal_notebook_setup_keeps_grading_setup(tmp_path):
    """`grade` runs its own setup cell; the personal setup only adds the format check."""
    course = init_course(tmp_path / "c", students=1, seed=4)
    nb = nbformat.reads(notebook_text(course, "conv1", "s001", "s001", "en", "personal"), 4)
    setup = nb.cells[1]
    assert setup.id == "setup" and setup.source.startswith("import numpy as np\n")
    assert setup.metadata["jupyter"]["source_hidden"] is True       # collapsed in the lab
    assert "nbgrader" not in setup.metadata
    ns: dict = {}
    exec(setup.source, ns)
    ns["W"] = np.zeros((2, 2))
    assert ns["_pset_format"]("W", "array", [2, 2], False) == ""
    assert "W" in ns["_pset_format"]("W", "array", [3, 2], False)
