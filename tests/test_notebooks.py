"""Course files, roster validation, notebook generation (deterministic, no answers in the
personal notebook, signed stamps) and every generated notebook running in a real kernel."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from convpset.notebooks.build import BEGIN_HIDDEN, TEMPLATE_STUDENT, literal
from convpset.notebooks.build import test_cell_id as grade_cell_id
from convpset.notebooks.course import CourseError, init_course, load_course, load_roster
from convpset.notebooks.generate import (
    PERSONAL_DIR,
    SOLUTIONS_DIR,
    SOURCE_DIR,
    generate,
    notebook_text,
)
from convpset.notebooks.variants import STAMP_KEY, problems_for, verify_stamp
from convpset.problems.checking import solved

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "course"
HEADER = "student_id,first_name,last_name,email\n"


def _pset_cmd() -> list[str]:
    script = Path(sys.executable).parent / "pset"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from convpset.cli import pset_main; pset_main()"]


ENV = {**os.environ, "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb",
       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def pset(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*_pset_cmd(), *args], capture_output=True, text=True, env=ENV,
                          timeout=300, cwd=cwd)


def small_course(root: Path, students: int = 4, secret: str | None = None) -> Path:
    """A course folder with the sample's pset.toml and the first ``students`` of its roster."""
    root.mkdir(parents=True)
    toml = (SAMPLE / "pset.toml").read_text(encoding="utf-8")
    if secret is not None:
        toml = re.sub(r'secret = "[^"]*"', f'secret = "{secret}"', toml)
    (root / "pset.toml").write_text(toml, encoding="utf-8")
    lines = (SAMPLE / "roster.csv").read_text(encoding="utf-8").splitlines()
    (root / "roster.csv").write_text("\n".join(lines[: students + 1]) + "\n", encoding="utf-8")
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for d in (SOURCE_DIR, PERSONAL_DIR, SOLUTIONS_DIR)
            for p in sorted((root / d).rglob("*.ipynb"))}


def data_cells(text: str) -> list[str]:
    nb = nbformat.reads(text, as_version=4)
    return [c.source for c in nb.cells if c.get("id", "").startswith("data_")]


# ------------------------------------------------------------------------ course and roster
def test_init_layout(tmp_path):
    r = pset("init", str(tmp_path / "c"), "--students", "5")
    assert r.returncode == 0, r.stderr
    root = tmp_path / "c"
    for sub in ("source", "release", "submitted", "autograded", "feedback"):
        assert (root / sub).is_dir(), sub
    for f in ("nbgrader_config.py", "pset.toml", "roster.csv"):
        assert (root / f).is_file(), f
    course = load_course(root)
    assert len(course.secret) >= 16
    assert [s.student_id for s in course.roster()] == [f"s{i:03d}" for i in range(1, 6)]
    assert "conv1" in course.assignments
    assert "c.CourseDirectory.course_id" in (root / "nbgrader_config.py").read_text()
    # a second init refuses to overwrite
    with pytest.raises(CourseError, match="already exists"):
        init_course(root)


def test_init_secrets_differ(tmp_path):
    a = init_course(tmp_path / "a", students=1)
    b = init_course(tmp_path / "b", students=1)
    assert a.secret != b.secret


@pytest.mark.parametrize("rows, pattern", [
    ("s001,A,B,a@x\ns002,C,D,c@x\ns001,E,F,e@x\n", r"line 4: duplicate student_id 's001' \(first on line 2\)"),
    ("s001,A,B,a@x\n,C,D,c@x\n", r"line 3: empty student_id"),
    ("../x,A,B,a@x\n", r"line 2: student_id '\.\./x' contains the character '/'"),
    ("s001,A,B,a@x\ns002,C,D,c@x\na b,C,D,c@x\n", r"line 4: student_id 'a b' contains the character ' '"),
])
def test_roster_errors_name_the_line(tmp_path, rows, pattern):
    path = tmp_path / "roster.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    with pytest.raises(CourseError, match=pattern):
        load_roster(path)


def test_roster_reports_every_bad_line(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(HEADER + "s001,A,B,\n../x,,,\ns001,,,\n", encoding="utf-8")
    with pytest.raises(CourseError) as info:
        load_roster(path)
    msg = str(info.value)
    assert "line 3: student_id '../x'" in msg and "line 4: duplicate" in msg
    assert "line 2:" not in msg and len(msg.splitlines()) == 2


def test_roster_missing_header_column(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("name,first_name\ns001,A\n", encoding="utf-8")
    with pytest.raises(CourseError, match=r"line 1: the header must contain 'student_id'"):
        load_roster(path)


def test_roster_ok_with_bom_and_blank_names(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("\ufeff" + HEADER + "s-1.a_b,,,\n", encoding="utf-8")
    [st] = load_roster(path)
    assert st.student_id == "s-1.a_b" and st.display == "s-1.a_b"


@pytest.mark.parametrize("edit, pattern", [
    (('family = "pooling"', 'family = "poolng"'), r"unknown family 'poolng'"),
    (('family = "pooling", level = 2', 'family = "pooling", level = 9'), r"level must be one of"),
    (('secret = "example-course-secret-00000001"', 'secret = "short"'),
     r"secret must be a string of at least 16 characters"),
    (('language = "en"', 'language = "de"'), r"language must be one of"),
    (('points = 5', 'points = -5'), r"points must be a positive number"),
    (('[course]', '[course'), r"invalid TOML"),
])
def test_bad_pset_toml(tmp_path, edit, pattern):
    root = small_course(tmp_path / "c")
    text = (root / "pset.toml").read_text(encoding="utf-8")
    assert edit[0] in text
    (root / "pset.toml").write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    with pytest.raises(CourseError, match=pattern) as info:
        load_course(root)
    assert "pset.toml" in str(info.value)


def test_bad_problem_message_names_the_problem(tmp_path):
    root = small_course(tmp_path / "c")
    text = (root / "pset.toml").read_text(encoding="utf-8")
    (root / "pset.toml").write_text(text.replace('"pooling"', '"poolng"'), encoding="utf-8")
    with pytest.raises(CourseError, match=r"assignments\.conv1\.problems\[4\]"):
        load_course(root)


def test_generate_bad_roster_exits_2(tmp_path):
    root = small_course(tmp_path / "c")
    with (root / "roster.csv").open("a", encoding="utf-8") as fh:
        fh.write("s001,Dup,Licate,d@x\n")
    r = pset("generate", "conv1", "--course", str(root))
    assert r.returncode == 2, (r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert "line 6: duplicate student_id 's001'" in out
    assert not (root / PERSONAL_DIR).exists()


def test_generate_bad_toml_and_unknown_assignment_exit_2(tmp_path):
    root = small_course(tmp_path / "c")
    r = pset("generate", "conv9", "--course", str(root))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no assignment 'conv9'" in r.stdout + r.stderr
    text = (root / "pset.toml").read_text(encoding="utf-8")
    (root / "pset.toml").write_text(text.replace('"pooling"', '"poolng"'), encoding="utf-8")
    r = pset("generate", "conv1", "--course", str(root))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown family 'poolng'" in r.stdout + r.stderr


# ------------------------------------------------------------------------------ determinism
def test_generation_is_deterministic(tmp_path):
    a = load_course(small_course(tmp_path / "a"))
    b = load_course(small_course(tmp_path / "b"))
    generate(a, "conv1", solutions=True)
    generate(b, "conv1", solutions=True)
    ta, tb = tree_bytes(a.root), tree_bytes(b.root)
    assert len(ta) == 1 + 2 * 4
    assert ta == tb
    # and regenerating in place gives the same bytes again
    generate(a, "conv1", solutions=True)
    assert tree_bytes(a.root) == ta


def test_students_and_secrets_give_different_numbers(tmp_path):
    course = load_course(SAMPLE)
    other = load_course(small_course(tmp_path / "c", secret="another-secret-0123456789"))
    texts = {sid: notebook_text(course, "conv1", sid, sid, "en", "personal")
             for sid in ("s001", "s002", "s003")}
    data = {sid: data_cells(t) for sid, t in texts.items()}
    assert len(data["s001"]) == 5
    for x, y in [("s001", "s002"), ("s001", "s003"), ("s002", "s003")]:
        assert data[x] != data[y]
        # most problems differ, not just one
        assert sum(a != b for a, b in zip(data[x], data[y], strict=True)) >= 3
    for sid in texts:
        changed = data_cells(notebook_text(other, "conv1", sid, sid, "en", "personal"))
        assert sum(a != b for a, b in zip(data[sid], changed, strict=True)) >= 3


def test_generate_jobs_2_equals_jobs_1(tmp_path):
    a = init_course(tmp_path / "a", name="c", students=60, seed=7)
    b = init_course(tmp_path / "b", name="c", students=60, seed=7)
    ra = generate(a, "conv1", solutions=True, jobs=2)
    rb = generate(b, "conv1", solutions=True, jobs=1)
    assert ra.files == rb.files == 1 + 2 * 60
    ta = tree_bytes(a.root)
    assert len(ta) == 121
    assert ta == tree_bytes(b.root)


# ---------------------------------------------------------------------- committed notebooks
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_committed_source_notebooks_up_to_date(lang):
    course = load_course(SAMPLE)
    want = notebook_text(course, "conv1", TEMPLATE_STUDENT, TEMPLATE_STUDENT, lang, "source")
    path = REPO / "source_notebooks" / lang / "conv1" / "conv1.ipynb"
    assert path.read_text(encoding="utf-8") == want, (
        f"{path} is stale: regenerate it with notebooks.generate.notebook_text")


def test_sample_course_source_is_the_en_one():
    assert ((SAMPLE / "source" / "conv1" / "conv1.ipynb").read_bytes()
            == (REPO / "source_notebooks" / "en" / "conv1" / "conv1.ipynb").read_bytes())


# ------------------------------------------------------------------ no answers, valid stamp
def _answer_literals(course, sid: str) -> list[str]:
    """Literals of reference values specific enough not to appear by chance."""
    out = []
    for p in problems_for(course, course.assignment("conv1"), sid):
        key = solved(p.fam, p.variant)
        for part in p.parts():
            value = key[p.base_name(part.name)]
            src = literal(part, value)
            if part.kind == "int":
                if abs(int(src)) >= 100:
                    out.append(src)
                continue
            if part.kind == "shapes":
                out.append(src)
                continue
            if src.count(",") >= 5:
                out.append(src)
            if p.family == "conv_as_matrix" and part.name.startswith("W"):
                inner = src[len("np.array(["):-len("])")]
                out.extend(row if row.endswith("]") else row + "]"
                           for row in re.split(r"(?<=\]), ", inner))
    return out


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("sid", ["s001", "s002", "s017", "s030"])
def test_personal_notebook_has_no_answers(sid, lang):
    course = load_course(SAMPLE)
    personal = notebook_text(course, "conv1", sid, sid, lang, "personal")
    solution = notebook_text(course, "conv1", sid, sid, lang, "solution")
    lits = _answer_literals(course, sid)
    assert len(lits) >= 6
    assert any(lit.startswith("[") and lit.count(",") >= 8 for lit in lits)   # a W row
    for lit in lits:
        assert lit in solution, lit          # the check would see them
        if re.fullmatch(r"-?\d+", lit):
            assert not re.search(rf"(?<![\d.]){re.escape(lit)}(?![\d.])", personal), lit
        else:
            assert lit not in personal, lit
    for text in (personal, solution):
        assert BEGIN_HIDDEN not in text and "HIDDEN TESTS" not in text
        assert "_pset_score" not in text and "nbgrader_bridge" not in text
        assert "BEGIN SOLUTION" not in text
    nb = nbformat.reads(personal, as_version=4)
    answers = [c for c in nb.cells if c.get("id", "").startswith("answer_")]
    assert len(answers) == 5
    assert all(" = ...\n" in c.source + "\n" for c in answers)


def test_source_notebook_has_hidden_tests_and_template_numbers():
    course = load_course(SAMPLE)
    text = notebook_text(course, "conv1", TEMPLATE_STUDENT, TEMPLATE_STUDENT, "en", "source")
    nb = nbformat.reads(text, as_version=4)
    tests = [c for c in nb.cells if c.get("id", "").startswith("test_")]
    parts = [(p.number, part) for p in problems_for(course, course.assignment("conv1"),
                                                    TEMPLATE_STUDENT) for part in p.parts()]
    assert [c.id for c in tests] == [grade_cell_id(n, part.name) for n, part in parts]
    for cell, (n, part) in zip(tests, parts, strict=True):
        meta = cell.metadata.nbgrader
        assert meta["grade"] and meta["locked"] and not meta["solution"]
        assert meta["grade_id"] == cell.id and meta["points"] == part.points
        assert BEGIN_HIDDEN in cell.source
        assert f"_pset_score({n}, {part.name!r}, globals())" in cell.source
    # personal numbers never sit in nbgrader-locked cells
    for c in nb.cells:
        if c.get("id", "").startswith(("data_", "statement_", "selfcheck_")):
            assert "nbgrader" not in c.metadata
    assert sum(p.points for _, p in parts) == 21


def test_stamp_verifies():
    course = load_course(SAMPLE)
    spec = course.assignment("conv1")
    for sid in ("s001", "s002", "s003"):
        nb = nbformat.reads(notebook_text(course, "conv1", sid, sid, "en", "personal"),
                            as_version=4)
        stamp = nb.metadata[STAMP_KEY]
        mine = problems_for(course, spec, sid)
        assert verify_stamp(course, stamp, "conv1", sid, mine).status == "ok"
        other = "s004"
        check = verify_stamp(course, stamp, "conv1", other, problems_for(course, spec, other))
        assert check.status == "other_student" and check.claimed_student == sid
        assert sid in check.message and other in check.message
        bad = {**stamp, "problems": [dict(p) for p in stamp["problems"]]}
        bad["problems"][0]["digest"] = "0" * 64
        assert verify_stamp(course, bad, "conv1", sid, mine).status == "tampered"
        forged = {**stamp, "student": other}
        check = verify_stamp(course, forged, "conv1", other, problems_for(course, spec, other))
        assert check.status == "tampered"
        assert verify_stamp(course, {**stamp, "signature": None}, "conv1", sid,
                            mine).status == "tampered"
        assert verify_stamp(course, None, "conv1", sid, mine).status == "missing"
        assert verify_stamp(course, "junk", "conv1", sid, mine).status == "missing"
    # a stamp signed with another secret does not verify
    other_course = dataclasses.replace(course, secret=b"another-secret-0123456789")
    nb = nbformat.reads(notebook_text(other_course, "conv1", "s001", "s001", "en", "personal"),
                        as_version=4)
    assert verify_stamp(course, nb.metadata[STAMP_KEY], "conv1", "s001",
                        problems_for(course, spec, "s001")).status == "tampered"


# -------------------------------------------------------------------- run in a real kernel
def _execute(path: Path, allow_errors: bool = False) -> nbformat.NotebookNode:
    from kernels import execute

    return execute(nbformat.read(path, as_version=4), path.parent, allow_errors=allow_errors)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def _no_errors(nb) -> None:
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for o in c.outputs:
            assert o.output_type != "error", (c.id, o.get("ename"), o.get("evalue"))
            assert not (o.output_type == "stream" and o.name == "stderr"), (c.id, o.text)


@pytest.mark.parametrize("sid", ["s001", "s002", "s003"])
@pytest.mark.parametrize("mode", ["personal", "solution"])
@pytest.mark.parametrize("lang", ["en", "ru"])
def test_generated_notebook_runs_in_kernel(tmp_path, lang, mode, sid):
    course = load_course(SAMPLE)
    path = tmp_path / mode / sid / "conv1" / "conv1.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text(notebook_text(course, "conv1", sid, sid, lang, mode), encoding="utf-8")
    todo = "still `...`" if lang == "en" else "всё ещё `...`"
    # Jupyter's Run All on a blank notebook: no cell raises (the test cells are quiet, the
    # self-check of each problem has run before its test cells and said what is missing)
    nb = _execute(path)
    _no_errors(nb)
    ids = [c.get("id", "") for c in nb.cells]
    for n in range(1, 6):
        first_test = min(i for i, x in enumerate(ids) if x.startswith(f"test_{n}_"))
        assert ids.index(f"selfcheck_{n}") < first_test
    checks = [c for c in nb.cells if c.get("id", "").startswith("selfcheck_")]
    assert len(checks) == 5
    all_ok = ("have the right format" if lang == "en" else "в верном формате")
    for cell in checks:
        out = _stdout(cell)
        if mode == "personal":
            assert todo in out and all_ok not in out, out
        else:
            assert all_ok in out and "✗" not in out, out


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_source_notebook_runs_hidden_tests_in_kernel(tmp_path, lang):
    root = small_course(tmp_path / "course", students=2)
    course = load_course(root)
    path = root / SOURCE_DIR / "conv1" / "conv1.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text(notebook_text(course, "conv1", TEMPLATE_STUDENT, TEMPLATE_STUDENT, lang,
                                  "source"), encoding="utf-8")
    nb = _execute(path)
    _no_errors(nb)
    tests = [c for c in nb.cells if c.get("id", "").startswith("test_")]
    parts = [part for p in problems_for(course, course.assignment("conv1"), TEMPLATE_STUDENT)
             for part in p.parts()]
    assert [c.id for c in tests] == [f"test_{part.name.rsplit('_', 1)[1]}_{part.name}"
                                     for part in parts]
    for cell in tests:
        results = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert results, cell.id
        value = float(results[-1]["data"]["text/plain"])
        assert value == pytest.approx(cell.metadata.nbgrader["points"], abs=1e-9), cell.id
        assert value > 0


def test_copy_of_sample_course_source_runs(tmp_path):
    """The committed sample source notebook grades the template as fully correct."""
    root = tmp_path / "course"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns(
        "submitted", "personalized*", "autograded", "feedback", "grades"))
    nb = _execute(root / "source" / "conv1" / "conv1.ipynb")
    _no_errors(nb)
    total = sum(float(o["data"]["text/plain"]) for c in nb.cells
                if c.get("id", "").startswith("test_") for o in c.outputs
                if o.output_type == "execute_result")
    assert total == pytest.approx(21.0)


# ------------------------------------------------------------------ the nbgrader bridge
def test_bridge_locate(tmp_path):
    from convpset.autograder.nbgrader_bridge import locate

    root = small_course(tmp_path / "course")
    real = str(root.resolve())
    for rel, student in [("autograded/s001/conv1", "s001"), ("source/conv1", TEMPLATE_STUDENT),
                         ("release/conv1", TEMPLATE_STUDENT),
                         ("autograded/source/conv1", "source"),
                         ("autograded/release/conv1", "release"),
                         ("submitted/s-2.x/conv1", "s-2.x")]:
        d = root / rel
        d.mkdir(parents=True)
        assert locate(d) == (real, "conv1", student), rel
    with pytest.raises(CourseError, match="no pset.toml"):
        locate(tmp_path)


def _all_levels_course(root: Path) -> Path:
    from convpset.problems import family_names, get_family

    root.mkdir()
    probs = "\n".join(f'    {{ family = "{f}", level = {lv}, points = 3 }},'
                      for f in family_names() for lv in get_family(f).levels)
    (root / "pset.toml").write_text(
        '[course]\nname = "all"\nsecret = "all-levels-secret-0123456789"\n\n'
        f'[assignments.a]\nproblems = [\n{probs}\n]\n', encoding="utf-8")
    (root / "roster.csv").write_text(HEADER, encoding="utf-8")
    return root


def _exec_code_cells(text: str, failed: list[str] | None = None) -> tuple[dict, str]:
    """Run every code cell in one namespace; a test cell's format check may fail (its id
    goes to ``failed``), any other error propagates."""
    import contextlib
    import io

    nb = nbformat.reads(text, as_version=4)
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            try:
                exec(cell.source, ns)
            except Exception as err:
                if not cell.id.startswith("test_") or type(err).__name__ != "AnswerFormatError":
                    raise
                (failed if failed is not None else []).append(cell.id)
    return ns, out.getvalue()


def test_bridge_scores_every_family_and_level(tmp_path, monkeypatch):
    """In-process, all families at all levels: the solution notebook's answers earn full
    points through the bridge, the blank one's ``...`` earn zero; both self-checks agree."""
    from convpset.autograder.nbgrader_bridge import score

    course = load_course(_all_levels_course(tmp_path / "course"))
    spec = course.assignment("a")
    assert len(spec.problems) >= 12
    for i in range(6):
        sid = f"u{i}"
        lang = ("en", "ru")[i % 2]
        work = course.root / "autograded" / sid / "a"
        work.mkdir(parents=True)
        monkeypatch.chdir(work)
        monkeypatch.setenv("NBGRADER_EXECUTION", "validate")   # format checks raise, as in Validate
        problems = problems_for(course, spec, sid)
        for mode, full in (("solution", True), ("personal", False)):
            failed: list[str] = []
            ns, printed = _exec_code_cells(notebook_text(course, "a", sid, sid, lang, mode),
                                           failed)
            assert ("✗" in printed) is not full, printed
            n_parts = sum(len(p.parts()) for p in problems)
            assert len(failed) == (0 if full else n_parts), (mode, failed)
            for p in problems:
                for part in p.parts():
                    got = score(p.number, part.name, ns)
                    assert type(got) is float
                    assert got == pytest.approx(part.points if full else 0.0), (
                        sid, p.family, p.level, part.name, mode)
