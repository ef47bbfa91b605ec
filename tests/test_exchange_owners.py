"""Every grade lands on the student who made the work: the nbgrader exchange with REAL
unix users (issue 20, point 1).

Three students, each a unix account of their own (``useradd``: own home, own nbgrader
cache and Jupyter data dir), and the instructor (root here: the worst case for a collect
that follows links, since root reads every file) share one exchange root, set up like a
real one (root 0777, ``inbound`` 1777). Every student command is the real ``nbgrader``
run as that student (``runuser``) from a venv of Debian's ``/usr/bin/python3`` in a
world-readable place (``/opt/convpset-testvenv``, built here and kept across runs, keyed
by a hash of pyproject.toml; the repository's code is copied beside it on every run).

- anna (s001) hands in a correct notebook: the victim;
- boris (s002) hands in a notebook with a named mistake, and his submission lost its
  ``submission_secret.txt`` (a broken submission, nobody's attack);
- vera (s003) attacks: ``fetch_assignment --student s001``; a folder planted in
  ``inbound/`` named for anna with a later timestamp, holding a blank notebook and no
  ``submission_secret.txt``; her own submission's ``conv1.ipynb`` replaced by a link to
  anna's notebook, plus a FIFO.

Then collect, ``grade``, generate/release/fetch feedback. On the code before this
change: anna scored 0 (the planted folder replaced her work), vera scored anna's 21 (the
link was followed), collect stopped at the FIFO, release_feedback crashed for the class,
and the fetch handed vera anna's notebook.

SLOW: about a minute (a minute more the first time, building the venv).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from convpset.notebooks.course import load_course
from convpset.notebooks.simulate import expected_score
from convpset.notebooks.variants import problems_for
from tests.test_nbgrader_loop import _env as _staff_env  # one Jupyter env for staff commands
from tests.test_nbgrader_loop import fill, page_text

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VENV = Path("/opt/convpset-testvenv")
PACKAGE_DIRS = ("convpset", "autograder", "integrations", "notebooks", "problems", "solutions")
A = "conv1"
COURSE_ID = "owners101"
# roster id -> (first, last, unix login, what they hand in)
STUDENTS = {
    "s001": ("Anna", "Quill", "cpx_anna", "correct"),
    "s002": ("Boris", "Yew", "cpx_boris", "mistakes:0"),
    "s003": ("Vera", "Zinn", "cpx_vera", "blank"),
}
LOGIN = {sid: v[2] for sid, v in STUDENTS.items()}


# ----------------------------------------------------------------- machine setup
def _ensure_user(login: str) -> None:
    try:
        pwd.getpwnam(login)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", login], check=True,
                       capture_output=True, timeout=60)


def _venv_key() -> str:
    return hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]


def _student_requirements() -> list[str]:
    """The package's dependencies less torch and matplotlib: a student's nbgrader
    commands (fetch imports our exchange class) never need those two."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [d for d in deps["dependencies"]
            if not re.match(r"(torch|matplotlib)\b", d)]


def _ensure_venv_module() -> None:
    """Debian ships ``venv``'s pip bootstrap separately (python3-venv): installed when
    missing, as the browser tests install Chromium."""
    if subprocess.run(["/usr/bin/python3", "-c", "import ensurepip"],
                      capture_output=True).returncode == 0:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "python3-venv"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr[-500:]}"


def student_venv() -> Path:
    """``/opt/convpset-testvenv``: nbgrader and our dependencies from Debian's Python,
    readable by every user (root's own venv may live under 0700 /root). Rebuilt when
    pyproject.toml changes; our own code is not in it (see :func:`code_copy`)."""
    import fcntl

    with open(f"{VENV}.lock", "w") as lock:      # one builder across xdist workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_student_venv()


def _build_student_venv() -> Path:
    key_file = VENV / ".convpset-key"
    if not (key_file.is_file() and key_file.read_text() == _venv_key()
            and (VENV / "bin" / "nbgrader").exists()):
        shutil.rmtree(VENV, ignore_errors=True)
        _ensure_venv_module()
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(VENV)], check=True,
                       capture_output=True, timeout=300)
        r = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *_student_requirements()],
                           capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stderr[-3000:]
        key_file.write_text(_venv_key())
        subprocess.run(["chmod", "-R", "a+rX", str(VENV)], check=True, timeout=120)
    return VENV


def code_copy(dest: Path) -> Path:
    """This checkout's package, copied where every user can read it (the students'
    ``PYTHONPATH``): each run tests the code beside this file, and two runs never share
    a copy."""
    dest.mkdir()
    for name in PACKAGE_DIRS:
        shutil.copytree(REPO / name, dest / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True, timeout=120)
    return dest


# --------------------------------------------------------------- running commands
def staff(*args: str, cwd: Path, home: Path, ok: bool = True) -> subprocess.CompletedProcess:
    exe = str(BIN / args[0]) if (BIN / args[0]).exists() else args[0]
    r = subprocess.run([exe, *args[1:]], cwd=cwd, env=_staff_env(home), capture_output=True,
                       text=True, timeout=900)
    if ok:
        assert r.returncode == 0, f"{args} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


class Student:
    """One unix user: their home, a fresh Jupyter data dir (nbgrader's submission
    cache) and a working folder with the course's student config."""

    def __init__(self, sid: str, run_id: str, config: Path, code: Path) -> None:
        self.sid, self.login = sid, LOGIN[sid]
        _ensure_user(self.login)
        self.pw = pwd.getpwnam(self.login)
        self.home = Path(self.pw.pw_dir)
        self.work = self.home / f"convpset-{run_id}"
        self.work.mkdir(parents=True)
        shutil.copy(config, self.work / "nbgrader_config.py")
        data = self.work / "jupyter-data"
        data.mkdir()
        subprocess.run(["chown", "-R", f"{self.pw.pw_uid}:{self.pw.pw_gid}", str(self.work)],
                       check=True, timeout=60)
        self.env = ["HOME=" + str(self.home), f"JUPYTER_DATA_DIR={data}",
                    f"JUPYTER_CONFIG_DIR={self.work / 'jupyter-config'}",
                    f"PATH={VENV / 'bin'}:/usr/bin:/bin", f"PYTHONPATH={code}",
                    "LANG=C.UTF-8", "TERM=dumb",
                    f"USER={self.login}", f"LOGNAME={self.login}"]

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        cmd = ["runuser", "-u", self.login, "--", "env", "-i", *self.env, *args]
        r = subprocess.run(cmd, cwd=self.work, capture_output=True, text=True, timeout=600)
        if ok:
            assert r.returncode == 0, f"{self.login} {args}:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
        return r

    def nbgrader(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        return self.run(str(VENV / "bin" / "nbgrader"), *args, ok=ok)

    def sh(self, script: str, *args: str) -> subprocess.CompletedProcess:
        return self.run("/bin/sh", "-ec", script, "sh", *args)


def nbgrader_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f %Z")


# ----------------------------------------------------------------------- the run
def require_unix_users(runs: str) -> None:
    """Skip, naming why, unless this run can create unix users and run ``runs`` as each
    of them (root, useradd, runuser, Debian's python3); then the students' venv."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root: creates unix users (useradd) and runs {runs} as each of "
                    "them (runuser); run the suite as root, as CI does")
    for tool in ("useradd", "runuser", "/usr/bin/python3"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian: passwd, util-linux, python3)")
    student_venv()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    require_unix_users("nbgrader")
    base = tmp_path_factory.mktemp("owners")
    home = base / "staff_home"
    root = base / "course"
    # the exchange: somewhere every user can reach (pytest's tmp is 0700 root's)
    shared = Path(tempfile.mkdtemp(prefix="convpset-exchange-", dir="/var/tmp"))
    os.chmod(shared, 0o755)
    exchange = shared / "exchange"
    exchange.mkdir()
    os.chmod(exchange, 0o777)
    run_id = shared.name.rsplit("-", 1)[-1]
    code = code_copy(shared / "src")
    staff("pset", "init", str(root), "--name", COURSE_ID, "--students", "3", cwd=base, home=home)
    with (root / "roster.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "first_name", "last_name", "email", "hub_user"])
        for sid, (first, last, login, _) in STUDENTS.items():
            w.writerow([sid, first, last, f"{login}@uni.example", login])
    staff("pset", "nbgrader", "config", "--course", str(root), "--exchange-root", str(exchange),
          cwd=base, home=home)
    staff("pset", "generate", A, "--course", str(root), cwd=base, home=home)
    staff("nbgrader", "generate_assignment", A, cwd=root, home=home)
    staff("nbgrader", "release_assignment", A, cwd=root, home=home)
    inbound = exchange / COURSE_ID / "inbound"
    os.chmod(inbound, 0o1777)           # world-writable, sticky, like a real exchange
    course = load_course(root)
    users = {sid: Student(sid, run_id, root / "student_nbgrader_config.py", code)
             for sid in STUDENTS}
    out: dict = {"root": root, "exchange": exchange, "inbound": inbound, "course": course,
                 "users": users, "home": home}
    try:
        anna, boris, vera = users["s001"], users["s002"], users["s003"]
        for u in users.values():
            u.nbgrader("fetch_assignment", A)
        out["fetched"] = {sid: (u.work / A / f"{A}.ipynb").read_text(encoding="utf-8")
                          for sid, u in users.items()}
        # attack: another student's personal notebook through the fetch command
        vera_dir = vera.work / "other"
        vera_dir.mkdir()
        shutil.copy(vera.work / "nbgrader_config.py", vera_dir / "nbgrader_config.py")
        subprocess.run(["chown", "-R", vera.login, str(vera_dir)], check=True)
        out["fetch_other"] = [
            vera.run("sh", "-c", f"cd {vera_dir} && {VENV}/bin/nbgrader fetch_assignment {A} "
                                 f"--student {name}", ok=False)
            for name in ("s001", LOGIN["s001"])]
        out["fetch_other_dir"] = (vera_dir / A).exists()
        personal = exchange / COURSE_ID / "personal" / A / "s001" / f"{A}.ipynb"
        out["shell_read"] = vera.run("cat", str(personal), ok=False)

        for sid, u in users.items():
            kind = STUDENTS[sid][3]
            if kind != "blank":
                fill(u.work / A / f"{A}.ipynb", course, sid, kind)
        out["handed_in"] = {sid: (u.work / A / f"{A}.ipynb").read_bytes()
                            for sid, u in users.items()}
        for u in users.values():
            u.nbgrader("submit", A)
        folders = {sid: next(inbound.glob(f"{LOGIN[sid]}+{A}+*")) for sid in STUDENTS}
        out["folders"] = folders
        # a broken submission (no attack): boris's secret file is gone
        boris.sh('rm "$1/submission_secret.txt"', str(folders["s002"]))
        # attack: a folder for anna, later than hers, with a blank notebook and no secret
        later = datetime.now(UTC) + timedelta(hours=1)
        planted = inbound / f"{anna.login}+{A}+{nbgrader_time(later)}+planted"
        vera.sh('mkdir "$1" && cp "$2" "$1/$3" && printf %s "$4" > "$1/timestamp.txt"',
                str(planted), str(vera.work / A / f"{A}.ipynb"), f"{A}.ipynb", nbgrader_time(later))
        out["planted"] = planted
        # attack: vera's own submission's notebook becomes a link to anna's; plus a FIFO
        vera.sh('cd "$1" && rm "$3" && ln -s "$2/$3" "$3" && mkfifo pipe',
                str(folders["s003"]), str(folders["s001"]), f"{A}.ipynb")

        # each step's outcome is asserted by the test about it (the code before this
        # change failed some of them: every other test still tells what it did)
        out["collect"] = staff("nbgrader", "collect", A, cwd=root, home=home, ok=False)
        out["graded"] = staff("grade", str(root / "submitted"), "--course", str(root),
                              "--jobs", "2", cwd=root, home=home)
        staff("nbgrader", "generate_feedback", A, cwd=root, home=home)
        out["release_feedback"] = staff("nbgrader", "release_feedback", A, cwd=root, home=home,
                                        ok=False)
        for u in users.values():
            u.nbgrader("fetch_feedback", A, ok=False)
        out["pages"] = {sid: [p.read_text(encoding="utf-8")
                              for p in (u.work / A / "feedback").rglob(f"{A}.html")]
                        for sid, u in users.items()}
        yield out
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        for u in users.values():
            shutil.rmtree(u.work, ignore_errors=True)


def results(world) -> dict:
    return json.loads((world["root"] / "grades" / A / "results.json").read_text(encoding="utf-8"))


def expected(world, sid: str) -> float:
    course = world["course"]
    return expected_score(problems_for(course, course.assignment(A), sid), STUDENTS[sid][3], 0)


@pytest.mark.slow
def test_fetch_of_another_students_notebook_is_refused(world):
    for r in world["fetch_other"]:
        assert r.returncode != 0
        assert "may fetch only their own notebook" in r.stderr, r.stderr[-2000:]
    assert not world["fetch_other_dir"]
    # what the docs say a shell can still do: read a classmate's personal notebook by
    # its path (the exchange is world-readable; no answers or keys are in it)
    assert world["shell_read"].returncode == 0 and "Anna Quill (s001)" in world["shell_read"].stdout
    for sid, text in world["fetched"].items():
        first, last = STUDENTS[sid][:2]
        assert f"{first} {last} ({sid})" in text


@pytest.mark.slow
def test_planted_classmate_folder_is_kept_aside_and_listed(world):
    root = world["root"]
    collected = (root / "submitted" / "s001" / A / f"{A}.ipynb").read_bytes()
    assert collected == world["handed_in"]["s001"]          # anna's own work, not the blank
    rows = list(csv.reader((root / "kept_aside" / f"{A}.csv").open(encoding="utf-8")))
    assert rows[0] == ["inbound folder", "claimed name", "roster student", "made by", "reason"]
    [row] = rows[1:]
    assert row[0] == world["planted"].name
    assert row[1:4] == ["cpx_anna", "s001", "cpx_vera (s003)"]
    assert "another user" in row[4]
    assert world["planted"].is_dir()                        # left in inbound as evidence


@pytest.mark.slow
def test_cheating_warning_only_for_the_real_mismatch(world):
    log = world["collect"].stdout + world["collect"].stderr
    assert world["collect"].returncode == 0, log[-3000:]
    warnings = [ln for ln in log.splitlines() if "cheating attempt?" in ln]
    assert len(warnings) == 1, log[-3000:]
    assert world["planted"].name in warnings[0] and "cpx_vera (s003)" in warnings[0]
    for sid in STUDENTS:
        assert f"collected {sid} {A} (made by {LOGIN[sid]})" in log, log[-3000:]


@pytest.mark.slow
def test_link_and_fifo_in_a_submission_are_not_followed_and_are_flagged(world):
    root = world["root"]
    got = root / "submitted" / "s003" / A
    assert not (got / f"{A}.ipynb").exists() and not (got / "pipe").exists()
    assert (got / "timestamp.txt").is_file()
    res = results(world)["s003"]
    assert res["score"] == 0.0
    assert "collect_skipped" in res["extra_data"]["flags"]
    notes = json.dumps(res, ensure_ascii=False)
    assert f"{A}.ipynb (link)" in notes and "pipe (special)" in notes
    # anna's answers reach no file of vera's
    anna_answers = world["handed_in"]["s001"].decode()
    marker = [c.source for c in nbformat.reads(anna_answers, as_version=4).cells
              if c.get("id", "").startswith("answer_")][0]
    for f in (root / "autograded").rglob("*"):
        if "s003" in f.parts and f.is_file():
            assert marker not in f.read_text(encoding="utf-8", errors="replace")
    assert not world["pages"]["s003"]


@pytest.mark.slow
def test_honest_students_get_exactly_their_own_grades(world):
    res = results(world)
    assert res["s001"]["score"] == pytest.approx(21.0)
    assert res["s002"]["score"] == pytest.approx(expected(world, "s002"), abs=0.011)
    assert 0 < res["s002"]["score"] < 21
    for sid in ("s001", "s002"):
        assert not res[sid]["extra_data"]["flags"], (sid, res[sid]["extra_data"]["flags"])


@pytest.mark.slow
def test_broken_secret_holds_back_only_its_own_feedback(world):
    log = world["release_feedback"].stdout + world["release_feedback"].stderr
    assert world["release_feedback"].returncode == 0, log[-3000:]
    assert "feedback of s002 for conv1 not released" in log and "submission_secret.txt" in log
    assert "released feedback of conv1: 1 page(s)" in log, log[-2000:]
    assert world["pages"]["s002"] == []
    [page] = world["pages"]["s001"]
    text = page_text(page)
    assert "Anna Quill (s001)" in text and "Score: 21 / 21" in text
    for other in ("s002", "s003", "Boris", "Vera"):
        assert other not in text


# ------------------------------------------------ the rules alone (fast, any user)
def _st(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, 0, 0, 0, 0, 0))


NAMES = {"s001": "s001", "anna": "s001", "s002": "s002"}
UIDS = {"s001": 1001, "s002": None}
TS = "2026-12-03 06:00:00.000000 UTC"


@pytest.mark.parametrize(("folder", "st", "check", "reason"), [
    (f"anna+conv1+{TS}+r", _st(0o40777, 1001), True, None),          # honest, hub login
    (f"s001+conv1+{TS}+r", _st(0o40777, 1001), True, None),          # honest, roster id
    (f"anna+conv1+{TS}+r", _st(0o40777, 1002), True, "not_owner"),   # planted by uid 1002
    (f"anna+conv1+{TS}+r", _st(0o120777, 1001), True, "link"),
    (f"anna+conv1+{TS}+r", _st(0o100644, 1001), True, "not_folder"),
    ("anna+conv1+yesterday+r", _st(0o40777, 1001), True, "bad_name"),
    (f"mallory+conv1+{TS}+r", _st(0o40777, 1001), True, "unknown_student"),
    (f"s002+conv1+{TS}+r", _st(0o40777, 1001), True, "no_account"),
    (f"s002+conv1+{TS}+r", _st(0o40777, 1001), False, None),         # check_owner off
    (f"anna+conv1+{TS}+r", None, True, "unreadable"),
])
def test_judge_inbound(folder, st, check, reason):
    from convpset.integrations.nbgrader.exchange import judge_inbound

    r = judge_inbound(folder, st, "conv1", NAMES, UIDS, check)
    assert r.reason == reason
    if reason is None:
        assert r.student == NAMES[folder.split("+")[0]]


def test_a_newer_folder_kept_aside_never_replaces_the_students_own():
    from convpset.integrations.nbgrader.exchange import judge_inbound, latest

    own = judge_inbound(f"anna+conv1+{TS}+a", _st(0o40777, 1001), "conv1", NAMES, UIDS, True)
    planted = judge_inbound("anna+conv1+2026-12-03 09:00:00.000000 UTC+b", _st(0o40777, 1002),
                            "conv1", NAMES, UIDS, True)
    newer = judge_inbound("s001+conv1+2026-12-03 08:00:00.000000 UTC+c", _st(0o40777, 1001),
                          "conv1", NAMES, UIDS, True)
    assert latest([own, planted], None, False) == [own]
    assert latest([own, planted, newer], None, False) == [newer]


def test_feedback_keys_refuse_missing_fifo_huge_and_malformed(tmp_path):
    from convpset.integrations.nbgrader.exchange import feedback_keys

    (tmp_path / "timestamp.txt").write_text(TS)
    assert feedback_keys(tmp_path) == "secret"                     # missing
    os.mkfifo(tmp_path / "submission_secret.txt")
    assert feedback_keys(tmp_path) == "secret"                     # a FIFO: no hang
    (tmp_path / "submission_secret.txt").unlink()
    (tmp_path / "submission_secret.txt").write_text("a" * 100_000)
    assert feedback_keys(tmp_path) == "secret"                     # over the cap
    (tmp_path / "submission_secret.txt").write_text("../../x")
    assert feedback_keys(tmp_path) == "secret"
    (tmp_path / "submission_secret.txt").write_text("ab" * 64)
    assert feedback_keys(tmp_path) == (TS, "ab" * 64)
    (tmp_path / "timestamp.txt").write_text("not a time")
    assert feedback_keys(tmp_path) == "timestamp"
