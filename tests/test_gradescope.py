"""The Gradescope autograder bundle, built and run in Gradescope's /autograder layout
(a temporary folder) on the sample course's returns: results.json checked against the
spec (gradescope-autograders.readthedocs.io, "Autograder Specifications")."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convpset.integrations.gradescope.bundle import (  # noqa: E402
    grade_limits,
    settings,
)
from convpset.integrations.gradescope.identity import (  # noqa: E402
    RosterIndex,
    accounts_of,
    decide,
    gradescope_emails,
)
from convpset.integrations.gradescope.local import _env, layout, run_local  # noqa: E402
from convpset.integrations.gradescope.results import VISIBILITIES, md_code  # noqa: E402
from convpset.integrations.gradescope.run import points_warning  # noqa: E402
from convpset.integrations.lms.export import ExportRequest, export  # noqa: E402
from convpset.notebooks.course import CourseError, Student, load_course  # noqa: E402
from convpset.notebooks.variants import STAMP_KEY, make_stamp, problems_for  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
PSET = str(Path(sys.executable).with_name("pset"))
SIMULATED = {s["student_id"]: s for s in json.loads((EXAMPLE / "simulated.json").read_text())}
# the spec's keys: top level and per test
TOP = {"score", "execution_time", "output", "output_format", "test_output_format",
       "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
       "leaderboard"}
TEST = {"score", "max_score", "status", "name", "name_format", "number", "output",
        "output_format", "tags", "visibility", "extra_data"}


def notebook(sid: str) -> Path:
    return next((EXAMPLE / "submitted" / sid / ASSIGNMENT).glob("*.ipynb"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    req = ExportRequest("gradescope-autograder", out / "grades", out)
    return export(load_course(EXAMPLE), ASSIGNMENT, req).path


def check_spec(res: dict) -> None:
    """Required fields and types of results.json, and nothing outside the spec."""
    assert set(res) <= TOP
    assert isinstance(res["score"], int | float) and res["score"] >= 0
    assert res["visibility"] in VISIBILITIES and res["stdout_visibility"] in VISIBILITIES
    assert isinstance(res["output"], str) and res["output"]
    # graded: escaped HTML (student text inside); rejected: Markdown with code spans
    assert res["output_format"] == ("html" if res["tests"] else "md")
    assert isinstance(res["execution_time"], int)
    for t in res["tests"]:
        assert set(t) <= TEST
        assert {"name", "score", "max_score", "status", "output", "output_format"} <= set(t)
        assert isinstance(t["name"], str) and t["output_format"] == "html"
        assert 0 <= t["score"] <= t["max_score"]
        assert t["status"] == ("passed" if t["score"] >= t["max_score"] else "failed")
    if res["tests"]:
        assert sum(t["score"] for t in res["tests"]) == pytest.approx(res["score"], abs=0.05)


def test_bundle_layout(bundle):
    z = zipfile.ZipFile(bundle)
    names = z.namelist()
    assert {"setup.sh", "run_autograder", "convpset_gradescope.json", "course/pset.toml",
            "course/roster.csv", "constraints.txt"} <= set(names)
    for script in ("setup.sh", "run_autograder"):
        assert (z.getinfo(script).external_attr >> 16) & 0o111, f"{script} is executable"
    assert z.read("course/pset.toml") == (EXAMPLE / "pset.toml").read_bytes()
    assert z.read("course/roster.csv") == (EXAMPLE / "roster.csv").read_bytes()
    cfg = json.loads(z.read("convpset_gradescope.json"))
    assert cfg["assignment"] == ASSIGNMENT and cfg["limits"] == grade_limits().__dict__
    assert cfg["max_score"] == 21
    assert (cfg["visibility"], cfg["stdout_visibility"], cfg["lang"]) == ("visible", "hidden", "en")
    wheel = [n for n in names if n.endswith(".whl")]
    assert wheel == [cfg["wheel"]]
    inner = zipfile.ZipFile(io.BytesIO(z.read(wheel[0]))).namelist()
    for f in ("convpset/integrations/gradescope/run.py", "convpset/autograder/pipeline.py",
              "convpset/problems/text/ru.toml", "convpset/autograder/sandbox/child.py"):
        assert f in inner
    setup = z.read("setup.sh").decode()
    assert "https://download.pytorch.org/whl/cpu" in setup and "--constraint" in setup
    assert "torch==2.13.0" in z.read("constraints.txt").decode().splitlines()


def test_scripts_parse(bundle, tmp_path):
    z = zipfile.ZipFile(bundle)
    for script in ("setup.sh", "run_autograder"):
        (tmp_path / script).write_bytes(z.read(script))
        r = subprocess.run(["bash", "-n", str(tmp_path / script)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_settings_from_pset_toml(tmp_path):
    course = tmp_path / "c"
    course.mkdir()
    for f in ("pset.toml", "roster.csv"):
        (course / f).write_bytes((EXAMPLE / f).read_bytes())
    with (course / "pset.toml").open("a") as fh:
        fh.write('\n[gradescope]\nvisibility = "after_due_date"\nstdout_visibility = "visible"\n'
                 'lang = "ru"\n')
    s = settings(load_course(course))
    assert (s.visibility, s.stdout_visibility, s.lang) == ("after_due_date", "visible", "ru")
    text = (course / "pset.toml").read_text().replace('"after_due_date"', '"later"')
    (course / "pset.toml").write_text(text)
    with pytest.raises(CourseError, match="visibility must be one of hidden"):
        settings(load_course(course))


ROSTER = [Student("s001", "Anna", "Ivanova", "Anna@Example.edu"), Student("s002"),
          Student("s003", email="s003@example.edu")]


def _decide(users, stamp=None, mapped=None):
    return decide(accounts_of({"users": users}), RosterIndex.build(ROSTER, mapped or {}), stamp)


def test_account_decides_never_the_stamp():
    """The account, mapped by sid, email or gradescope_email, is whom we grade; a
    valid stamp of a roster student never makes an unknown account that student."""
    d = _decide([{"name": "A", "email": "anna@example.edu ", "sid": None, "id": 7}], "s001")
    assert (d.student_id, d.matched_by, d.reason) == ("s001", ("email",), None)
    assert _decide([{"sid": "s002"}]).student_id == "s002"
    stranger = _decide([{"name": "Eve", "email": "eve@evil.example"}], "s001")
    assert (stranger.student_id, stranger.reason) == (None, "unknown_account")
    assert stranger.stamp_student == "s001" and "eve@evil.example" in stranger.who
    mapped = _decide([{"email": "Anna.Personal@Gmail.com"}], "s001",
                     {"anna.personal@gmail.com": "s001"})
    assert (mapped.student_id, mapped.matched_by) == ("s001", ("gradescope_email",))


def test_other_student_group_ambiguous_and_no_account():
    other = _decide([{"sid": "s002"}], "s001")
    assert (other.student_id, other.reason, other.candidates) == (None, "other_student",
                                                                   ("s002",))
    group = _decide([{"sid": "s001"}, {"sid": "s002"}], "s001")
    assert (group.student_id, group.reason) == (None, "group")
    both = _decide([{"sid": "s002", "email": "s003@example.edu"}], None)
    assert (both.student_id, both.reason, both.candidates) == (None, "ambiguous",
                                                               ("s002", "s003"))
    assert _decide([], "s001").reason == "no_account"
    assert accounts_of("garbage") == () and accounts_of({"users": "x"}) == ()
    assert _decide([{"sid": "s001"}], None).student_id == "s001", "no stamp: own variant"


def test_account_text_is_bounded_and_literal():
    evil = {"name": "\x1b]52;c;aGk=\x07<img src=x onerror=alert(1)>" + "x" * 500,
            "email": ["not", "text"], "sid": {"a": 1}}
    (a,) = accounts_of({"users": [evil]})
    assert "\x1b" not in a.name and len(a.name) < 140 and a.email == "" and a.sid == ""
    code = md_code("a `b` <img>")
    assert code == "``a `b` <img>``"
    assert md_code("`x`") == "`` `x` ``"


def test_gradescope_email_column():
    text = "student_id,email,gradescope_email\ns001,anna@example.edu,Anna.P@Gmail.com\ns002,,\n"
    assert gradescope_emails(text, ROSTER) == {"anna.p@gmail.com": "s001"}
    assert gradescope_emails("student_id,email\ns001,a@b\n", ROSTER) == {}
    clash = "student_id,gradescope_email\ns001,x@y.org\ns002,X@y.org\n"
    with pytest.raises(ValueError, match="s001 / s002"):
        gradescope_emails(clash, ROSTER)
    with pytest.raises(ValueError, match="s003"):
        gradescope_emails("student_id,gradescope_email\ns001,s003@example.edu\n", ROSTER)


def test_bundle_refuses_a_mapping_clash_and_an_unfrozen_environment(tmp_path, monkeypatch):
    """Instructor input errors stop `pset export` with one line (CourseError -> exit 2)."""
    from convpset.integrations.gradescope import bundle as bundle_mod
    from convpset.integrations.gradescope.freeze import FreezeError

    course = tmp_path / "c"
    course.mkdir()
    (course / "pset.toml").write_bytes((EXAMPLE / "pset.toml").read_bytes())
    rows = (EXAMPLE / "roster.csv").read_text().splitlines()
    rows = [rows[0] + ",gradescope_email"] + [
        r + (",me@x.org" if r.startswith(("s001,", "s002,")) else ",") for r in rows[1:]]
    (course / "roster.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(CourseError, match="gradescope_email maps one address to two students"):
        bundle_mod.build_bundle(load_course(course), ASSIGNMENT, tmp_path / "out")

    def unfrozen(_deps):
        raise FreezeError("numpy (required by pyproject.toml) is not installed")

    monkeypatch.setattr(bundle_mod, "constraints_text", unfrozen)
    with pytest.raises(CourseError, match="freezing the bundle's dependency versions"):
        bundle_mod.build_bundle(load_course(EXAMPLE), ASSIGNMENT, tmp_path / "out2")
    assert not (tmp_path / "out2" / "autograder.zip").exists()


def test_points_warning():
    meta = {"assignment": {"total_points": "25.0"}}
    warning = points_warning(meta, 21, "en", "conv1")
    assert "worth 25 points" in warning and "maximum for conv1 is 21" in warning
    assert "стоит 25 баллов" in points_warning(meta, 21, "ru", "conv1")
    assert points_warning({"assignment": {"total_points": "21.0"}}, 21.0, "en", "conv1") is None
    for junk in ({}, {"assignment": None}, {"assignment": {"total_points": None}},
                 {"assignment": {"total_points": "lots"}}, "garbage"):
        assert points_warning(junk, 21, "en", "conv1") is None


@pytest.mark.slow
@pytest.mark.parametrize("sid,kind", [("s001", "correct"), ("s006", "empty"),
                                      ("s003", "mistakes:0"), ("s014", "edited_data")])
def test_grades_in_gradescope_layout(bundle, sid, kind):
    assert SIMULATED[sid]["kind"] == kind
    run = run_local(bundle, notebook(sid), sid)
    res = run.results
    assert run.returncode == 0
    check_spec(res)
    assert res["score"] == pytest.approx(SIMULATED[sid]["expected_score"], abs=0.05)
    assert res["extra_data"]["student_id"] == sid and "sid" in res["extra_data"]["matched_by"]
    assert len(res["tests"]) == 12, "one test per answer part"
    assert f"({sid})" in res["output"]
    assert "/site/convpset" in run.stdout, "the bundle's own wheel graded, not the checkout"
    if kind == "correct":
        assert all(t["status"] == "passed" for t in res["tests"])
        assert '"probe_status": "ok"' in run.stdout, "staff see the sandbox's isolation"
    if kind == "empty":
        assert all(t["score"] == 0 for t in res["tests"])
    if kind == "mistakes:0":
        named = [t for t in res["tests"] if "extra_data" in t]
        assert named and all(t["extra_data"]["mistake"] in t["tags"] for t in named)
        assert any("flipped the kernel" in t["output"] for t in named)
    if kind == "edited_data":
        assert "edited_data" in res["extra_data"]["flags"]
        assert "The data cell of problem 1 was changed" in res["output"]


def _submit(bundle: Path, tmp_path: Path, files: dict[str, bytes], sid: str | None = "s001"):
    if len(files) == 1:
        name, data = next(iter(files.items()))
        sub = tmp_path / name
        sub.write_bytes(data)
    else:
        sub = tmp_path / "upload.zip"
        with zipfile.ZipFile(sub, "w") as z:
            for name, data in files.items():
                z.writestr(name, data)
    return run_local(bundle, sub, sid).results


def _rejected(res: dict, reason: str) -> None:
    check_spec(res)
    assert res["score"] == 0 and res["tests"] == [] and res["extra_data"]["rejected"] == reason


@pytest.mark.slow
def test_not_a_notebook(bundle, tmp_path):
    res = _submit(bundle, tmp_path, {"answers.py": b"W_1 = 0\n"})
    _rejected(res, "not_notebook")
    assert "No Jupyter notebook" in res["output"] and "`answers.py`" in res["output"]


@pytest.mark.slow
def test_two_notebooks(bundle, tmp_path):
    nb = notebook("s001").read_bytes()
    res = _submit(bundle, tmp_path, {"conv1.ipynb": nb, "copy/conv1 (1).ipynb": nb,
                                     ".ipynb_checkpoints/conv1-checkpoint.ipynb": nb})
    _rejected(res, "several_notebooks")
    assert "2 notebooks" in res["output"] and "checkpoint" not in res["output"]


@pytest.mark.slow
def test_zip_with_one_notebook_is_graded(bundle, tmp_path):
    res = _submit(bundle, tmp_path, {"hw/conv1.ipynb": notebook("s001").read_bytes(),
                                     "__MACOSX/hw/._conv1.ipynb": b"\0\0",
                                     "notes.txt": b"hi"})
    check_spec(res)
    assert res["score"] == 21


@pytest.mark.slow
def test_other_assignment(bundle, tmp_path):
    c = load_course(EXAMPLE)
    nb = json.loads(notebook("s001").read_text(encoding="utf-8"))
    nb["metadata"][STAMP_KEY] = make_stamp(c, "conv2", "s001",
                                           problems_for(c, c.assignment(ASSIGNMENT), "s001"))
    res = _submit(bundle, tmp_path, {"conv2.ipynb": json.dumps(nb).encode()})
    _rejected(res, "other_assignment")
    assert "belongs to assignment conv2, not conv1" in res["output"]


@pytest.mark.slow
def test_unreadable_notebook(bundle, tmp_path):
    res = _submit(bundle, tmp_path, {"conv1.ipynb": b"{not json"})
    check_spec(res)
    assert res["score"] == 0 and "unreadable" in res["extra_data"]["flags"]
    assert "could not be graded" in res["output"]


def _run_as(bundle: Path, tmp_path: Path, nb: Path, users: list[dict],
            total_points: str | None = "21.0") -> tuple[dict, str]:
    """Run the bundle on ``nb`` with these Gradescope users in submission_metadata.json."""
    ag = layout(tmp_path, bundle, nb, None)
    meta = json.loads((ag / "submission_metadata.json").read_text())
    meta["users"] = users
    meta["assignment"]["total_points"] = total_points
    (ag / "submission_metadata.json").write_text(json.dumps(meta))
    r = subprocess.run(["bash", str(ag / "run_autograder")], cwd=ag, env=_env(ag),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads((ag / "results" / "results.json").read_text())
    check_spec(res)
    return res, r.stdout


STRANGER = {"id": 99, "name": "Eve Stranger", "email": "anna.personal@gmail.com", "sid": None}


@pytest.mark.slow
def test_unknown_account_gets_zero_until_mapped(bundle, tmp_path):
    """A stranger uploading a classmate's (valid, signed) notebook gets 0 and a message;
    the instructor sees both identities; once the roster maps the account
    (gradescope_email) and the bundle is rebuilt, the same submission is graded."""
    res, stdout = _run_as(bundle, tmp_path / "a", notebook("s001"), [STRANGER])
    _rejected(res, "unknown_account")
    assert "not on the course roster" in res["output"] and "`s001`" in res["output"]
    assert "anna.personal@gmail.com" in res["output"]
    extra = res["extra_data"]
    assert extra["stamp_student"] == "s001" and extra["accounts"][0]["email"] == STRANGER["email"]
    assert "Eve Stranger" in stdout and "notebook stamp: s001" in stdout
    assert "Ivanova" not in res["output"], "an unknown account learns no roster name"

    course = tmp_path / "course"
    course.mkdir()
    (course / "pset.toml").write_bytes((EXAMPLE / "pset.toml").read_bytes())
    rows = (EXAMPLE / "roster.csv").read_text().splitlines()
    rows = [rows[0] + ",gradescope_email"] + [
        r + ("," + STRANGER["email"] if r.startswith("s001,") else ",") for r in rows[1:]]
    (course / "roster.csv").write_text("\n".join(rows) + "\n")
    req = ExportRequest("gradescope-autograder", tmp_path / "g", tmp_path / "out")
    mapped = export(load_course(course), ASSIGNMENT, req).path
    res, stdout = _run_as(mapped, tmp_path / "b", notebook("s001"), [STRANGER])
    assert res["score"] == 21 and res["extra_data"]["student_id"] == "s001"
    assert res["extra_data"]["matched_by"] == ["gradescope_email"]


@pytest.mark.slow
def test_another_students_notebook_scores_zero(bundle, tmp_path):
    """s010's account submits s011's notebook: 0 and "issued to another student" (the
    old runner graded it against s010's variant: 1.33 points of s011's work)."""
    assert SIMULATED["s010"]["kind"] == "swap_a"
    res = run_local(bundle, notebook("s010"), "s010").results
    _rejected(res, "other_student")
    assert "issued to another student (`s011`)" in res["output"]
    assert res["extra_data"]["stamp_student"] == "s011"
    assert res["extra_data"]["candidates"] == ["s010"]


@pytest.mark.slow
def test_group_submission_is_not_graded(bundle, tmp_path):
    users = [{"id": 1, "name": "Anna Ivanova", "email": "s001@example.edu", "sid": "s001"},
             {"id": 2, "name": "B", "email": "s002@example.edu", "sid": "s002"}]
    res, _ = _run_as(bundle, tmp_path, notebook("s001"), users)
    _rejected(res, "group")
    assert "group submission" in res["output"] and len(res["extra_data"]["accounts"]) == 2


@pytest.mark.slow
def test_no_stamp_and_unknown_account(bundle, tmp_path):
    nb = json.loads(notebook("s001").read_text(encoding="utf-8"))
    del nb["metadata"][STAMP_KEY]
    sub = tmp_path / "conv1.ipynb"
    sub.write_text(json.dumps(nb), encoding="utf-8")
    res, _ = _run_as(bundle, tmp_path / "x", sub, [STRANGER])
    _rejected(res, "unknown_account")
    assert res["extra_data"]["stamp_student"] is None


@pytest.mark.slow
def test_total_points_differ_warns_staff(bundle, tmp_path):
    res, stdout = _run_as(bundle, tmp_path, notebook("s001"),
                          [{"id": 1, "name": "A", "email": "s001@example.edu", "sid": "s001"}],
                          total_points="25.0")
    assert res["score"] == 21
    assert "worth 25 points" in stdout and "maximum for conv1 is 21" in stdout
    assert "worth 25 points" in res["extra_data"]["points_warning"]
    assert "worth 25" not in res["output"], "a staff warning, not the student's feedback"
    res, stdout = _run_as(bundle, tmp_path / "same", notebook("s001"),
                          [{"id": 1, "name": "A", "email": "s001@example.edu", "sid": "s001"}])
    assert "points_warning" not in res["extra_data"] and "worth" not in stdout


@pytest.mark.slow
def test_sandbox_hides_the_bundle(bundle, tmp_path):
    """Student code cannot read the course secret in autograder/source, though the
    layout is under a temporary folder."""
    keep = tmp_path / "layout"
    secret_path = keep / "autograder" / "source" / "course" / "pset.toml"
    nb = json.loads(notebook("s001").read_text(encoding="utf-8"))
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [],
                        "execution_count": None,
                        "source": f"raise RuntimeError(open({str(secret_path)!r}).read())"})
    sub = tmp_path / "conv1.ipynb"
    sub.write_text(json.dumps(nb), encoding="utf-8")
    res = run_local(bundle, sub, "s001", keep=keep).results
    assert secret_path.is_file()
    assert "example-course-secret" not in json.dumps(res)
    assert ("raised PermissionError" in res["output"]
            or "raised FileNotFoundError" in res["output"]), res["output"]
    assert res["score"] == 21


@pytest.mark.slow
def test_numpy_notebook_path_imports_no_heavy_library(bundle, tmp_path):
    ag = layout(tmp_path, bundle, notebook("s001"), "s001")
    code = ("import sys; from convpset.integrations.gradescope import run; "
            f"run.main(['--autograder-dir', {str(ag)!r}]); "
            "print(sorted(m for m in ('torch', 'nbformat', 'nbgrader', 'matplotlib', 'dask') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads((ag / "results" / "results.json").read_text())["score"] == 21


@pytest.mark.slow
def test_cli(bundle, tmp_path):
    r = subprocess.run([PSET, "gradescope-run", str(bundle), str(notebook("s003")), "--sid",
                        "s003", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    check_spec(res)
    assert res["score"] == pytest.approx(SIMULATED["s003"]["expected_score"], abs=0.05)
    r = subprocess.run([PSET, "gradescope-run", str(tmp_path / "none.zip"), str(notebook("s003"))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "none.zip not found" in r.stderr



@pytest.mark.slow
def test_broken_bundle_still_writes_results(bundle, tmp_path):
    """An error on our side: results.json with 0 and a message, the trace in stdout."""
    ag = layout(tmp_path, bundle, notebook("s001"), "s001")
    (ag / "source" / "course" / "pset.toml").write_text("[course]\nsecret = 'short'\n")
    r = subprocess.run(["bash", str(ag / "run_autograder")], cwd=ag, capture_output=True,
                       text=True, timeout=120,
                       env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                            "PYTHONPATH": str(ROOT), "CONVPSET_VENV": "",
                            "CONVPSET_AUTOGRADER_DIR": str(ag)})
    assert r.returncode == 0
    res = json.loads((ag / "results" / "results.json").read_text())
    _rejected(res, "internal_error")
    assert "not in your notebook" in res["output"] and "Traceback" in r.stdout
    assert "secret must be a string" in r.stdout


@pytest.mark.slow
def test_cli_export_bundle(tmp_path):
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "gradescope-autograder", "--course",
                        str(EXAMPLE), "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert zipfile.ZipFile(tmp_path / "autograder.zip").testzip() is None
    r = subprocess.run([PSET, "export", ASSIGNMENT, "--to", "gradescope-autograder", "--course",
                        str(EXAMPLE), "--out", str(tmp_path), "--template", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--template applies to --to canvas or moodle" in r.stderr


@pytest.mark.slow
def test_installed_wheel_as_setup_sh_leaves_it(bundle, tmp_path):
    """The bundle's wheel installed into a virtual environment (what setup.sh does,
    without the network: the dependencies come from this environment through a .pth
    file) and run_autograder choosing that environment's python3, with nothing of ours
    on PATH or PYTHONPATH."""
    import site

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site_dir,) = venv.glob("lib/python3*/site-packages")
    (site_dir / "zz_deps.pth").write_text(site.getsitepackages()[0] + "\n")
    ag = layout(tmp_path, bundle, notebook("s003"), "s003")
    (wheel,) = (ag / "source").glob("convpset-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    r = subprocess.run(["bash", str(ag / "run_autograder")], cwd=ag, capture_output=True,
                       text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "CONVPSET_VENV": str(venv),
                            "CONVPSET_AUTOGRADER_DIR": str(ag)})
    assert r.returncode == 0, r.stderr
    assert str(site_dir / "convpset") in r.stdout, r.stdout
    res = json.loads((ag / "results" / "results.json").read_text())
    check_spec(res)
    assert res["score"] == pytest.approx(SIMULATED["s003"]["expected_score"], abs=0.05)


@pytest.mark.slow
def test_russian_and_visibility_from_pset_toml(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    for f in ("pset.toml", "roster.csv"):
        (course / f).write_bytes((EXAMPLE / f).read_bytes())
    with (course / "pset.toml").open("a") as fh:
        fh.write('\n[gradescope]\nvisibility = "after_due_date"\nlang = "ru"\n')
    req = ExportRequest("gradescope-autograder", tmp_path / "g", tmp_path / "out")
    bundle = export(load_course(course), ASSIGNMENT, req).path
    res = run_local(bundle, notebook("s014"), "s014").results
    check_spec(res)
    assert (res["visibility"], res["stdout_visibility"]) == ("after_due_date", "hidden")
    assert res["output"].startswith("<p><strong>Баллы: 21 из 21</strong>")
    assert "Ячейка с данными задачи 1 была изменена" in res["output"]
    assert res["tests"][0]["name"].startswith("Задача 1 (conv_as_matrix)")
    assert res["tests"][0]["output"] == "<code>W_1</code> — верно."


PAYLOADS = ("<img src=x onerror=alert(1)>", "![t](http://tracker.example/p.png)",
            "[click](javascript:alert(1))", "$\\href{javascript:alert(1)}{x}$")


def test_student_text_in_results_json_is_literal():
    """A verdict or note holding a student's exception text or class name reaches
    Gradescope as escaped HTML: no element, image, link or TeX of the student's."""
    from convpset.autograder.results import ProblemResult, StudentResult
    from convpset.integrations.gradescope.results import results_json
    from convpset.problems.base import PartResult

    text = " ".join(PAYLOADS)
    part = PartResult("y", 0.0, 1.0, "format_error", {"en": f"`y` is {text}", "ru": text})
    prob = ProblemResult(1, "conv_as_matrix", 1, (part,), ({"en": f"cell raised {text}",
                                                             "ru": text},))
    r = StudentResult("s001", "conv1", None, "", (prob,), notes=({"en": text, "ru": text},))
    res = results_json(r, "en", visibility="visible", stdout_visibility="hidden",
                       student="Anna (s001)")
    for out in (res["output"], res["tests"][0]["output"]):
        tags = set(re.findall(r"<([a-zA-Z]+)", out))
        assert tags <= {"p", "ul", "li", "code", "strong", "em"}, tags   # no element of theirs
        assert "&lt;img src=x onerror=alert(1)&gt;" in out and "![t](http://tracker" in out
    assert "<code>y</code>" in res["tests"][0]["output"]        # our own markup kept


@pytest.mark.parametrize("kind", ["fifo", "link", "zip_bomb", "too_many"])
def test_local_run_reads_no_more_than_the_caps(bundle, tmp_path, kind):
    """`pset gradescope-run` on a student's upload: a FIFO or a link is refused unread, a
    zip that would unpack past the cap is refused before any entry is written — one
    instructor line, never a hang or a disk filled."""
    import os

    sub = tmp_path / ("s.zip" if kind in ("zip_bomb", "too_many") else "s.ipynb")
    if kind == "fifo":
        os.mkfifo(sub)
    elif kind == "link":
        sub.symlink_to(notebook("s001"))
    else:
        with zipfile.ZipFile(sub, "w", zipfile.ZIP_DEFLATED) as z:
            if kind == "zip_bomb":
                z.writestr("big.ipynb", b"\0" * 60_000_000)      # 60 MB, ~60 KB packed
            else:
                for i in range(1500):
                    z.writestr(f"f{i}.txt", b"x")
    with pytest.raises(CourseError) as err:
        run_local(bundle, sub, "s001", keep=tmp_path / "ag")
    msg = str(err.value)
    assert "\n" not in msg and "not graded" in msg
    written = [p.name for p in (tmp_path / "ag").rglob("*") if p.parent.name == "submission"]
    assert written == []


@pytest.mark.parametrize("odd", [None, "s002", 7, ["s002"]])
def test_group_with_an_odd_user_entry_is_still_a_group(odd):
    """A ``users`` entry that is not an object is still a user of the submission: with a
    roster student beside it the submission is a group (Gradescope scores every member),
    never that student's own."""
    d = _decide([{"sid": "s001", "email": "anna@example.edu"}, odd], "s001")
    assert (d.student_id, d.reason) == (None, "group")
    assert len(d.accounts) == 2 and "anna@example.edu" in d.who


@pytest.mark.slow
def test_file_names_in_a_rejection_are_literal(bundle, tmp_path):
    """A file name is the student's: with a backtick it closed the hand-made code span
    and Markdown made a remote image (a tracking pixel on staff's view) and a link; with
    an ESC it reached the page raw. Each name is now one code span of its own."""
    pixel = "a`![p](p.png)[x](javascript:alert(1))`\x1b[2J.txt"      # no "/": one file
    res = _submit(bundle, tmp_path, {pixel: b"x"})
    _rejected(res, "not_notebook")
    out = res["output"]
    assert "\x1b" not in out and "\\x1b[2J" in out, out
    # the whole name sits inside one code span, fenced by more backticks than it holds
    assert "``a`![p](p.png)[x](javascript:alert(1))`\\x1b[2J.txt``" in out, out
    nb = notebook("s001").read_bytes()
    (tmp_path / "two").mkdir()
    res = _submit(bundle, tmp_path / "two", {"a`![p](p.png)`.ipynb": nb,
                                             "b.ipynb": nb})
    _rejected(res, "several_notebooks")
    assert "``a`![p](p.png)`.ipynb``" in res["output"], res["output"]
