"""The whole nbgrader loop with real nbgrader commands (issue 11).

A temporary exchange root, a course made by ``pset init``, and three students, each in
their own folder with the course's ``student_nbgrader_config.py`` as their nbgrader
config and their own Jupyter data dir (nbgrader's submission cache): release -> each
fetches their own notebook (three different ones; one student under a hub login that
the roster maps to their id) -> validate -> one answers correctly, one makes a named
mistake, one hands in the blank notebook -> submit -> collect -> ``grade`` -> formgrader's
API -> generate/release/fetch feedback -> each student's page names them and no one else.
Plus: ``nbgrader autograde`` (the locked hidden tests restored from the source notebook)
scores the same notebooks exactly as ``grade`` did, and ``nbgrader db student import``
reads the roster ``pset init`` writes.

SLOW: two to four minutes on a shared machine (every nbgrader command starts a Python process; validate
and autograde run Jupyter kernels).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import nbformat
import pytest

from convpset.notebooks.cells import answer_cell_id
from convpset.notebooks.cells import test_cell_id as grade_cell_id
from convpset.notebooks.course import load_course
from convpset.notebooks.simulate import answer_code, expected_score
from convpset.notebooks.variants import problems_for

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
A = "conv1"
COURSE_ID = "loop101"
# roster id -> (first, last, hub login or "", what the student hands in)
STUDENTS = {
    "s001": ("Annabel", "Quist", "annabel.q", "correct"),
    "s002": ("Borislav", "Yarrow", "", "mistakes:0"),
    "s003": ("Veronika", "Zeller", "", "blank"),
}


def _env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
            "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
            "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb"}


def run(*args: str, cwd: Path, home: Path, ok: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), cwd=cwd, env=_env(home), capture_output=True, text=True,
                       timeout=timeout)
    if ok:
        assert r.returncode == 0, f"{args} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


def nbgrader(*args: str, cwd: Path, home: Path, ok: bool = True) -> subprocess.CompletedProcess:
    return run(str(BIN / "nbgrader"), *args, cwd=cwd, home=home, ok=ok)


def login(sid: str) -> str:
    return STUDENTS[sid][2] or sid


def fill(path: Path, course, sid: str, kind: str) -> None:
    """Write the answers a student of ``kind`` types into their fetched notebook."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for p in problems_for(course, course.assignment(A), sid):
            if cell.get("id") == answer_cell_id(p.number):
                head = [ln for ln in cell.source.splitlines() if ln.startswith("#")]
                cell.source = "\n".join([*head, "", answer_code(p, kind, 0)])
    nbformat.write(nb, path)


def page_text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", "", html, flags=re.S)))


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    base = tmp_path_factory.mktemp("loop")
    exchange = base / "exchange"
    staff = base / "staff_home"
    root = base / "course"
    run(str(BIN / "pset"), "init", str(root), "--name", COURSE_ID, "--students", "3",
        cwd=base, home=staff)
    # the roster an instructor edits: real names and one hub login differing from the id
    with (root / "roster.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "first_name", "last_name", "email", "hub_user"])
        for sid, (first, last, hub, _) in STUDENTS.items():
            w.writerow([sid, first, last, f"{first.lower()}@uni.example", hub])
    secret = (root / "pset.toml").read_text(encoding="utf-8")
    run(str(BIN / "pset"), "nbgrader", "config", "--course", str(root), "--exchange-root",
        str(exchange), cwd=base, home=staff)
    assert (root / "pset.toml").read_text(encoding="utf-8") == secret   # secret kept
    run(str(BIN / "pset"), "generate", A, "--course", str(root), cwd=base, home=staff)
    nbgrader("generate_assignment", A, cwd=root, home=staff)
    nbgrader("release_assignment", A, cwd=root, home=staff)

    course = load_course(root)
    folders = {}
    for sid in STUDENTS:
        folder = base / f"student_{sid}"
        folder.mkdir()
        shutil.copy(root / "student_nbgrader_config.py", folder / "nbgrader_config.py")
        nbgrader("fetch_assignment", A, "--student", login(sid), cwd=folder, home=folder)
        folders[sid] = folder
    fetched = {sid: (f / A / f"{A}.ipynb").read_text(encoding="utf-8") for sid, f in folders.items()}
    validate_blank = nbgrader("validate", f"{A}/{A}.ipynb", cwd=folders["s003"], home=folders["s003"],
                              ok=False)
    for sid, (_, _, _, kind) in STUDENTS.items():
        if kind != "blank":
            fill(folders[sid] / A / f"{A}.ipynb", course, sid, kind)
    validate_answered = {sid: nbgrader("validate", f"{A}/{A}.ipynb", cwd=folders[sid],
                                       home=folders[sid], ok=False)
                         for sid in ("s001", "s002")}
    for sid, folder in folders.items():
        nbgrader("submit", A, "--student", login(sid), cwd=folder, home=folder)
    # every student here is the one unix user running the test: ownership cannot be
    # checked (tests/test_exchange_owners.py runs real users), so collect by name
    nbgrader("collect", A, "--ExchangeCollect.check_owner=False", cwd=root, home=staff)
    graded = run(str(BIN / "grade"), str(root / "submitted"), "--course", str(root), "--jobs", "2",
                 cwd=root, home=staff)
    nbgrader("generate_feedback", A, cwd=root, home=staff)
    nbgrader("release_feedback", A, cwd=root, home=staff)
    for sid, folder in folders.items():
        nbgrader("fetch_feedback", A, "--student", login(sid), cwd=folder, home=folder)
    return {"base": base, "root": root, "exchange": exchange, "staff": staff,
            "folders": folders, "fetched": fetched, "validate_blank": validate_blank,
            "validate_answered": validate_answered, "graded": graded, "course": course}


def expected(course, sid: str) -> float:
    kind = STUDENTS[sid][3]
    if kind == "blank":
        return 0.0
    return expected_score(problems_for(course, course.assignment(A), sid), kind, 0)


def results(loop) -> dict:
    return json.loads((loop["root"] / "grades" / A / "results.json").read_text(encoding="utf-8"))


def journal(loop) -> dict[str, dict[str, float]]:
    """student -> {grade cell id: our score}, from grade's journal (last entry wins)."""
    out: dict[str, dict[str, float]] = {}
    path = loop["root"] / "grades" / A / "journal.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        out[r["student_id"]] = {grade_cell_id(p["number"], x["part"]): x["score"]
                                for p in r["problems"] for x in p["parts"]}
    return out


def test_each_student_fetches_their_own_notebook(loop):
    course = loop["course"]
    texts = loop["fetched"]
    assert len(set(texts.values())) == 3
    for sid, text in texts.items():
        first, last = STUDENTS[sid][:2]
        assert f"{first} {last} ({sid})" in text
        others = [s for s in STUDENTS if s != sid]
        assert not any(o in text for o in others) and "template" not in text
        nb = nbformat.reads(text, as_version=4)
        own = problems_for(course, course.assignment(A), sid)
        data = [c.source for c in nb.cells if c.get("id", "").startswith("data_")]
        assert data == [p.data_code() for p in own]
        for marker in ("BEGIN SOLUTION", "HIDDEN TESTS", "_pset_score", "nbgrader_bridge"):
            assert marker not in text
    # answers, keys and the course secret never enter the exchange
    secret = course.secret.decode()
    for f in loop["exchange"].rglob("*"):
        if f.is_file():
            body = f.read_text(encoding="utf-8", errors="replace")
            assert secret not in body and "_pset_score" not in body and "BEGIN SOLUTION" not in body


def test_exchange_layout_and_permissions(loop):
    personal = loop["exchange"] / COURSE_ID / "personal" / A
    assert oct(personal.stat().st_mode & 0o777) == "0o711"      # the class cannot be listed
    assert (personal / "annabel.q").is_symlink()
    outbound = loop["exchange"] / COURSE_ID / "outbound" / A / f"{A}.ipynb"
    text = outbound.read_text(encoding="utf-8")
    assert "student_nbgrader_config.py" in text and not any(s in text for s in STUDENTS)


def test_user_not_on_roster_gets_a_clear_error_and_a_notice_page(loop, tmp_path):
    """The command line says why and exits non-zero; what the Assignments tab (which
    ignores a failed fetch) shows is the one-page notebook the fetch left: why, and what
    to do. `grade` never scores that page as work."""
    for args in (("--student", "mallory"), ()):      # () : nbgrader's own user lookup
        folder = tmp_path / f"mallory{len(args)}"
        folder.mkdir()
        shutil.copy(loop["root"] / "student_nbgrader_config.py", folder / "nbgrader_config.py")
        r = nbgrader("fetch_assignment", A, *args, cwd=folder, home=folder, ok=False)
        assert r.returncode != 0
        assert "not on the course roster" in r.stderr
        [page] = (folder / A).iterdir()
        assert page.name == f"{A}.ipynb"
        nb = nbformat.read(page, as_version=4)
        [cell] = nb.cells
        assert cell.cell_type == "markdown" and "no personal notebook for you yet" in cell.source
        assert "Fetch" in cell.source and f"delete the folder **{A}**" in cell.source
        assert not any(s in page.read_text(encoding="utf-8") for s in STUDENTS)
    # handed in anyway, as a roster student's file: flagged, zero, never graded as work
    root = tmp_path / "course"
    shutil.copytree(loop["root"], root, ignore=shutil.ignore_patterns("grades", "autograded"))
    shutil.copy(page, root / "submitted" / "s002" / A / f"{A}.ipynb")
    run(str(BIN / "grade"), str(root / "submitted"), "--course", str(root), "--no-nbgrader",
        cwd=root, home=loop["staff"])
    res = json.loads((root / "grades" / A / "results.json").read_text(encoding="utf-8"))["s002"]
    assert res["score"] == 0 and "fetch_notice" in res["extra_data"]["flags"]
    assert "not work" in json.dumps(res, ensure_ascii=False)


def test_validate_reports_missing_answers_then_succeeds(loop):
    blank = loop["validate_blank"].stdout
    assert "VALIDATION FAILED" in blank and "Success" not in blank
    nb = nbformat.reads(loop["fetched"]["s003"], as_version=4)
    parts = [c.id.split("_", 2)[2] for c in nb.cells if c.get("id", "").startswith("test_")]
    assert len(parts) == 12
    # one line per missing answer: no traceback, no frames, no exception class
    errors = [ln.strip() for ln in blank.splitlines() if "still `...`" in ln]
    assert sorted(errors) == sorted(f"✗ {part}: still `...` — put your answer here"
                                    for part in parts), blank[-3000:]
    assert "Traceback" not in blank and "AnswerFormatError" not in blank and "File " not in blank
    for sid, r in loop["validate_answered"].items():     # a wrong value is still well-formed
        assert "Success! Your notebook passes all the tests." in r.stdout, (sid, r.stdout[-2000:])


def test_collect_files_hub_login_under_roster_id(loop):
    submitted = loop["root"] / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted(STUDENTS)
    for sid in STUDENTS:
        assert (submitted / sid / A / "timestamp.txt").is_file()


def test_grade_scores_and_counts(loop):
    res = results(loop)
    course = loop["course"]
    assert res["s001"]["score"] == pytest.approx(21.0)
    assert 0 < res["s002"]["score"] < 21
    assert res["s002"]["score"] == pytest.approx(expected(course, "s002"), abs=0.011)
    assert res["s003"]["score"] == 0.0
    assert not any(res[s]["extra_data"]["flags"] for s in STUDENTS)
    out = loop["graded"].stdout
    assert "wrote 36 grades for 3 submitting students" in out, out[-2000:]


def test_formgrader_api_shows_what_grade_decided(loop):
    from nbgrader.api import Gradebook
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import parse_utc

    root = loop["root"]
    res = results(loop)
    api = NbGraderAPI(coursedir=CourseDirectory(root=str(root), course_id=COURSE_ID))
    subs = {s["student"]: s for s in api.get_submissions(A)}
    assert sorted(subs) == sorted(STUDENTS)
    for sid, (first, last, _, _) in STUDENTS.items():
        s = subs[sid]
        assert s["autograded"] and s["submitted"], s
        assert s["score"] == pytest.approx(res[sid]["score"], abs=0.011)
        assert s["max_score"] == pytest.approx(21.0)
        assert s["needs_manual_grade"] is False
        assert (s["first_name"], s["last_name"]) == (first, last)
        ts = parse_utc((root / "submitted" / sid / A / "timestamp.txt").read_text().strip())
        assert s["timestamp"] == ts.isoformat()
        assert (root / "autograded" / sid / A / f"{A}.ipynb").is_file()
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sid, (first, _, _, _) in STUDENTS.items():
            assert gb.find_student(sid).email == f"{first.lower()}@uni.example"
            sub = gb.find_submission(A, sid)
            by_cell = {g.name: g for nb in sub.notebooks for g in nb.grades}
            ours = journal(loop)[sid]
            assert sorted(by_cell) == sorted(ours)
            for name, score in ours.items():
                assert by_cell[name].score == pytest.approx(score, abs=0.011), (sid, name)
            assert sum(g.max_score for g in by_cell.values()) == pytest.approx(21.0)
            assert not any(g.needs_manual_grade for g in by_cell.values())


def test_feedback_reaches_each_student_alone(loop):
    res = results(loop)
    for sid, folder in loop["folders"].items():
        pages = list((folder / A / "feedback").rglob(f"{A}.html"))
        assert len(pages) == 1, (sid, pages)
        html = pages[0].read_text(encoding="utf-8")
        text = page_text(html)
        first, last = STUDENTS[sid][:2]
        assert f"{first} {last} ({sid})" in text
        for other, (ofirst, olast, ohub, _) in STUDENTS.items():
            if other != sid:
                assert other not in text and ofirst not in text and olast not in text
                assert not ohub or ohub not in text
        for marker in ("_pset_score", "nbgrader_bridge", "HIDDEN TESTS", "BEGIN SOLUTION",
                       "Worked solution"):
            assert marker not in html, (sid, marker)
        total = f"Score: {res[sid]['score']:g} / 21"
        assert total in text, (sid, total)
        flat = " ".join(text.split())         # verdicts are wrapped into lines
        for t in res[sid]["tests"]:           # every verdict of `grade`, word for word
            want = " ".join(unescape(t["output"]).split())
            assert want in flat, (sid, t["output"][:80])
    # the named mistake reaches the student who made it
    mistakes = [t for t in res["s002"]["tests"] if t["status"] != "passed"]
    assert mistakes and any("flipped" in t["output"] or "depth" in t["output"]
                            or "rounded" in t["output"] for t in mistakes)


def test_nbgrader_autograde_agrees_with_grade(loop, tmp_path):
    """The same collected notebooks under real `nbgrader autograde` (hidden tests restored
    from the source notebook; the personal test cells' format checks replaced)."""
    from nbgrader.api import Gradebook

    copy = tmp_path / "course"
    shutil.copytree(loop["root"], copy, ignore=shutil.ignore_patterns("autograded", "feedback"))
    out = nbgrader("autograde", A, "--force", cwd=copy, home=loop["staff"])
    log = out.stdout + out.stderr
    assert "has changed" not in log and "checksum" not in log, log[-3000:]
    res = results(loop)
    # the autograded notebook is the one `grade` wrote: same cells, same verdicts, no
    # hidden test code (formgrader and generate_feedback read this file)
    for sid in STUDENTS:
        theirs = nbformat.read(copy / "autograded" / sid / A / f"{A}.ipynb", as_version=4)
        ours = nbformat.read(loop["root"] / "autograded" / sid / A / f"{A}.ipynb", as_version=4)
        text = nbformat.writes(theirs)
        for marker in ("HIDDEN TESTS", "nbgrader_bridge", "_pset_score", "BEGIN SOLUTION"):
            assert marker not in text, (sid, marker)

        def shown(nb):
            return [(c.id, c.source, "".join(o.get("text", "") for o in c.get("outputs", [])
                                             if o.output_type == "stream"))
                    for c in nb.cells if c.id.startswith(("test_", "pset_feedback"))]
        assert shown(theirs) == shown(ours), sid
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}") as gb:
        for sid in STUDENTS:
            sub = gb.find_submission(A, sid)
            theirs = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
            assert sub.score == pytest.approx(res[sid]["score"], abs=0.011), sid
            for name, score in journal(loop)[sid].items():
                assert theirs[name] == pytest.approx(score, abs=0.011), (sid, name)


def test_roster_import_and_sync(tmp_path):
    """`nbgrader db student import` reads the roster `pset init` writes; `pset nbgrader
    roster` keeps a gradebook's students in step with it."""
    from nbgrader.api import Gradebook

    course = tmp_path / "c"
    home = tmp_path / "home"
    run(str(BIN / "pset"), "init", str(course), "--students", "4", cwd=tmp_path, home=home)
    nbgrader("db", "student", "import", "roster.csv", cwd=course, home=home)
    listed = nbgrader("db", "student", "list", cwd=course, home=home).stdout
    assert "There are 4 students" in listed and "s004 (Kuznetsov, Gleb) -- s004@example.edu" in listed
    (course / "gradebook.db").unlink()
    run(str(BIN / "pset"), "nbgrader", "roster", "--course", str(course), cwd=tmp_path, home=home)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert sorted(s.id for s in gb.students) == ["s001", "s002", "s003", "s004"]
        assert gb.find_student("s002").email == "s002@example.edu"


# ------------------------------------------------------------- a real Jupyter server
class Server:
    """``jupyter server`` with nbgrader's server extensions (the JupyterLab Assignments
    tab, Validate button and formgrader talk to these handlers)."""

    def __init__(self, root: Path, home: Path) -> None:
        import secrets
        import socket
        import time

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = secrets.token_hex(16)
        self.log = (home / "server.log").open("w")
        self.proc = subprocess.Popen(
            [str(BIN / "jupyter"), "server", "--no-browser", "--allow-root", f"--port={self.port}",
             "--ip=127.0.0.1", f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={root}"],
            cwd=root, env=_env(home), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.get("/api/status")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError((home / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)

    def _req(self, path: str, data: dict | None = None):
        import urllib.parse
        import urllib.request

        url = f"http://127.0.0.1:{self.port}{path}"
        body = None if data is None else urllib.parse.urlencode(data).encode()
        req = urllib.request.Request(url, data=body, method="GET" if data is None else "POST",
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read().decode() or "null")

    def get(self, path: str):
        return self._req(path)

    def post(self, path: str, data: dict):
        return self._req(path, data)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def test_jupyter_server_assignments_tab_fetches_own_notebook(tmp_path):
    """The Assignments tab's server API (`/assignments`, `/assignments/fetch`, `/submit`)
    and the Validate button's (`/assignments/validate`) with the student config: the
    server's user (no --student there: nbgrader's own user lookup) is mapped by the
    roster's hub_user column to their own notebook."""
    import getpass

    staff, home = tmp_path / "staff", tmp_path / "student"
    root, exchange = tmp_path / "course", tmp_path / "exchange"
    run(str(BIN / "pset"), "init", str(root), "--name", "tab101", "--students", "2",
        cwd=tmp_path, home=staff)
    me = getpass.getuser()
    (root / "roster.csv").write_text(
        "id,first_name,last_name,email,hub_user\n"
        f"s001,Anna,Ivanova,a@x,{me}\ns002,Boris,Petrov,b@x,\n", encoding="utf-8")
    run(str(BIN / "pset"), "nbgrader", "config", "--course", str(root), "--exchange-root",
        str(exchange), cwd=tmp_path, home=staff)
    run(str(BIN / "pset"), "generate", A, "--course", str(root), cwd=tmp_path, home=staff)
    nbgrader("generate_assignment", A, cwd=root, home=staff)
    # a student added to the roster after `pset generate`: release refuses, naming them
    roster = (root / "roster.csv").read_text(encoding="utf-8")
    (root / "roster.csv").write_text(roster + "s009,Late,Comer,l@x,\n", encoding="utf-8")
    r = nbgrader("release_assignment", A, cwd=root, home=staff, ok=False)
    assert r.returncode != 0 and "s009" in r.stderr and f"pset generate {A}" in r.stderr
    assert not (exchange / "tab101" / "personal" / A).exists()
    (root / "roster.csv").write_text(roster, encoding="utf-8")
    nbgrader("release_assignment", A, cwd=root, home=staff)
    home.mkdir()
    shutil.copy(root / "student_nbgrader_config.py", home / "nbgrader_config.py")
    server = Server(home, home)
    try:
        listed = server.get("/assignments?course_id=tab101")
        assert listed["success"], listed
        [released] = listed["value"]
        assert (released["assignment_id"], released["status"]) == (A, "released")
        fetched = server.post("/assignments/fetch", {"course_id": "tab101", "assignment_id": A})
        assert fetched["success"] and fetched["value"][0]["status"] == "fetched", fetched
        text = (home / A / f"{A}.ipynb").read_text(encoding="utf-8")
        assert "Anna Ivanova (s001)" in text and "s002" not in text
        check = server.post("/assignments/validate", {"path": f"{A}/{A}.ipynb"})
        assert check["success"], check
        failed = check["value"]["failed"]
        assert len(failed) == 12, failed
        for f in failed:                      # one line, no traceback
            assert "still `...`" in f["error"] and "\n" not in f["error"].strip(), f
            assert "Traceback" not in f["error"] and f["source"].count("\n") == 1, f
        submitted = server.post("/assignments/submit", {"course_id": "tab101", "assignment_id": A})
        assert submitted["success"], submitted
    finally:
        server.stop()
    inbound = list((exchange / "tab101" / "inbound").iterdir())
    assert len(inbound) == 1 and inbound[0].name.startswith(f"{me}+{A}+")
    nbgrader("collect", A, cwd=root, home=staff)
    assert [p.name for p in (root / "submitted").iterdir()] == ["s001"]


def test_formgrader_api_over_http(loop):
    """formgrader's own HTTP API (what its pages call) on the graded course."""
    res = results(loop)
    server = Server(loop["root"], loop["staff"])
    try:
        subs = {s["student"]: s for s in server.get(f"/formgrader/api/submissions/{A}")}
        assert sorted(subs) == sorted(STUDENTS)
        for sid, s in subs.items():
            assert s["autograded"] and not s["needs_manual_grade"]
            assert s["score"] == pytest.approx(res[sid]["score"], abs=0.011)
        nbs = server.get(f"/formgrader/api/submitted_notebooks/{A}/{A}")
        assert sorted(n["student"] for n in nbs) == sorted(STUDENTS)
        assert all(not n["needs_manual_grade"] and n["max_score"] == 21 for n in nbs)
    finally:
        server.stop()


def test_unrelease_removes_personal_notebooks_and_release_works_again(loop, tmp_path):
    """formgrader's Unrelease is `nbgrader list --remove`: it removes what release put in
    the exchange (outbound and personal notebooks), and Release works again without
    --force (tests/test_nbgrader_browser.py clicks the same buttons)."""
    root, exchange = tmp_path / "course", tmp_path / "exchange"
    shutil.copytree(loop["root"], root)
    shutil.copytree(loop["exchange"], exchange, symlinks=True)
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text(encoding="utf-8").replace(
        str(loop["exchange"]), str(exchange)), encoding="utf-8")
    personal = exchange / COURSE_ID / "personal" / A
    assert personal.is_dir()
    again = nbgrader("release_assignment", A, cwd=root, home=loop["staff"], ok=False)
    assert again.returncode != 0 and "already released" in again.stderr
    nbgrader("list", A, "--remove", cwd=root, home=loop["staff"])
    assert not (exchange / COURSE_ID / "outbound" / A).exists() and not personal.exists()
    nbgrader("release_assignment", A, cwd=root, home=loop["staff"])
    assert (personal / "s001" / f"{A}.ipynb").is_file()
    # an exchange unreleased by plain nbgrader (personal notebooks left behind)
    shutil.rmtree(exchange / COURSE_ID / "outbound" / A)
    nbgrader("release_assignment", A, cwd=root, home=loop["staff"])
    assert (exchange / COURSE_ID / "outbound" / A / f"{A}.ipynb").is_file()


def test_regrade_makes_feedback_again_and_outsiders_stay_out_of_the_gradebook(loop, tmp_path):
    """A grade change removes that student's generated feedback (nbgrader's
    generate_feedback skips an existing one without --force), so the README's plain
    `nbgrader generate_feedback` shows the new grade; a graded id the roster lacks is
    never written to the gradebook."""
    from nbgrader.api import Gradebook

    root = tmp_path / "course"
    shutil.copytree(loop["root"], root)
    assert (root / "feedback" / "s003" / A).is_dir() and (root / "feedback" / "s001" / A).is_dir()
    fill(root / "submitted" / "s003" / A / f"{A}.ipynb", loop["course"], "s003", "correct")
    outsider = root / "submitted" / "mallory" / A
    outsider.mkdir(parents=True)
    shutil.copy(root / "submitted" / "s001" / A / f"{A}.ipynb", outsider / f"{A}.ipynb")
    graded = run(str(BIN / "grade"), str(root / "submitted"), "--course", str(root), "--jobs", "2",
                 cwd=root, home=loop["staff"])
    assert "feedback of 1 student(s) was removed" in graded.stdout, graded.stdout[-2000:]
    assert "not on the roster were not written to the gradebook" in graded.stdout
    assert "mallory" in graded.stdout
    assert not (root / "feedback" / "s003" / A).exists()
    assert (root / "feedback" / "s001" / A).is_dir()          # unchanged: kept
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert sorted(s.id for s in gb.students) == sorted(STUDENTS)
    nbgrader("generate_feedback", A, cwd=root, home=loop["staff"])
    [page] = (root / "feedback" / "s003" / A).glob("*.html")
    assert "Score: 21 / 21" in page_text(page.read_text(encoding="utf-8"))
