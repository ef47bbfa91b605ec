"""The nbgrader loop as people click it (issue 24): real JupyterLab with nbgrader's lab
extension (0.9.x) for each student, formgrader for the instructor, all in headless
Chromium, clicking (tests/cdp.py: real mouse presses at each button's centre).

- A roster student (anna, unix user ``cpx_anna``) and an outsider (``cpx_mallory``, on
  no roster) each run their own JupyterLab as their own unix user, with their own
  nbgrader cache and Jupyter config (Formgrader and Create Assignment switched off as the
  README's admin notes say), from the world-readable Debian-python venv of
  tests/test_exchange_owners.py.
- The instructor (root) clicks formgrader's Release, Unrelease, Release: the exchange
  holds exactly what the release put there, and nothing after the unrelease.
- anna fetches her own notebook, clicks Validate on the blank one (one line per missing
  answer), answers, clicks Submit. mallory clicks Fetch and gets the notice page saying
  why and what to do.
- The instructor clicks Collect, Autograde (no checksum warnings; the autograded
  notebook shows our named verdicts, no hidden test code), Generate Feedback and Release
  Feedback; anna clicks Fetch Feedback and reads her page.

Screenshots of what each sees go to docs/screenshots/ (the committed ones come from this
test: ``CONVPSET_SCREENSHOTS=docs/screenshots pytest tests/test_nbgrader_browser.py``).
Each step is a function of :class:`Loop` so that a further step (a manual score typed in
formgrader) is one more call in :func:`clicked`.

SLOW: about two minutes (five Jupyter servers start; autograde runs a kernel).
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.browser import chromium
from tests.cdp import Browser
from tests.test_exchange_owners import (
    VENV,
    _ensure_user,
    code_copy,
    require_unix_users,
    staff,
)
from tests.test_nbgrader_loop import fill, page_text

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
A = "conv1"
COURSE_ID = "clicks101"
ANNA, MALLORY = "cpx_anna", "cpx_mallory"
# the README's admin notes: what a student's JupyterLab does not show
STUDENT_LAB_OFF = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                   "@jupyter/nbgrader:course-list")
QUIET_LAB = ("@jupyterlab/apputils-extension:announcements",)   # no news pop-up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


class Lab:
    """One ``jupyter lab`` server (its own process, user, config and cache)."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        args = [*cmd, "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={cwd}",
                "--ServerApp.port_retries=0"]
        with log.open("w") as out:
            self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def ready(self) -> Lab:
        """Wait until the server answers (servers start side by side, then this)."""
        log = self.log
        deadline = time.monotonic() + 180
        while not _up(f"{self.url}/api/status?token={self.token}"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(log.read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        return self

    def at(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.url}{path}{sep}token={self.token}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def _page_config(folder: Path, disabled: tuple[str, ...]) -> None:
    """What ``jupyter labextension disable --level=user NAME`` writes."""
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    (folder / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {name: True for name in disabled}}), encoding="utf-8")


class StudentLab:
    """A unix user's own JupyterLab, in their own working folder."""

    def __init__(self, login: str, run_id: str, config: Path, code: Path, logs: Path) -> None:
        _ensure_user(login)
        self.login = login
        pw = pwd.getpwnam(login)
        self.work = Path(pw.pw_dir) / f"convpset-lab-{run_id}"
        self.work.mkdir(parents=True)
        shutil.copy(config, self.work / "nbgrader_config.py")
        conf = self.work / ".jupyter-config"
        _page_config(conf, STUDENT_LAB_OFF + QUIET_LAB)
        (self.work / ".jupyter-data").mkdir()
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(self.work)], check=True,
                       timeout=60)
        env = [f"HOME={pw.pw_dir}", f"JUPYTER_DATA_DIR={self.work / '.jupyter-data'}",
               f"JUPYTER_CONFIG_DIR={conf}", f"PATH={VENV / 'bin'}:/usr/bin:/bin",
               f"PYTHONPATH={code}", "LANG=C.UTF-8", f"USER={login}", f"LOGNAME={login}",
               f"JUPYTER_RUNTIME_DIR={self.work / '.jupyter-runtime'}"]
        self.lab = Lab(["runuser", "-u", login, "--", "env", "-i", *env,
                        str(VENV / "bin" / "jupyter-lab")], dict(os.environ), self.work,
                       logs / f"lab-{login}.log")


class Loop:
    """The course, the servers and the browsers; one method per thing someone clicks."""

    def __init__(self, base: Path, shots: Path) -> None:
        self.base, self.shots = base, shots
        self.shared = Path(tempfile.mkdtemp(prefix="convpset-clicks-", dir="/var/tmp"))
        os.chmod(self.shared, 0o755)
        self.exchange = self.shared / "exchange"
        self.exchange.mkdir()
        os.chmod(self.exchange, 0o777)
        self.run_id = self.shared.name.rsplit("-", 1)[-1]
        self.code = code_copy(self.shared / "src")
        self.home = base / "staff_home"
        self.root = base / "course"
        self.logs = base / "logs"
        self.logs.mkdir()
        self.browsers: list[Browser] = []
        self.labs: list[Lab] = []
        self.students: dict[str, StudentLab] = {}
        self.seen: dict[str, object] = {}

    # ------------------------------------------------------------------ setup
    def course(self) -> None:
        staff("pset", "init", str(self.root), "--name", COURSE_ID, "--students", "2",
              cwd=self.base, home=self.home)
        with (self.root / "roster.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "first_name", "last_name", "email", "hub_user"])
            w.writerow(["s001", "Anna", "Quill", "anna@uni.example", ANNA])
            w.writerow(["s002", "Boris", "Yew", "boris@uni.example", "cpx_boris"])
        staff("pset", "nbgrader", "config", "--course", str(self.root), "--exchange-root",
              str(self.exchange), cwd=self.base, home=self.home)
        staff("pset", "generate", A, "--course", str(self.root), cwd=self.base, home=self.home)
        staff("nbgrader", "generate_assignment", A, cwd=self.root, home=self.home)
        (self.exchange / COURSE_ID).mkdir()
        (self.exchange / COURSE_ID / "inbound").mkdir()
        os.chmod(self.exchange / COURSE_ID / "inbound", 0o1777)

    def browser(self, name: str) -> Browser:
        b = Browser(self.binary, self.base / f"chromium-{name}")
        self.browsers.append(b)
        return b

    def shot(self, b: Browser, name: str) -> None:
        b.screenshot(self.shots / f"nbgrader-{name}.png")

    def servers(self) -> None:
        self.binary = chromium()
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               "HOME": str(self.home), "JUPYTER_CONFIG_DIR": str(self.home / ".jupyter"),
               "JUPYTER_DATA_DIR": str(self.home / ".local" / "share" / "jupyter")}
        _page_config(self.home / ".jupyter", QUIET_LAB)
        self.staff_lab = Lab([str(BIN / "jupyter-lab"), "--allow-root"], env, self.root,
                             self.logs / "lab-staff.log")
        self.labs.append(self.staff_lab)
        for login in (ANNA, MALLORY):
            s = StudentLab(login, self.run_id, self.root / "student_nbgrader_config.py",
                           self.code, self.logs)
            self.students[login] = s
            self.labs.append(s.lab)
        for lab in self.labs:
            lab.ready()
        self.fg = self.browser("staff")
        self.fg.goto(self.staff_lab.at("/formgrader"),
                     ready=f"!!{self.fg.find('tr', A)}")

    # ------------------------------------------------------------------ formgrader
    def _modal(self, b: Browser, words: str) -> str:
        """Wait for formgrader's result dialog, return its text and close it."""
        b.wait(f"!!{b.find('.modal-dialog', words)}", what=f"a dialog saying {words!r}")
        text = b.js(f"{b.find('.modal-dialog', words)}.textContent")
        time.sleep(0.5)          # the dialog's fade-in ends before its button takes clicks
        b.click(".modal-dialog .modal-footer button")
        b.wait("!document.querySelector('.modal.in, .modal.show')", 30, what="dialog closed")
        time.sleep(0.5)
        return text

    def release_unrelease_release(self) -> None:
        fg, personal = self.fg, self.exchange / COURSE_ID / "personal" / A
        fg.click("td.release a")
        self.seen["release1"] = self._modal(fg, "released")
        self.seen["after_release"] = (personal / "s001" / f"{A}.ipynb").is_file()
        fg.wait(f"!!{fg.find('tr', 'released')}", what="status released")
        fg.click("td.release a")
        self.seen["unrelease"] = self._modal(fg, "unreleased")
        self.seen["after_unrelease"] = sorted(
            str(p.relative_to(self.exchange)) for p in (self.exchange / COURSE_ID).rglob("*")
            if "inbound" not in p.parts)
        fg.wait(f"!!{fg.find('tr', 'draft')}", what="status draft")
        fg.click("td.release a")
        self.seen["release2"] = self._modal(fg, "released")
        self.seen["after_release2"] = (personal / "s001" / f"{A}.ipynb").is_file()
        fg.wait(f"!!{fg.find('tr', 'released')}", what="status released again")
        self.shot(fg, "formgrader-released")

    def collect_and_autograde(self) -> None:
        fg = self.fg
        fg.click("td.collect a")
        self.seen["collect"] = self._modal(fg, "collected")
        fg.goto(self.staff_lab.at(f"/formgrader/manage_submissions/{A}"),
                ready=f"!!{fg.find('td.autograde a')}")
        fg.click("td.autograde a")
        self.seen["autograde"] = self._modal(fg, "autograded")
        fg.wait(f"!!{fg.find('tr', 's001')} && !document.querySelector('.modal.in')")
        self.shot(fg, "formgrader-autograded")
        # the submission as formgrader shows it for grading
        with urllib.request.urlopen(self.staff_lab.at(f"/formgrader/api/submission/{A}/s001"),
                                    timeout=60) as r:
            sub = json.loads(r.read())
        self.seen["submission"] = sub
        with urllib.request.urlopen(self.staff_lab.at(
                f"/formgrader/api/submitted_notebooks/{A}/{A}"), timeout=60) as r:
            [nb] = [n for n in json.loads(r.read()) if n["student"] == "s001"]
        fg.goto(self.staff_lab.at(f"/formgrader/submissions/{nb['id']}"),
                ready="document.querySelectorAll('.cell').length > 5")
        self.seen["formgrader_notebook"] = fg.text()
        self.seen["formgrader_html"] = fg.js("document.body.innerHTML")
        fg.js("(() => { const c = [...document.querySelectorAll('.cell')].find("
              "e => e.innerText.includes('W_1:')); if (c) c.scrollIntoView(); })()")
        self.shot(fg, "formgrader-verdicts")

    def feedback(self) -> None:
        fg = self.fg
        fg.goto(self.staff_lab.at("/formgrader"), ready=f"!!{fg.find('td.generate-feedback a')}")
        fg.click("td.generate-feedback a")
        self.seen["generate_feedback"] = self._modal(fg, "feedback")
        fg.click("td.release-feedback a")
        self.seen["release_feedback"] = self._modal(fg, "feedback")

    # ------------------------------------------------------------------ students
    def open_assignments(self, login: str, name: str) -> Browser:
        lab = self.students[login].lab
        b = self.browser(name)
        b.goto(lab.at("/lab"), ready=f"!!{b.find('.lm-MenuBar-itemLabel', 'Nbgrader')}")
        b.click(".lm-MenuBar-itemLabel", "Nbgrader")
        b.wait(f"!!{b.find('.lm-Menu-itemLabel', 'Assignment List')}")
        self.seen[f"menu_{login}"] = b.js(
            "[...document.querySelectorAll('.lm-Menu-itemLabel')].map(e => e.innerText)")
        self.shot(b, f"student-menu-{login.removeprefix('cpx_')}")
        b.click(".lm-Menu-itemLabel", "Assignment List")
        b.wait(f"!!{b.find('#released_assignments_list button', 'Fetch')}",
               what="the Fetch button of conv1")
        return b

    def fetch(self, login: str, name: str) -> Browser:
        b = self.open_assignments(login, name)
        b.click("#released_assignments_list button", "Fetch")
        b.click("#fetched_assignments_list a.assignment-notebooks-link", A)   # unfold it
        b.wait(f"!!{b.find('#fetched_assignments_list .collapse button', 'Validate')}",
               what="the fetched notebook listed")
        return b

    def anna_fetch_validate_submit(self) -> None:
        b = self.fetch(ANNA, "anna")
        self.shot(b, "student-fetched")
        self.seen["anna_notebook"] = (self.students[ANNA].work / A / f"{A}.ipynb").read_text(
            encoding="utf-8")
        b.click("#fetched_assignments_list button", "Validate")
        b.wait(f"!!{b.find('.jp-Dialog', 'failed')}", 240, what="the validation dialog")
        self.seen["validate"] = b.js(f"{b.find('.jp-Dialog-content')}.innerText")
        self.shot(b, "student-validate-blank")
        b.click(".jp-Dialog-footer button")
        b.wait("!document.querySelector('.jp-Dialog')", 30)
        from convpset.notebooks.course import load_course

        work = self.students[ANNA].work
        fill(work / A / f"{A}.ipynb", load_course(self.root), "s001", "mistakes:0")
        pw = pwd.getpwnam(ANNA)
        os.chown(work / A / f"{A}.ipynb", pw.pw_uid, pw.pw_gid)
        b.click("#fetched_assignments_list button", "Submit")
        b.wait(f"!!{b.find('#submitted_assignments_list', A)}", what="the submission listed")
        self.shot(b, "student-submitted")
        # her notebook as she works in it: the setup cell collapsed, a short self-check
        b.click("#fetched_assignments_list a.assignment-notebooks-link", A)   # unfold again
        b.click("#fetched_assignments_list .collapse a", A)
        b.wait(f"!!{b.find('.jp-Notebook .jp-InputPlaceholder')}", 120,
               what="the notebook open, its setup cell collapsed")
        self.seen["anna_lab_cells"] = b.js(
            "[...document.querySelectorAll('.jp-Notebook .jp-Cell')].length")
        self.shot(b, "student-notebook")
        b.click(".lm-TabBar-tabLabel", "Assignments")
        self.anna = b

    def mallory_fetch(self) -> None:
        b = self.fetch(MALLORY, "mallory")
        self.seen["mallory_files"] = sorted(
            p.name for p in (self.students[MALLORY].work / A).iterdir())
        b.click("#fetched_assignments_list .collapse a", A)
        b.wait(f"!!{b.find('.jp-MarkdownOutput', 'no personal notebook')}", 120,
               what="the notice page open")
        self.seen["mallory_page"] = b.js(f"{b.find('.jp-MarkdownOutput')}.innerText")
        self.shot(b, "outsider-fetch-notice")

    def anna_fetch_feedback(self) -> None:
        b = self.anna
        b.click("#refresh_assignments_list")
        b.wait(f"!!{b.find('#submitted_assignments_list button', 'Fetch Feedback')}")
        b.click("#submitted_assignments_list button", "Fetch Feedback")
        pages = self.students[ANNA].work / A / "feedback"
        deadline = time.monotonic() + 120
        while not list(pages.rglob(f"{A}.html")) and time.monotonic() < deadline:
            time.sleep(0.5)
        [page] = pages.rglob(f"{A}.html")
        self.seen["anna_feedback"] = page.read_text(encoding="utf-8")
        rel = page.relative_to(self.students[ANNA].work)
        b.goto(self.students[ANNA].lab.at(f"/files/{rel}"),
               ready="document.body && document.body.innerText.includes('Score')")
        b.js("(() => { const e = [...document.querySelectorAll('pre')].find("
             "p => p.innerText.includes('W_1:')); if (e) e.scrollIntoView(); })()")
        self.shot(b, "student-feedback")

    def close(self) -> None:
        for b in self.browsers:
            b.close()
        for lab in self.labs:
            lab.stop()
        shutil.rmtree(self.shared, ignore_errors=True)
        for s in self.students.values():
            shutil.rmtree(s.work, ignore_errors=True)


@pytest.fixture(scope="module")
def clicked(tmp_path_factory):
    """Everything clicked once, in the order a course runs it; the tests read ``seen``."""
    require_unix_users("their own JupyterLab")
    base = tmp_path_factory.mktemp("clicks")
    shots = Path(os.environ.get("CONVPSET_SCREENSHOTS") or base / "screenshots")
    loop = Loop(base, shots)
    try:
        loop.course()
        loop.servers()
        loop.release_unrelease_release()
        loop.anna_fetch_validate_submit()
        loop.mallory_fetch()
        loop.collect_and_autograde()
        loop.feedback()
        loop.anna_fetch_feedback()
        yield loop
    finally:
        loop.close()


def test_formgrader_release_unrelease_release(clicked):
    seen = clicked.seen
    assert "Successfully released" in seen["release1"] and seen["after_release"]
    assert "Successfully unreleased" in seen["unrelease"], seen["unrelease"]
    # nothing of the assignment is left in the exchange after the unrelease
    assert not [p for p in seen["after_unrelease"] if A in p], seen["after_unrelease"]
    assert "Successfully released" in seen["release2"], seen["release2"]
    assert "already released" not in seen["release2"] and seen["after_release2"]


def test_roster_student_fetches_validates_and_submits(clicked):
    seen = clicked.seen
    assert "Anna Quill (s001)" in seen["anna_notebook"]
    assert "Boris" not in seen["anna_notebook"] and "HIDDEN" not in seen["anna_notebook"]
    text = seen["validate"]
    missing = [ln for ln in text.splitlines() if "still `...`" in ln]
    assert len(missing) == 12, text[-3000:]                 # one line per missing answer
    assert "Traceback" not in text and "AnswerFormatError" not in text
    subs = list((clicked.root / "submitted" / "s001" / A).glob("*.ipynb"))
    assert subs, "anna's submission was not collected"


def test_student_notebook_collapses_the_helper(clicked):
    nb = nbformat.reads(clicked.seen["anna_notebook"], as_version=4)
    assert nb.cells[1].metadata["jupyter"]["source_hidden"] is True
    assert clicked.seen["anna_lab_cells"] >= 2       # the lab renders cells as they scroll in
    checks = [c.source for c in nb.cells if c.get("id", "").startswith("selfcheck_")]
    assert checks and all(len(src.splitlines()) <= 3 for src in checks)


def test_students_menu_has_no_formgrader(clicked):
    for login in (ANNA, MALLORY):
        items = clicked.seen[f"menu_{login}"]
        assert "Assignment List" in items
        assert "Formgrader" not in items and "Create assignment" not in " ".join(items), items


def test_outsider_sees_why_nothing_was_fetched(clicked):
    seen = clicked.seen
    assert seen["mallory_files"] == [f"{A}.ipynb"]
    page = seen["mallory_page"]
    assert "no personal notebook for you yet" in page and MALLORY in page
    assert "Fetch" in page and "instructor" in page
    # nothing of anyone's notebook reached mallory, and collect kept nothing of hers
    assert "s001" not in page and "Anna" not in page
    assert not (clicked.root / "submitted" / MALLORY).exists()


def test_autograde_button_keeps_our_verdicts(clicked):
    seen = clicked.seen
    log = seen["autograde"]
    assert "Successfully autograded" in log, log[-2000:]
    assert "checksum" not in log and "has changed" not in log, log[-2000:]
    html = seen["formgrader_html"]
    for marker in ("HIDDEN TESTS", "nbgrader_bridge", "_pset_score"):
        assert marker not in html, marker
    text = seen["formgrader_notebook"]
    assert "W_1:" in text and " / " in text and "—" in text      # "W_1: 2 / 3 — message"
    nb = nbformat.read(clicked.root / "autograded" / "s001" / A / f"{A}.ipynb", as_version=4)
    verdicts = ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
                for c in nb.cells if c.get("id", "").startswith("test_")]
    assert len(verdicts) == 12 and all(v.strip() for v in verdicts)
    assert all(len(line) <= 100 for v in verdicts for line in v.splitlines())   # wrapped
    assert seen["submission"]["score"] < seen["submission"]["max_score"]      # her mistake


def test_feedback_reaches_the_student_with_named_verdicts(clicked):
    seen = clicked.seen
    assert "Successfully generated feedback" in seen["generate_feedback"]
    assert "Successfully released feedback" in seen["release_feedback"]
    html = seen["anna_feedback"]
    text = page_text(html)
    assert "Anna Quill (s001)" in text and "Score:" in text
    for marker in ("HIDDEN TESTS", "nbgrader_bridge", "_pset_score", "Boris"):
        assert marker not in html, marker
    score = clicked.seen["submission"]["score"]
    assert f"Score: {score:g} / 21" in text, text[:2000]
