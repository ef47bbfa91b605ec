"""The batch invariant under fuzzing (issue 12, item 1).

Whatever the notebooks' bytes and whatever a child sends back on its result channel --
random bytes, deep nesting, lone surrogates, huge numbers, wrong types, truncation --
``grade_folder`` finishes, every roster student has exactly one row, nothing raises, and
every file it writes is valid UTF-8.

Two drivers: the whole pipeline with the sandbox's run replaced by the real parent-side
decoding of a fuzzed frame (hundreds of cases per second), and a few real sandboxes whose
student code writes the fuzzed frame to the real result pipe itself.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convpset.autograder import pipeline
from convpset.autograder.batch import BatchOptions, grade_folder
from convpset.autograder.sandbox import ExecResult, Limits, parent
from convpset.notebooks.course import load_course

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
STUDENTS = ["s001", "s002", "s003"]
LIMITS = Limits(wall_s=30, cell_s=5, cpu_s=10)

# ----------------------------------------------------------------------------- strategies
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.text(st.one_of(st.characters(), SURROGATE), max_size=40)
HUGE = st.one_of(st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                 st.sampled_from([10 ** 400, -(10 ** 400), float("inf"), float("nan"), 1e308]))
SCALAR = st.one_of(st.none(), st.booleans(), HUGE, st.floats(), TEXT)
JSONISH = st.recursive(SCALAR, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(TEXT, kids, max_size=4)), max_leaves=12)


def _deep(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


def _dumps(x) -> str:
    """JSON text that may carry lone surrogates (escaped), NaN/Infinity and huge ints."""
    try:
        return json.dumps(x)
    except (ValueError, TypeError, RecursionError):
        return "null"


@st.composite
def frames(draw):
    """A recipe that becomes a result frame once the answer names are known."""
    kind = draw(st.sampled_from(["raw", "json", "answers", "answers", "deep"]))
    cut = draw(st.one_of(st.none(), st.none(), st.integers(min_value=0, max_value=400)))
    rc = draw(st.sampled_from([0, 1, -9, -11, -24, 111, 112, 3]))
    if kind == "raw":
        body = draw(st.binary(max_size=300))
        return ("raw", body, cut, rc)
    if kind == "json":
        return ("json", _dumps(draw(JSONISH)), cut, rc)
    if kind == "deep":
        depth = draw(st.sampled_from([100, 1000, 50_000, 200_000]))
        return ("deep", _deep(depth, draw(st.sampled_from(["list", "dict"]))), cut, rc)
    # well-formed entries half of the time (so frames reach judging, notes and pages)
    clean = st.fixed_dictionaries({"present": st.booleans(), "source_type": TEXT,
                                   "error": st.one_of(st.none(), TEXT)})
    messy = st.fixed_dictionaries({
        "present": st.one_of(st.booleans(), SCALAR), "source_type": st.one_of(TEXT, SCALAR),
        "error": st.one_of(st.none(), TEXT, SCALAR),
    }, optional={
        "dtype": st.sampled_from([None, "<f8", "<i8", "|b1", "|O", 5]),
        "shape": st.one_of(st.lists(st.integers(-3, 10 ** 13), max_size=4), SCALAR),
        "rows": st.one_of(st.none(), st.lists(st.integers(-2, 20), max_size=4), SCALAR)})
    entry = clean if draw(st.booleans()) else st.one_of(clean, messy)
    ents = draw(st.lists(entry, min_size=1, max_size=6))
    exact = draw(st.sampled_from([True, True, True, False]))
    ces = draw(st.one_of(st.lists(st.fixed_dictionaries(
        {"index": st.integers(-5, 100), "ename": TEXT, "evalue": TEXT, "traceback_tail": TEXT}),
        max_size=4), JSONISH, st.lists(st.fixed_dictionaries(
            {"index": st.one_of(st.integers(-5, 100), SCALAR), "ename": st.one_of(TEXT, SCALAR),
             "evalue": st.one_of(TEXT, SCALAR), "traceback_tail": st.one_of(TEXT, SCALAR)}),
            max_size=4)))
    payload = draw(st.one_of(st.just(b""), st.just(b""), st.binary(max_size=200)))
    return ("answers", (ents, ces, draw(st.booleans()), payload, exact), cut, rc)


def build_frame(recipe, names: list[str]) -> bytes:
    kind, body, cut, _rc = recipe
    if kind == "raw":
        buf = body
    else:
        if kind == "answers":
            ents, ces, mem, payload, exact = body
            if exact:        # one entry per answer name, cycling through the drawn ones
                ents = [ents[i % len(ents)] for i in range(len(names))]
            answers = [dict(e, name=n) for e, n in zip(ents, names, strict=False)]
            header = _dumps({"answers": answers, "cell_errors": ces, "memory_error": mem,
                             "isolation": {}})
        elif kind == "deep":
            header = '{"answers": [], "cell_errors": ' + body + "}"
            payload = b""
        else:
            header, payload = body, b""
        hb = header.encode("utf-8", "surrogatepass")
        buf = b"AGSB" + struct.pack("<Q", len(hb)) + hb + payload
    return buf if cut is None else buf[:cut]


NOTEBOOK_BYTES = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda x: _dumps(x).encode("utf-8", "surrogatepass"), JSONISH),
    st.builds(lambda d, k: ('{"nbformat": 4, "cells": [], "metadata": ' + _deep(d, k) + "}").encode(),
              st.sampled_from([10, 100, 5000, 100_000]), st.sampled_from(["list", "dict"])),
    st.builds(lambda cells, meta: _dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta,
                                          "cells": cells}).encode("utf-8", "surrogatepass"),
              st.lists(st.one_of(JSONISH, st.fixed_dictionaries({
                  "cell_type": st.sampled_from(["code", "markdown", 3]),
                  "source": st.one_of(TEXT, st.lists(TEXT, max_size=3), SCALAR),
                  "metadata": st.one_of(JSONISH, st.fixed_dictionaries({
                      "nbgrader": st.one_of(JSONISH, st.fixed_dictionaries(
                          {"grade_id": st.one_of(TEXT, st.sampled_from(["answer_1", "data_2"])),
                           "grade": st.one_of(st.booleans(), SCALAR)})),
                      "pset_role": st.one_of(st.sampled_from(["data", "answer", "test"]), SCALAR),
                      "pset_problem": st.one_of(st.integers(-2, 7), SCALAR)}))})), max_size=6),
              st.one_of(JSONISH, st.fixed_dictionaries({"pset_stamp": JSONISH}))),
)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def course_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fuzz-course")
    shutil.copy2(EXAMPLE / "pset.toml", d / "pset.toml")
    lines = (EXAMPLE / "roster.csv").read_text().splitlines()
    (d / "roster.csv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:]
                                                          if ln.split(",")[0] in STUDENTS]) + "\n")
    return d


def _submit(course: Path, tag: str, notebooks: list[bytes | None]) -> Path:
    sub = course / f"submitted-{tag}"
    shutil.rmtree(sub, ignore_errors=True)
    for sid, data in zip(STUDENTS, notebooks, strict=True):
        if data is not None:
            (sub / sid / ASSIGNMENT).mkdir(parents=True)
            (sub / sid / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_bytes(data)
    sub.mkdir(exist_ok=True)
    return sub


def _check_invariant(out: Path, report) -> None:
    """Every roster student has one row; every output file is valid UTF-8 and parses."""
    ids = {r.student_id for r in report.results}
    assert ids >= set(STUDENTS), ids
    rows = list(csv.DictReader(io.StringIO((out / "grades.csv").read_bytes().decode("utf-8"))))
    assert {r["student_id"] for r in rows} >= set(STUDENTS)
    # split on "\n" only: str.splitlines() would also split inside strings at U+0085 etc.
    for line in (out / "journal.jsonl").read_bytes().decode("utf-8").split("\n")[:-1]:
        json.loads(line)
    json.loads((out / "results.json").read_bytes().decode("utf-8"))
    for page in (out / "feedback").glob("*.html"):
        page.read_bytes().decode("utf-8")
    for r in report.results:
        if "grader_error" in r.flags:
            assert r.score == 0 and r.notes


def _fake_run_many(recipes):
    """run_many whose children 'sent' the fuzzed frames: decoded by the real parent code."""
    def run_many(tasks, limits, jobs, **_kw):
        for i, (_cells, names, *_rest) in enumerate(tasks):
            recipe = recipes[i % len(recipes)]
            ch = parent._Channel(limits)
            ch.take_result(build_frame(recipe, list(names)))
            ch.exit_info = (recipe[3], 0.5, 10_000)
            status, detail, answers, errs, iso = parent._outcome(
                ch, False, list(names), limits, "tail \udc80", False)
            yield ExecResult(status, detail, answers, errs, "tail \udc80", 0.1, iso)
    return run_many


# ----------------------------------------------------------------------------- the tests
@pytest.mark.slow
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(notebooks=st.lists(st.one_of(st.none(), NOTEBOOK_BYTES), min_size=3, max_size=3),
       recipes=st.lists(frames(), min_size=1, max_size=3))
def test_invariant_with_fuzzed_notebooks_and_frames(course_dir, monkeypatch, notebooks, recipes):
    # real notebooks of the sample course for some students, so frames meet real plans
    real = [(EXAMPLE / "submitted" / sid / ASSIGNMENT / "conv1.ipynb").read_bytes()
            for sid in STUDENTS]
    notebooks = [real[i] if nb is None else nb for i, nb in enumerate(notebooks)]
    monkeypatch.setattr(pipeline, "run_many", _fake_run_many(recipes))
    sub = _submit(course_dir, "fuzz", notebooks)
    out = course_dir / "out-fuzz"
    shutil.rmtree(out, ignore_errors=True)
    report = grade_folder(sub, load_course(course_dir), ASSIGNMENT,
                          BatchOptions(out=out, jobs=1, limits=LIMITS))
    _check_invariant(out, report)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(recipe=frames())
def test_invariant_with_frames_forged_inside_a_real_sandbox(course_dir, recipe):
    """The student's own code writes the fuzzed frame on the real result pipe and exits."""
    real = (EXAMPLE / "submitted" / "s001" / ASSIGNMENT / "conv1.ipynb").read_text()
    nb = json.loads(real)
    names = ["W_1"]          # the frame's answer entries are matched by position anyway
    frame = build_frame(recipe, names)
    code = f"import os\nos.write(3, {frame!r})\nos._exit(0)\n"
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code" and cell.get("id", "").startswith("answer_"):
            cell["source"] = code
            break
    data = json.dumps(nb).encode()
    sub = _submit(course_dir, "real", [data, None, b"\xff\xfe not json"][:1]
                  + [(EXAMPLE / "submitted" / "s002" / ASSIGNMENT / "conv1.ipynb").read_bytes(),
                     b"\xff\xfe not json"])
    out = course_dir / "out-real"
    shutil.rmtree(out, ignore_errors=True)
    report = grade_folder(sub, load_course(course_dir), ASSIGNMENT,
                          BatchOptions(out=out, jobs=1, limits=LIMITS))
    _check_invariant(out, report)
    row = next(r for r in report.results if r.student_id == "s001")
    assert row.exec_status in ("bad_result", "exited", "ok", "crashed"), row.exec_status


def test_a_failing_step_becomes_that_students_grader_error_row(course_dir, monkeypatch):
    """Any exception in a per-notebook step (here: judging s002) is that student's row
    (0, flag grader_error, a note in every language); the others are graded normally."""
    real_judge = pipeline.judge

    def judge(pl, ex, limits):
        if pl.sub.student_id == "s002":
            raise RecursionError("maximum recursion depth exceeded")
        return real_judge(pl, ex, limits)

    monkeypatch.setattr(pipeline, "judge", judge)
    sub = _submit(course_dir, "judge", [(EXAMPLE / "submitted" / sid / ASSIGNMENT /
                                         "conv1.ipynb").read_bytes() for sid in STUDENTS])
    out = course_dir / "out-judge"
    shutil.rmtree(out, ignore_errors=True)
    report = grade_folder(sub, load_course(course_dir), ASSIGNMENT,
                          BatchOptions(out=out, jobs=1, limits=LIMITS))
    _check_invariant(out, report)
    rows = {r.student_id: r for r in report.results}
    bad = rows["s002"]
    assert bad.flags == ("grader_error",) and bad.score == 0
    assert set(bad.notes[0]) >= {"en", "ru"} and bad.notes[0]["en"] != bad.notes[0]["ru"]
    assert bad.extra["grader_error"]["step"] == "judge"
    assert all("grader_error" not in rows[s].flags for s in ("s001", "s003"))
    # graded again on the next run (no fingerprint), the others are skipped
    monkeypatch.setattr(pipeline, "judge", real_judge)
    again = grade_folder(sub, load_course(course_dir), ASSIGNMENT,
                         BatchOptions(out=out, jobs=1, limits=LIMITS))
    assert again.graded == 1 and again.skipped == 2
    assert "grader_error" not in {r.student_id: r for r in again.results}["s002"].flags


def test_feedback_failure_is_a_row_not_a_crash(course_dir, monkeypatch):
    from convpset.autograder import batch

    real = batch.feedback_html

    def boom(r, problems, lang, reveal, answers=None):
        if r.student_id == "s003" and "grader_error" not in r.flags:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(r, problems, lang, reveal)

    monkeypatch.setattr(batch, "feedback_html", boom)
    sub = _submit(course_dir, "page", [(EXAMPLE / "submitted" / sid / ASSIGNMENT /
                                        "conv1.ipynb").read_bytes() for sid in STUDENTS])
    out = course_dir / "out-page"
    shutil.rmtree(out, ignore_errors=True)
    report = grade_folder(sub, load_course(course_dir), ASSIGNMENT,
                          BatchOptions(out=out, jobs=1, limits=LIMITS))
    _check_invariant(out, report)
    rows = {r.student_id: r for r in report.results}
    assert "grader_error" in rows["s003"].flags and rows["s003"].extra["grader_error"]["step"] == "feedback"
