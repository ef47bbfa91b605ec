"""A problem pool through the whole nbgrader loop, with real nbgrader commands (issue 21 §4).

Like tests/test_nbgrader_loop.py, but problem 5 of the sample assignment is a pool
(pooling L2 or receptive_field L2, 4 points, choose 1) and the roster is picked so that
both alternatives are held: `pset generate` -> `nbgrader generate_assignment` (the source
notebook has ONE grade cell for problem 5, worth 4 points) -> release -> each student
fetches their own notebook (their own alternative) -> validate -> submit -> collect ->
`grade` -> NbGraderAPI and formgrader's HTTP API (the pooled cell: the same id and max for
everyone, the score of whichever alternative they drew) -> `nbgrader autograde` on a
copy (the hidden test restored from the source notebook finds each student's own
alternative) agrees with `grade` -> `nbgrader generate_feedback`.

SLOW: a few minutes on a shared machine.
"""

from __future__ import annotations

import csv
import json
import shutil

import nbformat
import pytest

from convpset.notebooks.cells import pool_cell_id
from convpset.notebooks.course import PoolSpec, load_course
from convpset.notebooks.simulate import expected_score
from convpset.notebooks.variants import pool_draw, problems_for
from tests.test_nbgrader_loop import BIN, Server, fill, nbgrader, page_text, run

pytestmark = pytest.mark.slow

A = "conv1"
COURSE_ID = "pool101"
POOL = ('{ pool = [ { family = "pooling", level = 2 }, '
        '{ family = "receptive_field", level = 2 } ], choose = 1, points = 4 }')
KINDS = ("correct", "correct", "mistakes:0")     # alternative 0, alternative 1, alternative 1


def pick_students(course) -> dict[str, str]:
    """Roster ids (sid -> what they hand in): one drawing each alternative correctly and
    one more on the second alternative making a named mistake. Picked with the course's
    (random) secret, so both alternatives are held whatever it is."""
    spec = course.assignment(A)
    pool = spec.problems[4]
    assert isinstance(pool, PoolSpec)
    want = [0, 1, 1]
    out: dict[str, str] = {}
    for i in range(1, 500):
        sid = f"p{i:03d}"
        (alt,) = pool_draw(course.secret, A, 4, pool, sid)
        if want and alt == want[0]:
            out[sid] = KINDS[3 - len(want)]
            want.pop(0)
    assert not want, out
    return out


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    base = tmp_path_factory.mktemp("pools")
    exchange, staff, root = base / "exchange", base / "staff_home", base / "course"
    run(str(BIN / "pset"), "init", str(root), "--name", COURSE_ID, "--students", "3",
        cwd=base, home=staff)
    cfg = root / "pset.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(
        '{ family = "pooling", level = 2, points = 4 },', POOL + ","), encoding="utf-8")
    students = pick_students(load_course(root))
    with (root / "roster.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "first_name", "last_name", "email", "hub_user"])
        for n, sid in enumerate(students):
            w.writerow([sid, f"First{n}", f"Last{n}", f"{sid}@uni.example", ""])
    run(str(BIN / "pset"), "nbgrader", "config", "--course", str(root), "--exchange-root",
        str(exchange), cwd=base, home=staff)
    run(str(BIN / "pset"), "generate", A, "--course", str(root), cwd=base, home=staff)
    nbgrader("generate_assignment", A, cwd=root, home=staff)
    nbgrader("release_assignment", A, cwd=root, home=staff)
    course = load_course(root)
    folders, fetched, validated = {}, {}, {}
    for sid, kind in students.items():
        folder = base / f"student_{sid}"
        folder.mkdir()
        shutil.copy(root / "student_nbgrader_config.py", folder / "nbgrader_config.py")
        nbgrader("fetch_assignment", A, "--student", sid, cwd=folder, home=folder)
        fetched[sid] = (folder / A / f"{A}.ipynb").read_text(encoding="utf-8")
        fill(folder / A / f"{A}.ipynb", course, sid, kind)
        folders[sid] = folder
    for sid in list(students)[:2]:           # one student of each alternative
        validated[sid] = nbgrader("validate", f"{A}/{A}.ipynb", cwd=folders[sid],
                                  home=folders[sid], ok=False)
    for sid, folder in folders.items():
        nbgrader("submit", A, "--student", sid, cwd=folder, home=folder)
    nbgrader("collect", A, "--ExchangeCollect.check_owner=False", cwd=root, home=staff)
    run(str(BIN / "grade"), str(root / "submitted"), "--course", str(root), cwd=root,
        home=staff)
    nbgrader("generate_feedback", A, cwd=root, home=staff)
    return {"root": root, "staff": staff, "course": course, "students": students,
            "fetched": fetched, "validated": validated}


def own_pooled(pooled, sid: str):
    course = pooled["course"]
    return problems_for(course, course.assignment(A), sid)[4]


def results(pooled) -> dict:
    return json.loads((pooled["root"] / "grades" / A / "results.json").read_text(encoding="utf-8"))


def journal(pooled) -> dict[str, dict]:
    out = {}
    for line in (pooled["root"] / "grades" / A / "journal.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[r["student_id"]] = r
    return out


def test_source_notebook_and_gradebook_have_one_cell_per_pooled_number(pooled):
    from nbgrader.api import Gradebook

    root = pooled["root"]
    for folder in ("source", "release"):
        nb = nbformat.read(root / folder / A / f"{A}.ipynb", as_version=4)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
                  and c.metadata.get("pset_problem") == 5]
        assert [c.metadata.nbgrader.grade_id for c in graded] == [pool_cell_id(5)], folder
        assert graded[0].metadata.nbgrader.points == 4.0
        statement = next(c for c in nb.cells if c.get("id") == "statement_5").source
        assert "pooling L2, receptive_field L2" in statement
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_notebook(A, A)
        cells = {c.name: c.max_score for c in nb.grade_cells}
        assert cells[pool_cell_id(5)] == 4.0
        assert not any(n.startswith("test_5_") and n != pool_cell_id(5) for n in cells)
        assert sum(cells.values()) == pytest.approx(21.0)


def test_each_student_fetches_their_own_alternative(pooled):
    families = set()
    for sid, text in pooled["fetched"].items():
        nb = nbformat.reads(text, as_version=4)
        own = own_pooled(pooled, sid)
        families.add(own.family)
        data = next(c for c in nb.cells if c.get("id") == "data_5").source
        assert data == own.data_code()
        graded = [c.metadata.nbgrader.grade_id for c in nb.cells
                  if c.metadata.get("nbgrader", {}).get("grade") and c.metadata.get("pset_problem") == 5]
        assert graded == [pool_cell_id(5)]
        assert "_pset_score" not in text and "HIDDEN TESTS" not in text
        assert nb.metadata.pset.problems[4]["family"] == own.family
    assert families == {"pooling", "receptive_field"}


def test_validate_passes_for_both_alternatives(pooled):
    for sid, r in pooled["validated"].items():
        assert "Success! Your notebook passes all the tests." in r.stdout, (sid, r.stdout[-2000:])


def test_grade_scores_the_drawn_alternative(pooled):
    res = results(pooled)
    course = pooled["course"]
    for sid, kind in pooled["students"].items():
        want = expected_score(problems_for(course, course.assignment(A), sid), kind, 0)
        assert res[sid]["score"] == pytest.approx(want, abs=0.011), sid
        assert not res[sid]["extra_data"]["flags"]
    full = [sid for sid, kind in pooled["students"].items() if kind == "correct"]
    assert [res[sid]["score"] for sid in full] == [21.0, 21.0]


def test_formgrader_api_cell_scores_are_meaningful(pooled):
    """NbGraderAPI and the gradebook: everyone's max is 21 and the pooled cell's 4; the
    pooled cell's score is the sum of the student's own parts of problem 5."""
    from nbgrader.api import Gradebook
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    root = pooled["root"]
    res, jr = results(pooled), journal(pooled)
    api = NbGraderAPI(coursedir=CourseDirectory(root=str(root), course_id=COURSE_ID))
    subs = {s["student"]: s for s in api.get_submissions(A)}
    assert sorted(subs) == sorted(pooled["students"])
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sid in pooled["students"]:
            s = subs[sid]
            assert s["autograded"] and not s["needs_manual_grade"]
            assert s["max_score"] == pytest.approx(21.0)
            assert s["score"] == pytest.approx(res[sid]["score"], abs=0.011)
            by_cell = {g.name: g for nb in gb.find_submission(A, sid).notebooks for g in nb.grades}
            cell = by_cell[pool_cell_id(5)]
            p5 = jr[sid]["problems"][4]
            assert (p5["family"], p5["level"]) == (own_pooled(pooled, sid).family, 2)
            assert cell.max_score == 4.0
            assert cell.score == pytest.approx(sum(x["score"] for x in p5["parts"]), abs=0.011)
            assert not cell.needs_manual_grade


def test_nbgrader_autograde_agrees_with_grade(pooled, tmp_path):
    """Real `nbgrader autograde`: the pooled cell's hidden test, the same for everyone,
    scores each student's own alternative exactly as `grade` did."""
    from nbgrader.api import Gradebook

    copy = tmp_path / "course"
    shutil.copytree(pooled["root"], copy, ignore=shutil.ignore_patterns("autograded", "feedback"))
    nbgrader("autograde", A, "--force", cwd=copy, home=pooled["staff"])
    res, jr = results(pooled), journal(pooled)
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}") as gb:
        for sid in pooled["students"]:
            sub = gb.find_submission(A, sid)
            theirs = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
            assert sub.score == pytest.approx(res[sid]["score"], abs=0.011), sid
            p5 = jr[sid]["problems"][4]
            assert theirs[pool_cell_id(5)] == pytest.approx(
                sum(x["score"] for x in p5["parts"]), abs=0.011), sid


def test_formgrader_http_shows_the_pooled_cell(pooled):
    res, jr = results(pooled), journal(pooled)
    server = Server(pooled["root"], pooled["staff"])
    try:
        nbs = server.get(f"/formgrader/api/submitted_notebooks/{A}/{A}")
        assert sorted(n["student"] for n in nbs) == sorted(pooled["students"])
        for n in nbs:
            assert n["max_score"] == 21 and not n["needs_manual_grade"]
            assert n["score"] == pytest.approx(res[n["student"]]["score"], abs=0.011)
            grades = {g["name"]: g for g in server.get(f"/formgrader/api/grades?submission_id={n['id']}")}
            g = grades[pool_cell_id(5)]
            p5 = jr[n["student"]]["problems"][4]
            assert g["max_score"] == 4
            assert g["auto_score"] == pytest.approx(sum(x["score"] for x in p5["parts"]), abs=0.011)
    finally:
        server.stop()


def test_feedback_names_the_drawn_alternatives_parts(pooled):
    for sid in pooled["students"]:
        html = (pooled["root"] / "feedback" / sid / A / f"{A}.html").read_text(encoding="utf-8")
        text = page_text(html)
        for part in own_pooled(pooled, sid).parts():
            assert part.name in text, (sid, part.name)
        assert "_pset_score" not in html and "HIDDEN TESTS" not in html
