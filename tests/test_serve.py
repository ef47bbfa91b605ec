"""The check service (`pset serve`) as a network-facing server: a real tornado process on a
loopback port, hostile requests, concurrent attempts, and a notebook's check(N) running in
a real kernel against it."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import numpy as np
import pytest

from convpset.notebooks.build import literal
from convpset.notebooks.course import CourseError, init_course, load_course
from convpset.notebooks.generate import PERSONAL_DIR, generate, notebook_text
from convpset.notebooks.variants import problems_for
from convpset.problems.checking import solved
from convpset.service.policy import load_check_config, parse_policy
from convpset.service.store import db_path
from convpset.service.tokens import make_token, read_token, token_id
from convpset.service.wire import MAX_BODY, WireError, nesting_depth, parse_body

ENV = {**os.environ, "COLUMNS": "20000", "NO_COLOR": "1", "TERM": "dumb",
       "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                      os.environ.get("PYTHONPATH", "")])}
PAST = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
POLICY = f"""
[assignments.limited]
title = "Limited"
problems = [{{ family = "param_count", level = 1, points = 4 }},
            {{ family = "conv_as_matrix", level = 1, points = 4 }}]
check = {{ attempts = 3, show = ["parts", "mistake", "credit"] }}

[assignments.open]
title = "Open"
problems = [{{ family = "param_count", level = 1, points = 4 }},
            {{ family = "conv_as_matrix", level = 1, points = 4 }}]
check = {{ attempts = "unlimited" }}

[assignments.closed]
title = "Closed"
problems = [{{ family = "param_count", level = 1 }}]
check = {{ attempts = "unlimited", closes = "{PAST}" }}

[assignments.exam]
title = "Exam"
problems = [{{ family = "param_count", level = 1 }}]
"""


def _pset(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convpset", *args], capture_output=True,
                          text=True, env=ENV, timeout=120)


@pytest.fixture(scope="module")
def course_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "course"
    init_course(root, students=4, seed=7)
    with (root / "pset.toml").open("a", encoding="utf-8") as fh:
        fh.write(POLICY)
    return root


@pytest.fixture(scope="module")
def server(course_root: Path):
    """`pset serve --port 0` in its own process; yields (url, process, log lines)."""
    proc = subprocess.Popen([sys.executable, "-m", "convpset", "serve", "--course",
                             str(course_root), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV)
    first = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", first)
    assert match, first
    log: list[str] = [first]
    reader = threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True)
    reader.start()
    yield match.group(0), proc, log
    proc.terminate()
    proc.wait(timeout=30)
    reader.join(timeout=10)


def post(url: str, body: bytes | dict, token: str | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + "/api/check", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read()
    RESPONSES.append(text.decode("utf-8", "replace"))
    return status, json.loads(text)


RESPONSES: list[str] = []


def _course(root: Path):
    return load_course(root)


def _key_answers(root: Path, assignment: str, student: str, number: int) -> dict:
    c = _course(root)
    prob = problems_for(c, c.assignment(assignment), student)[number - 1]
    key = solved(prob.fam, prob.variant)
    return {p.name: np.asarray(key[prob.base_name(p.name)], dtype=float).tolist()
            for p in prob.parts()}


def _token(root: Path, assignment: str, student: str, serial: int = 0) -> str:
    return make_token(_course(root).secret, assignment, student, serial)


# ------------------------------------------------------------------ judging, shown text
def test_right_answers_are_judged_right(course_root, server):
    url = server[0]
    status, reply = post(url, {"problem": 1, "answers": _key_answers(course_root, "open",
                                                                      "s001", 1)},
                         _token(course_root, "open", "s001"))
    assert status == 200 and reply["ok"]
    assert reply["lines"][0] == "Problem 1: all answers are right."
    assert set(reply["parts"].values()) == {"correct"}


def test_a_named_mistake_is_named_and_the_key_is_not_returned(course_root, server):
    url = server[0]
    c = _course(course_root)
    prob = problems_for(c, c.assignment("limited"), "s002")[1]      # conv_as_matrix
    slip = next(m for m in prob.fam.mistakes(prob.variant) if "W" in m.answers)
    answers = {"W_2": np.asarray(slip.answers["W"], dtype=float).tolist()}
    status, reply = post(url, {"problem": 2, "answers": answers, "lang": "ru"},
                         _token(course_root, "limited", "s002"))
    assert status == 200
    text = "\n".join(reply["lines"])
    from convpset.problems.text import has, render
    key = f"conv_as_matrix.mistake.{slip.key}"
    if not has("ru", key):
        key = f"mistake.common.{slip.key}"
    assert reply["parts"]["W_2"] in ("wrong", "partial")
    assert "Задача 2" in text                        # the notebook's language (ru)
    assert render("ru", "credit.partial") in text    # the mistake's sentence carries its rule
    key_w = np.asarray(solved(prob.fam, prob.variant)["W"])
    assert json.dumps(key_w.tolist()) not in json.dumps(reply)
    assert "key" not in reply and "answer" not in json.dumps(list(reply))


def test_scalar_key_never_in_a_wrong_answers_reply(course_root, server):
    key = _key_answers(course_root, "open", "s003", 1)
    total = int(key["total_1"])
    status, reply = post(server[0], {"problem": 1, "answers": {"total_1": total + 1}},
                         _token(course_root, "open", "s003"))
    assert status == 200 and reply["parts"]["total_1"] == "wrong"
    assert str(total) not in json.dumps(reply)


# ------------------------------------------------------------------ who is asking
def test_no_token_is_refused(server):
    status, reply = post(server[0], {"problem": 1, "answers": {}})
    assert status == 401 and not reply["ok"] and "token" in reply["lines"][0]


def test_forged_and_tampered_tokens_are_refused(course_root, server):
    forged = make_token(b"not-the-course-secret-at-all", "open", "s001")
    good = _token(course_root, "open", "s001")
    prefix, payload, sig = good.split(".")
    other_payload = _token(course_root, "open", "s002").split(".")[1]
    tampered = f"{prefix}.{other_payload}.{sig}"        # s002's claims, s001's signature
    for tok in (forged, tampered, "pc1.x.y", "garbage", good + "0", "a" * 5000):
        status, reply = post(server[0], {"problem": 1, "answers": {}}, tok)
        assert status == 401, tok
        assert reply["lines"] == ["The check token is not valid for this course."]


def test_another_students_token_cannot_check_against_their_variant(course_root, server):
    """s001's notebook names s001; with s002's token it is refused, not judged on s002's key."""
    answers = _key_answers(course_root, "open", "s002", 1)
    status, reply = post(server[0], {"problem": 1, "answers": answers, "student": "s001"},
                         _token(course_root, "open", "s002"))
    assert status == 403 and reply["lines"] == [
        "This token belongs to another student's notebook."]
    # the token decides whose variant it is: s001's own right answers are wrong on s002's
    mine = _key_answers(course_root, "open", "s001", 1)
    status, reply = post(server[0], {"problem": 1, "answers": mine},
                         _token(course_root, "open", "s002"))
    assert status == 200 and reply["parts"] != {k: "correct" for k in mine}


def test_student_not_in_roster_is_refused(course_root, server):
    status, _ = post(server[0], {"problem": 1, "answers": {}},
                     _token(course_root, "open", "s999"))
    assert status == 403


def test_revoked_token_is_refused_and_a_new_serial_works(course_root, server):
    tok = _token(course_root, "open", "s004")
    assert post(server[0], {"problem": 1, "answers": {}}, tok)[0] == 200
    tid = token_id(_course(course_root).secret, "open", "s004")
    r = _pset("token", "--revoke", tid, "--course", str(course_root))
    assert r.returncode == 0, r.stderr
    status, reply = post(server[0], {"problem": 1, "answers": {}}, tok)
    assert status == 403 and "revoked" in reply["lines"][0]
    new = _pset("token", "open", "s004", "--serial", "1", "--course", str(course_root))
    assert new.returncode == 0 and new.stdout.strip() != tok
    assert post(server[0], {"problem": 1, "answers": {}}, new.stdout.strip())[0] == 200


# ------------------------------------------------------------------ policy
def test_closed_and_off_assignments_are_refused(course_root, server):
    status, reply = post(server[0], {"problem": 1, "answers": {}},
                         _token(course_root, "closed", "s001"))
    assert status == 403 and "closed" in reply["lines"][0]
    status, reply = post(server[0], {"problem": 1, "answers": {}},
                         _token(course_root, "exam", "s001"))
    assert status == 403 and reply["lines"] == ["Answer checks are off for exam."]


def test_twenty_concurrent_attempts_judge_exactly_the_limit(course_root, server):
    tok = _token(course_root, "limited", "s003")
    body = {"problem": 1, "answers": {"total_1": 1}}
    results: list[int] = []
    barrier = threading.Barrier(20)

    def one() -> None:
        barrier.wait()
        results.append(post(server[0], body, tok)[0])

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [200] * 3 + [429] * 17
    con = sqlite3.connect(db_path(course_root))
    rows = con.execute("SELECT status, COUNT(*) FROM attempts WHERE assignment='limited' AND"
                       " student='s003' AND problem=1 GROUP BY status").fetchall()
    assert dict(rows) == {"judged": 3, "refused": 17}
    # another problem of the same student has its own attempts
    assert post(server[0], {"problem": 2, "answers": {}}, tok)[0] == 200


def test_every_attempt_is_recorded_with_an_answer_hash(course_root, server):
    body = json.dumps({"problem": 1, "answers": {"total_1": 7}}).encode()
    assert post(server[0], body, _token(course_root, "open", "s002"))[0] == 200
    import hashlib
    con = sqlite3.connect(db_path(course_root))
    row = con.execute("SELECT student, problem, answer_sha256, verdict, at FROM attempts"
                      " ORDER BY id DESC LIMIT 1").fetchone()
    assert row[:3] == ("s002", 1, hashlib.sha256(body).hexdigest())
    assert "total_1=wrong" in row[3] and datetime.fromisoformat(row[4]).tzinfo is not None


# ------------------------------------------------------------------ hostile bodies
@pytest.mark.parametrize("body, reason", [
    (b"{not json", "the body is not JSON"),
    (b'{"problem": 1, "answers": {"total_1": NaN}}', "NaN or infinity"),
    (b'{"problem": 1, "answers": {"total_1": Infinity}}', "NaN or infinity"),
    (b'{"problem": 1, "answers": {"total_1": -1e999}}', "NaN or infinity"),
    (b'{"problem": 1, "answers": {"total_1": ' + b"9" * 5000 + b"}}", "more than 20 digits"),
    (b'{"problem": 1, "answers": {"W_2": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
     "nested deeper than 8"),
    (b'{"problem": 1, "answers": {"W_2": [' + b"1," * 20000 + b"1]}}", "more than 10000"),
    (b'{"problem": 1, "answers": {"total_1": "12"}}', "numbers or nested lists"),
    (b'{"problem": 1, "answers": {"total_1": true}}', "numbers or nested lists"),
    (b'{"problem": 1, "answers": {"x": 1}}', "answer names must be"),
    (b'{"problem": 1, "answers": {}, "student_id": "s002"}', "unknown or missing fields"),
    (b'[1, 2]', "unknown or missing fields"),
    (b"\xff\xfe", "the body is not JSON"),
])
def test_malformed_bodies_are_refused_in_one_sentence(course_root, server, body, reason):
    status, reply = post(server[0], body, _token(course_root, "open", "s001"))
    assert status == 400 and len(reply["lines"]) == 1 and reason in reply["lines"][0]


def test_oversized_body_is_refused_before_it_is_read(course_root, server):
    body = b'{"problem": 1, "answers": {"W_2": [' + b"1," * MAX_BODY + b"1]}}"
    try:
        status = post(server[0], body, _token(course_root, "open", "s001"))[0]
    except (ConnectionError, urllib.error.URLError, json.JSONDecodeError):
        status = 400          # tornado may close the connection while the client sends
    assert status in (400, 413)
    urllib.request.urlopen(server[0] + "/api/health", timeout=30).read()   # still serving


def test_wire_limits_hold_in_process():
    assert nesting_depth(b'{"a": "[[[[[[[[[[[[", "b": [[1]]}') == 3
    with pytest.raises(WireError) as err:
        parse_body(b'{"problem": 1, "answers": {"a": 1e400}}')
    assert err.value.reason == "reason_not_finite"
    assert parse_body(b'{"problem": 2, "answers": {"a": [[1, 2.5]]}}').answers == {
        "a": [[1, 2.5]]}


def test_secret_and_tokens_never_in_a_response_or_the_log(course_root, server):
    url, proc, log = server
    status, _ = post(url, {"problem": 1, "answers": {}}, _token(course_root, "open", "s001"))
    assert status == 200
    secret = _course(course_root).secret.decode()
    assert RESPONSES and all(secret not in r for r in RESPONSES)
    deadline = time.monotonic() + 60      # the log reader thread may lag on a busy machine
    while "POST /api/check" not in "".join(log) and time.monotonic() < deadline:
        time.sleep(0.2)
    text = "".join(log)
    assert "POST /api/check" in text           # the access log is there ...
    assert secret not in text and "pc1." not in text   # ... without the secret or a token


# ------------------------------------------------------------------ tokens and policy, in process
def test_token_binds_student_and_assignment():
    secret = b"0123456789abcdef-secret"
    tok = make_token(secret, "conv1", "s001")
    claims = read_token(secret, tok)
    assert (claims.assignment, claims.student) == ("conv1", "s001")
    assert read_token(b"another-secret-0123456789", tok) is None
    assert make_token(secret, "conv1", "s001") == tok          # deterministic notebooks


@pytest.mark.parametrize("raw", [{"attempts": 0}, {"attempts": "3"}, {"attempts": True},
                                 {"attempts": 3, "show": ["key"]},
                                 {"attempts": 3, "closes": "2026-12-10T23:59:00"},
                                 {"attempts": 3, "closes": "tomorrow"},
                                 {"attempts": 3, "attempt": 2}, "sometimes"])
def test_bad_policy_is_a_course_error(raw):
    with pytest.raises(CourseError) as err:
        parse_policy(raw, "pset.toml: assignments.x.check")
    assert "\n" not in str(err.value) and "assignments.x.check" in str(err.value)


def test_serve_with_a_bad_policy_exits_2_in_one_line(tmp_path):
    root = tmp_path / "c"
    init_course(root, students=2, seed=3)
    with (root / "pset.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[assignments.conv1.check]\nattempts = -1\n')
    r = _pset("serve", "--course", str(root), "--port", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "attempts" in r.stderr or "whole number of attempts" in r.stderr
    r = _pset("token", "conv1", "nobody", "--course", str(root))
    assert r.returncode == 2 and "not in the roster" in r.stderr


# ------------------------------------------------------------------ the notebook side
def test_without_a_service_notebooks_are_unchanged(tmp_path):
    """No [check] url: not a byte of check code (and `grade` sees the notebooks it always did)."""
    root = tmp_path / "c"
    init_course(root, students=2, seed=5)
    before = notebook_text(load_course(root), "conv1", "s001", "s001", "en", "personal")
    assert "def check(" not in before and "# check(" not in before
    assert "_PSET_CHECK" not in before
    with (root / "pset.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[check]\nurl = "http://127.0.0.1:9"\n')   # a url, but checks are off
    assert notebook_text(load_course(root), "conv1", "s001", "s001", "en", "personal") == before


def test_check_notebooks_are_deterministic_and_carry_only_their_token(course_root, tmp_path):
    c = _course(course_root)
    with (course_root / "pset.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[check]\nurl = "http://127.0.0.1:9"\n')
    try:
        c = load_course(course_root)
        assert load_check_config(c).url == "http://127.0.0.1:9"
        a = notebook_text(c, "open", "s001", "s001", "en", "personal")
        assert a == notebook_text(c, "open", "s001", "s001", "en", "personal")
        assert _token(course_root, "open", "s001") in a
        assert _token(course_root, "open", "s002") not in a
        assert c.secret.decode() not in a
        sol = notebook_text(c, "open", "s001", "s001", "en", "solution")
        assert "_PSET_CHECK" not in sol
    finally:
        text = (course_root / "pset.toml").read_text(encoding="utf-8")
        (course_root / "pset.toml").write_text(text.split("\n[check]\n")[0], encoding="utf-8")


def _run_notebook(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell (the other problems' format tests fail on their `...`: allowed)."""
    from kernels import execute

    return execute(nb, cwd, allow_errors=True)


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.slow
def test_check_cell_runs_in_a_real_kernel_against_the_service(course_root, server, tmp_path):
    url = server[0]
    text = (course_root / "pset.toml").read_text(encoding="utf-8")
    (course_root / "pset.toml").write_text(text + f'\n[check]\nurl = "{url}"\n', encoding="utf-8")
    try:
        c = load_course(course_root)
        generate(c, "open", lang="ru", students=[s for s in c.roster() if s.student_id == "s001"])
    finally:
        (course_root / "pset.toml").write_text(text, encoding="utf-8")
    path = course_root / PERSONAL_DIR / "s001" / "open" / "open.ipynb"
    nb = nbformat.read(path, as_version=4)
    prob = problems_for(c, c.assignment("open"), "s001")[0]
    key = solved(prob.fam, prob.variant)
    wrong_shape = list(problems_for(c, c.assignment("open"), "s001")[1].parts()[0].shape)
    for cell in nb.cells:
        if cell.metadata.get("pset_role") == "answer" and cell.metadata.get("pset_problem") == 1:
            cell.source = "\n".join(f"{p.name} = {literal(p, key[prob.base_name(p.name)])}"
                                    for p in prob.parts())
    nb.cells.append(nbformat.v4.new_code_cell("check(1)"))
    nb.cells.append(nbformat.v4.new_code_cell(f"W_2 = np.zeros({wrong_shape})\ncheck(2)"))
    nb.cells.append(nbformat.v4.new_code_cell(
        "_PSET_CHECK['url'] = 'http://127.0.0.1:9'\ncheck(1)"))
    _run_notebook(nb, tmp_path)
    right, shape, down = (_stdout(cell) for cell in nb.cells[-3:])
    assert "Задача 1: все ответы верны." in right
    assert "Задача 2: пока не все ответы верны." in shape
    assert down.count("\n") == 1 and "недоступен" in down
    _screenshot_of_check(nb, tmp_path)


def _shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/ with CONVPSET_SCREENSHOTS=1 (to refresh the README's
    pictures), else the test's own folder (a test run leaves the checkout clean)."""
    if os.environ.get("CONVPSET_SCREENSHOTS") == "1":
        return Path(__file__).resolve().parent.parent / "docs"
    return tmp_path


def _screenshot_of_check(nb: nbformat.NotebookNode, tmp_path: Path) -> None:
    """docs/check_in_notebook.png: what a student sees (the executed check cells, rendered
    by nbconvert, shot by headless Chromium when it is there)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from browser import FLAGS, _find
    from nbconvert import HTMLExporter

    browser = _find()
    if browser is None:
        return
    small = nbformat.v4.new_notebook(cells=[nb.cells[i] for i in range(len(nb.cells))
                                            if nb.cells[i].metadata.get("pset_role") == "answer"
                                            and nb.cells[i].metadata.get("pset_problem") == 1]
                                     + nb.cells[-3:])
    html, _ = HTMLExporter(template_name="classic").from_notebook_node(small)
    page = tmp_path / "check.html"
    page.write_text(html, encoding="utf-8")
    docs = _shots(tmp_path)
    subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=900,700", f"--screenshot={docs / 'check_in_notebook.png'}",
                    page.as_uri()], capture_output=True, timeout=120)


# ------------------------------------------------------------------ the report's attempts section
def _practice(root: Path) -> None:
    """In process (the same CheckService the server runs): s001 right at the 2nd attempt
    of problem 1, s002 at the 1st; s003 makes a named mistake on problem 1."""
    from convpset.service.judge import CheckService

    c = load_course(root)
    service = CheckService(c)
    ans = {s: _key_answers(root, "conv1", s, 1) for s in ("s001", "s002", "s003")}
    prob = problems_for(c, c.assignment("conv1"), "s003")[0]
    slip = next(m for m in prob.fam.mistakes(prob.variant) if m.answers)
    base, wrong = next(iter(slip.answers.items()))
    name = base + prob.suffix
    part = next(p for p in prob.parts() if p.name == name)
    ans["s003"][name] = ([[float(x) for x in row] for row in wrong] if part.kind == "shapes"
                         else np.asarray(wrong, dtype=float).tolist())
    first_wrong = {k: 0 for k in ans["s001"]}
    for student, answers in (("s001", first_wrong), ("s001", ans["s001"]),
                             ("s002", ans["s002"]), ("s003", ans["s003"])):
        body = json.dumps({"problem": 1, "answers": answers}).encode()
        assert service.check(make_token(c.secret, "conv1", student), body).status == 200


def _course_with_checks(tmp_path: Path) -> Path:
    root = tmp_path / "c"
    root.mkdir()
    sample = Path(__file__).resolve().parent.parent / "examples" / "course"
    for name in ("pset.toml", "roster.csv"):
        (root / name).write_bytes((sample / name).read_bytes())
    with (root / "pset.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[assignments.conv1.check]\nattempts = "unlimited"\n')
    return root


def test_attempts_section_counts_solved_within_k(tmp_path):
    from convpset.service.stats import attempts_context

    root = _course_with_checks(tmp_path)
    c = load_course(root)
    assert attempts_context(c, "conv1", "en") is None        # never checked: no section
    _practice(root)
    ctx = attempts_context(c, "conv1", "ru")
    (row,) = ctx["problems"]
    assert (row["number"], row["students"], row["attempts"]) == (1, 3, 4)
    assert row["solved"][0] == "33%" and row["solved"][1] == "67%"
    assert ctx["mistakes"] and ctx["mistakes"][0]["practice"] == 1
    assert ctx["T"]["title"] == "Проверки во время работы"


@pytest.mark.slow
def test_pset_report_shows_the_attempts_section(tmp_path, tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_report import graded_sample

    from convpset.autograder.report import build_report

    _, grades = graded_sample(tmp_path_factory)
    root = _course_with_checks(tmp_path)
    c = load_course(root)
    assert 'id="attempts"' not in build_report(c, "conv1", grades, "en")
    _practice(root)
    page = build_report(c, "conv1", grades, "en")
    section = re.search(r'<section id="attempts">(.*?)</section>', page, re.S).group(1)
    assert "Checks while working" in section and "right within 2" in section
    assert "<td class=\"num\">4</td>" in section


# ------------------------------------------------------------------ the practice page
def _get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def _post_form(url: str, fields: dict) -> tuple[int, str]:
    import urllib.parse

    data = urllib.parse.urlencode(fields).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _ticket(page: str) -> str:
    return re.search(r'name="ticket" value="([^"]+)"', page).group(1)


def _practice_key(root: Path, family: str, level: int, ticket: str) -> dict[str, str]:
    from convpset.service.practice import from_ticket

    pv = from_ticket(load_course(root), family, level, ticket)
    key = solved(pv.problem.fam, pv.problem.variant)
    return {p.name: json.dumps(np.asarray(key[pv.problem.base_name(p.name)]).tolist())
            for p in pv.problem.parts()}


def test_practice_index_and_page_are_served_with_the_pages_csp(server):
    status, headers, page = _get(server[0] + "/practice")
    assert status == 200 and "/practice/conv_as_matrix/1" in page
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]
    status, headers, page = _get(server[0] + "/practice/conv_as_matrix/1?lang=ru")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<math" in page and "<script" not in page and 'lang="ru"' in page
    assert _get(server[0] + "/practice/nope/1")[0] == 404
    assert _get(server[0] + "/practice/conv_as_matrix/9")[0] == 404


def test_practice_judges_the_variant_it_drew_and_explains_it(course_root, server):
    url = server[0] + "/practice/param_count/1"
    page = _get(url)[2]
    ticket = _ticket(page)
    key = _practice_key(course_root, "param_count", 1, ticket)
    status, page = _post_form(url, {"ticket": ticket, "action": "check", **key})
    verdicts = re.search(r'<ul id="verdicts">(.*?)</ul>', page, re.S).group(1)
    assert status == 200 and verdicts.count('class="correct"') == len(key)
    assert _ticket(page) == ticket                       # the same variant, answers kept
    wrong = {**key, "total_1": "1"}
    page = _post_form(url, {"ticket": ticket, "action": "check", **wrong})[1]
    assert 'class="wrong"' in page and 'id="worked"' not in page
    page = _post_form(url, {"ticket": ticket, "action": "reveal"})[1]
    assert 'id="worked"' in page
    # a fresh GET is a fresh variant
    assert _ticket(_get(url)[2]) != ticket


def test_practice_refuses_forged_tickets_and_hostile_input(course_root, server):
    url = server[0] + "/practice/param_count/1"
    ticket = _ticket(_get(url)[2])
    seed = ticket.split(".")[0]
    page = _post_form(url, {"ticket": f"{int(seed) + 1}.{ticket.split('.')[1]}",
                            "action": "reveal"})[1]
    assert "not from this server" in page and 'id="worked"' not in page
    evil = '<script>alert(1)</script>"><img src=x>'
    page = _post_form(url, {"ticket": ticket, "action": "check", "total_1": evil,
                            "params_1": "[" * 50 + "]" * 50, "dense_params_1": "1e999"})[1]
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "nested deeper than 8" in page and "NaN or infinity" in page


def test_practice_variants_never_coincide_with_graded_ones(course_root):
    from convpset.service.practice import draw, graded_digests

    c = load_course(course_root)
    graded = graded_digests(c, "param_count", 1)
    own = problems_for(c, c.assignment("open"), "s001")[0].variant.digest()
    assert own in graded
    first = draw(c, "param_count", 1, seed=5, excluded=frozenset())
    again = draw(c, "param_count", 1, seed=5,
                 excluded=frozenset({first.problem.variant.digest()}))
    assert again.problem.variant.digest() != first.problem.variant.digest()
    assert draw(c, "param_count", 1, seed=5).problem.variant.digest() not in graded


@pytest.mark.slow
def test_practice_page_speaks_of_form_fields_not_the_notebooks_answer_cell(course_root):
    """Every family and level, en and ru: the statement's answer list and an empty field's
    verdict point at the page's fields, never at an answer cell the page does not have."""
    from convpset.service.pages import practice_page

    c = load_course(course_root)
    notebook_words = {"en": "answer cell", "ru": "ячейке ответа"}
    form_words = {"en": ("type them into the fields below", "is empty. Type it into its field"),
                  "ru": ("введите их в поля ниже", "пусто. Введите ответ в это поле")}
    from convpset.problems import families
    for lang in ("en", "ru"):
        for name, fam in families().items():
            for level in fam.levels:
                status, page = practice_page(c, "/", lang, name, str(level), None)
                assert status == 200 and form_words[lang][0] in page, (lang, name, level)
                ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)
                status, checked = practice_page(c, "/", lang, name, str(level),
                                                {"ticket": ticket, "action": "check"})
                assert status == 200 and form_words[lang][1] in checked, (lang, name, level)
                for text in (page, checked):
                    assert notebook_words[lang] not in text, (lang, name, level)


def test_practice_page_in_headless_chromium_fetches_nothing_else(server, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from browser import FLAGS, RecordingProxy, chromium

    browser = chromium()
    docs = _shots(tmp_path)
    with RecordingProxy() as proxy:
        # (a page with a form makes Chromium itself ask its autofill server: switched off)
        base = [browser, *FLAGS, "--disable-features=AutofillServerCommunication",
                f"--proxy-server=http://127.0.0.1:{proxy.port}",
                f"--user-data-dir={tmp_path / 'profile'}"]
        url = server[0] + "/practice/conv_as_matrix/1"
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                             timeout=120).stdout
        shot = subprocess.run([*base, "--window-size=412,1400",
                               f"--screenshot={docs / 'practice_page.png'}", url],
                              capture_output=True, text=True, timeout=120)
        assert proxy.page_requests() == []
    assert "<math" in dom and "<form" in dom and 'name="ticket"' in dom
    assert shot.returncode == 0 and (docs / "practice_page.png").stat().st_size > 5000


def test_under_a_hub_service_prefix_the_routes_move_with_it(course_root):
    """Started by JupyterHub as a managed service, the hub proxy forwards
    /services/NAME/... unchanged: the routes live under JUPYTERHUB_SERVICE_PREFIX."""
    env = {**ENV, "JUPYTERHUB_SERVICE_PREFIX": "/services/convpset-check/"}
    proc = subprocess.Popen([sys.executable, "-m", "convpset", "serve", "--course",
                             str(course_root), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline()).group(0)
        assert _get(url + "/services/convpset-check/api/health")[0] == 200
        assert _get(url + "/api/health")[0] == 404
        page = _get(url + "/services/convpset-check/practice")[2]
        assert 'href="/services/convpset-check/practice/param_count/1' in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_grade_scores_a_check_enabled_notebook_as_before(tmp_path):
    """A returned notebook carrying check(N) and its token grades in full, the service off."""
    from convpset.autograder.batch import BatchOptions, grade_folder
    from convpset.autograder.outputs import Journal
    from convpset.autograder.sandbox import Limits

    root = tmp_path / "c"
    init_course(root, students=1, seed=11)
    with (root / "pset.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[check]\nurl = "http://127.0.0.1:9"\n'
                 '\n[assignments.conv1.check]\nattempts = 2\n')
    c = load_course(root)
    generate(c, "conv1")
    nb = nbformat.read(root / PERSONAL_DIR / "s001" / "conv1" / "conv1.ipynb", as_version=4)
    assert "_PSET_CHECK" in nb.cells[1].source
    for prob in problems_for(c, c.assignment("conv1"), "s001"):
        key = solved(prob.fam, prob.variant)
        for cell in nb.cells:
            if cell.metadata.get("pset_role") == "answer" \
                    and cell.metadata.get("pset_problem") == prob.number:
                cell.source = "\n".join(f"{p.name} = {literal(p, key[prob.base_name(p.name)])}"
                                        for p in prob.parts())
    out = root / "submitted" / "s001" / "conv1" / "conv1.ipynb"
    out.parent.mkdir(parents=True)
    nbformat.write(nb, out)
    grade_folder(root / "submitted", c, "conv1",
                 BatchOptions(jobs=1, limits=Limits(wall_s=30, cell_s=5, cpu_s=10)))
    (result,) = Journal(c.grades_dir("conv1")).load().values()
    assert result.score == result.max_score > 0 and not result.flags


class _FakeHub:
    """JupyterHub's `GET /hub/api/user`, as a hub answers it for a user's API token."""

    USERS = {"tok-anna": "anna.hub", "tok-stranger": "stranger"}

    def __enter__(self) -> str:
        import http.server

        users, seen = self.USERS, []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                auth = self.headers.get("Authorization", "")
                seen.append((self.path, auth))
                name = users.get(auth.removeprefix("token "))
                body = json.dumps({"name": name, "kind": "user"}).encode()
                self.send_response(200 if name and self.path == "/hub/api/user" else 403)
                self.end_headers()
                self.wfile.write(body if name else b"{}")

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hub/api"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()


def hub_course_tail(root: Path) -> None:
    """A course made by ``init_course`` as a hub course: s001 logs in as ``anna.hub``
    (the roster's ``hub_user``) and conv1's checks are unlimited."""
    roster = (root / "roster.csv").read_text(encoding="utf-8").splitlines()
    roster[1] = roster[1].rstrip(",") + ",anna.hub"
    (root / "roster.csv").write_text("\n".join(roster) + "\n", encoding="utf-8")
    with (root / "pset.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[assignments.conv1.check]\nattempts = "unlimited"\n')


def test_under_a_hub_the_login_is_mapped_through_hub_user(tmp_path):
    root = tmp_path / "c"
    init_course(root, students=3, seed=13)
    hub_course_tail(root)
    fake = _FakeHub()
    with fake as api:
        env = {**ENV, "JUPYTERHUB_API_URL": api}
        proc = subprocess.Popen([sys.executable, "-m", "convpset", "serve", "--course",
                                 str(root), "--port", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env)
        try:
            url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline()).group(0)

            def hub_post(token: str, body: dict) -> tuple[int, dict]:
                req = urllib.request.Request(url + "/api/check", data=json.dumps(body).encode(),
                                             headers={"Authorization": f"token {token}"})
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        return r.status, json.loads(r.read())
                except urllib.error.HTTPError as err:
                    return err.code, json.loads(err.read())

            answers = _key_answers(root, "conv1", "s001", 2)
            status, reply = hub_post("tok-anna", {"assignment": "conv1", "problem": 2,
                                                  "answers": answers})
            assert status == 200 and set(reply["parts"].values()) == {"correct"}
            # anna.hub is s001, not s002: s002's right answers are not right for her
            other = _key_answers(root, "conv1", "s002", 2)
            assert hub_post("tok-anna", {"assignment": "conv1", "problem": 2,
                                         "answers": other})[1]["parts"] != reply["parts"]
            assert hub_post("tok-anna", {"assignment": "conv1", "problem": 2, "answers": {},
                                         "student": "s002"})[0] == 403
            assert hub_post("tok-stranger", {"assignment": "conv1", "problem": 2,
                                             "answers": {}})[0] == 403   # real, not ours
            assert hub_post("forged", {"assignment": "conv1", "problem": 2,
                                       "answers": {}})[0] == 401
            assert hub_post("tok-anna", {"problem": 2, "answers": {}})[0] == 403   # which one?
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert fake.seen and all(path == "/hub/api/user" for path, _ in fake.seen)


def test_show_decides_what_a_verdict_says(tmp_path):
    """show = [] says only whether the whole problem is right; "parts" adds a line per part;
    "mistake" names the misconception; "credit" adds the score."""
    from convpset.service.judge import CheckService

    root = tmp_path / "c"
    init_course(root, students=1, seed=17)
    base = (root / "pset.toml").read_text(encoding="utf-8")
    c = load_course(root)
    prob = problems_for(c, c.assignment("conv1"), "s001")[0]            # conv_as_matrix
    slip = next(m for m in prob.fam.mistakes(prob.variant) if "W" in m.answers)
    body = json.dumps({"problem": 1, "answers": {
        "W_1": np.asarray(slip.answers["W"], dtype=float).tolist()}}).encode()
    token = make_token(c.secret, "conv1", "s001")
    replies = {}
    for show in ([], ["parts"], ["parts", "mistake"], ["credit"]):
        (root / "pset.toml").write_text(
            base + f'\n[assignments.conv1.check]\nattempts = "unlimited"\nshow = {show!r}\n'
            .replace("'", '"'), encoding="utf-8")
        service = CheckService(load_course(root))
        reply = service.check(token, body)
        assert reply.status == 200
        replies[tuple(show)] = reply
    assert len(replies[()].lines) == 2 and "parts" not in replies[()].data
    assert any("`W_1` is not right yet." in line for line in replies[("parts",)].lines)
    named = replies[("parts", "mistake")].lines
    assert not any("not right yet" in line for line in named) and len(named) == 4
    assert any(line.startswith("Score if submitted now") for line in replies[("credit",)].lines)
    assert not any(line.startswith("Score") for line in replies[("parts", "mistake")].lines)


# ------------------------------------------------------------------ the practice page, clicked
class DevTools:
    """Chromium driven over its DevTools protocol on ``--remote-debugging-pipe`` (fd 3 in,
    fd 4 out, NUL-terminated JSON): no port, no driver, no extra package. Only the DOM,
    Input, Page and Emulation domains are used, so everything works with the page's
    scripts switched off: the test types and clicks as a reader does."""

    def __init__(self, argv: list[str]) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:       # the child's fd 3 and 4, whatever numbers the pipes got
            import fcntl

            hi_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            hi_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        # (Python's own descriptors are close-on-exec: only 3 and 4 reach Chromium)
        self.proc = subprocess.Popen([*argv, "--remote-debugging-pipe"], preexec_fn=fds,
                                     close_fds=False, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def _read(self, timeout: float) -> dict:
        import select

        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_chrome], [], [], timeout)
            chunk = os.read(self._from_chrome, 1 << 20) if ready else b""
            if not chunk:
                raise AssertionError("Chromium went quiet or exited")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, timeout: float = 60, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]
            self.events.append(reply)

    def wait(self, event: str, timeout: float = 60) -> dict:
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == event:
                    return self.events.pop(i)
            self.events.append(self._read(timeout))

    def attach(self) -> None:
        page = next(t for t in self.send("Target.getTargets")["targetInfos"]
                    if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]

    def load(self, action) -> None:
        """Run ``action`` (a navigation, a click) and wait for the page it leads to."""
        self.events.clear()
        action()
        self.wait("Page.loadEventFired")

    def node(self, selector: str) -> int:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        found = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        assert found, f"no {selector} on the page"
        return found

    def html(self, selector: str = "html") -> str:
        return self.send("DOM.getOuterHTML", nodeId=self.node(selector))["outerHTML"]

    def has(self, selector: str) -> bool:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        return bool(self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"])

    def box(self, selector: str) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of an element in CSS pixels of the viewport."""
        node = self.node(selector)
        self.send("DOM.scrollIntoViewIfNeeded", nodeId=node)
        quad = self.send("DOM.getBoxModel", nodeId=node)["model"]["border"]
        xs, ys = quad[0::2], quad[1::2]
        return min(xs), min(ys), max(xs), max(ys)

    def click(self, selector: str) -> None:
        left, top, right, bottom = self.box(selector)
        x, y = (left + right) / 2, (top + bottom) / 2
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        """Replace what a text box holds, as a reader does: select all, type."""
        self.send("DOM.focus", nodeId=self.node(selector))
        self.send("Input.dispatchKeyEvent", type="keyDown", key="a", code="KeyA",
                  modifiers=2, commands=["selectAll"])
        self.send("Input.dispatchKeyEvent", type="keyUp", key="a", code="KeyA", modifiers=2)
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        """The whole page as laid out in the viewport's width."""
        import base64

        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"],
                               "height": size["height"], "scale": 1})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        os.close(self._to_chrome)
        os.close(self._from_chrome)


PHONE = (375, 667)


def _text(html_text: str) -> str:
    import html as html_lib

    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html_text)).split())


def _fits_the_phone(dt: DevTools) -> None:
    """No horizontal scroll: the page is no wider than the phone, nor is any form control."""
    metrics = dt.send("Page.getLayoutMetrics")
    assert metrics["cssLayoutViewport"]["clientWidth"] == PHONE[0]
    assert metrics["cssContentSize"]["width"] <= PHONE[0], metrics["cssContentSize"]
    for selector in ("input[type=text]", "button[value=check]", "button[value=reveal]"):
        left, _, right, _ = dt.box(selector)
        assert 0 <= left and right <= PHONE[0], (selector, left, right)


@pytest.mark.slow
def test_practice_page_clicked_on_a_phone_with_scripts_off(course_root, server, tmp_path):
    """A reader's whole round on a 375×667 phone with JavaScript disabled and no network but
    the service: type the right answer, submit, read "correct"; type an answer a named
    mistake leads to, read the mistake's name; ask for the worked solution; get a new
    variant. The answers come from the page's own ticket (its seed) through the library."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from browser import FLAGS, RecordingProxy, chromium

    from convpset.problems import families
    from convpset.problems.checking import mistakes_of
    from convpset.service.practice import from_ticket

    browser = chromium()
    docs = _shots(tmp_path)
    flags = [f for f in FLAGS if not f.startswith("--virtual-time-budget")]
    url = server[0] + "/practice/param_count/1"
    with RecordingProxy() as proxy:
        dt = DevTools([browser, *flags, "--disable-features=AutofillServerCommunication",
                       f"--proxy-server=http://127.0.0.1:{proxy.port}",
                       f"--user-data-dir={tmp_path / 'profile'}",
                       f"--window-size={PHONE[0]},{PHONE[1]}", "about:blank"])
        try:
            dt.attach()
            dt.send("Page.enable")
            dt.send("Emulation.setDeviceMetricsOverride", width=PHONE[0], height=PHONE[1],
                    deviceScaleFactor=1, mobile=True)
            dt.send("Emulation.setScriptExecutionDisabled", value=True)
            dt.load(lambda: dt.send("Page.navigate", url=url))
            ticket = _ticket(dt.html())
            _fits_the_phone(dt)
            dt.screenshot(docs / "practice_phone.png")

            key = _practice_key(course_root, "param_count", 1, ticket)
            for name, answer in key.items():
                dt.type_into(f"#a-{name}", answer)
            dt.load(lambda: dt.click("button[value=check]"))
            verdicts = dt.html("#verdicts")
            assert verdicts.count('class="correct"') == len(key) and "wrong" not in verdicts
            assert _ticket(dt.html()) == ticket
            _fits_the_phone(dt)

            # an answer the "no bias in the dense layer" misconception leads to
            prob = from_ticket(load_course(course_root), "param_count", 1, ticket).problem
            mistake = next(m for m in mistakes_of(prob.fam, prob.variant)
                           if m.key == "dense_no_bias")
            wrong = str(int(mistake.answers["dense_params"]))
            named = next(r for r in prob.judge({**{n: None for n in key},
                                                "dense_params_1": _submitted(wrong)})
                         if r.part == "dense_params_1")
            assert named.mistake == "dense_no_bias"
            dt.type_into("#a-dense_params_1", wrong)
            dt.load(lambda: dt.click("button[value=check]"))
            verdicts = dt.html("#verdicts")
            assert verdicts.count('class="correct"') == len(key) - 1
            assert named.message["en"] in _text(verdicts)
            dt.screenshot(docs / "practice_verdict_phone.png")

            assert not dt.has("#worked")
            dt.load(lambda: dt.click("button[value=reveal]"))
            assert dt.has("#worked") and _text(dt.html("#worked"))
            _fits_the_phone(dt)

            dt.load(lambda: dt.click("a.button"))
            fresh = _ticket(dt.html())
            assert fresh != ticket and not dt.has("#verdicts") and not dt.has("#worked")

            # the widest statements (matrices, networks) scroll inside their box, not the page
            for family, fam in families().items():
                level = max(fam.levels)
                dt.load(lambda f=family, lv=level:
                        dt.send("Page.navigate", url=f"{server[0]}/practice/{f}/{lv}"))
                _fits_the_phone(dt)
        finally:
            dt.close()
        assert proxy.page_requests() == []


def _submitted(text: str):
    from convpset.service.wire import parse_answer_text, submitted

    return submitted(parse_answer_text(text))
