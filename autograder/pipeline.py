"""The grading path as a chain of small steps (nbgrader's preprocessor pipeline, without
a Jupyter kernel and without trusting the student):

read → verify stamp → assemble cells (canonical data cells restored) → execute in the
sandbox → convert answers to plain data → judge against the key → StudentResult.

The invariant, enforced here once for every step (and in :mod:`.batch` for the steps
after it): whatever one notebook or its child does, a failure while handling it becomes
that student's row -- 0 points, flag ``grader_error``, a note from the text tables
(:func:`failed_result`) -- never an exception out of the batch; and every string that came
from student code is valid UTF-8 and length-capped (:func:`safe_data`) before it reaches
a note, a file or a page.

Only :func:`assemble` output (code cells and answer names) ever reaches the student's
process; the key, the secret and other students' data stay in the grading process.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from convpset.autograder import similarity
from convpset.autograder.results import ProblemResult, StudentResult, note
from convpset.autograder.sandbox import Answer, ExecResult, Limits, run_many
from convpset.autograder.sandbox.convert import clean_text
from convpset.autograder.submissions import (
    MAX_CELLS,
    MAX_JSON_TOKENS,
    MAX_NOTEBOOK_BYTES,
    Submission,
    iter_code_cells,
    read_notebook,
)
from convpset.autograder.untrusted import terminal_text
from convpset.notebooks.cells import ROLE_KEY, answer_cell_id, is_notice
from convpset.notebooks.course import Course
from convpset.notebooks.variants import (
    STAMP_KEY,
    Problem,
    problems_for,
    problems_from_stamp,
    verify_stamp,
)
from convpset.problems.base import PartResult
from convpset.problems.checking import Submitted
from convpset.problems.text import render_all

log = logging.getLogger(__name__)
SETUP_CELL = "import numpy as np"
GRADER_ERROR = "grader_error"
TEXT_CAP = 20_000          # characters of any one string kept from a result
# Notes per notebook: each is rendered (markdown, formulas) into the feedback page and the
# report, so a notebook of 5,000 failing cells cost half a minute and a 12 MB page; past
# the cap the rest of the cell errors are counted in one note.
NOTE_CAP = 50
# Code (not a comment) that imports torch: such notebooks run in a template with torch
# already imported; the others fork from the lighter numpy-only template.
USES_TORCH = re.compile(r"^[^#\n]*\b(from\s+torch\b|import\s+[^#\n]*\btorch\b)", re.M)


@dataclass
class Plan:
    """What to run for one submission, and what to remember for judging it."""

    sub: Submission
    problems: list[Problem]
    sha256: str = ""
    cells: list[str] = field(default_factory=list)
    cell_problem: list[int | None] = field(default_factory=list)   # problem number per cell
    answer_names: list[str] = field(default_factory=list)
    uses_torch: bool = False
    flags: list[str] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)
    problem_notes: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    final: StudentResult | None = None        # already decided (unreadable, missing)


def key_fingerprint(course: Course, assignment: str) -> str:
    """Changes whenever the key could change: secret, assignment config, package code."""
    from convpset import problems, solutions

    h = hashlib.sha256(course.secret)
    h.update(repr(course.assignment(assignment)).encode())
    for pkg in (problems, solutions):
        for f in sorted(Path(pkg.__file__).parent.rglob("*")):
            if f.suffix in (".py", ".toml"):
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _zero(problems: list[Problem], why: dict[str, str] | None = None) -> tuple[ProblemResult, ...]:
    out = []
    for p in problems:
        parts = tuple(PartResult(part.name, 0.0, part.points, "missing",
                                 why or render_all("feedback.missing", part=part))
                      for part in p.parts())
        out.append(ProblemResult(p.number, p.family, p.level, parts))
    return tuple(out)


def plan(course: Course, assignment: str, sub: Submission, roster_ids: set[str]) -> Plan:
    spec = course.assignment(assignment)
    read = read_notebook(sub.path) if sub.path is not None else None
    nb = read.notebook if read is not None else None
    meta = nb.get("metadata") if isinstance(nb, dict) and isinstance(nb.get("metadata"), dict) else {}
    # A stamp we signed for this very student carries the variants they were issued:
    # grade against those (no need to regenerate); otherwise recompute from the secret.
    issued = problems_from_stamp(course, spec, meta.get(STAMP_KEY), sub.student_id)
    problems = issued if issued is not None else problems_for(course, spec, sub.student_id)
    pl = Plan(sub, problems)
    if sub.student_id not in roster_ids:
        pl.flags.append("unknown_student")
        pl.notes.append(note("grading.unknown_student", student=sub.student_id))
    from convpset.integrations.nbgrader.collected import collect_note

    if (left_out := collect_note(course.root, assignment, sub)) is not None:
        pl.flags.append(left_out[0])    # what nbgrader collect did not copy (links, FIFOs)
        pl.notes.append(left_out[1])
    if sub.issue is not None:          # the student's folder: no notebook, or several
        pl.flags.append(sub.issue)
        pl.notes.append(note(f"page.{sub.issue}", files=", ".join(sub.files) or "—",
                             graded=sub.path.name if sub.path is not None else "",
                             count=len(sub.files)))
    if read is None:
        held = sub.layout == "held"      # files exist, but whose is for the instructor to say
        if not held:
            pl.flags.append("no_submission")
            pl.notes.append(note("grading.missing"))
        pl.final = _finish(pl, _zero(problems), "held" if held else "missing")
        return pl
    pl.sha256 = read.sha256
    if nb is None:
        pl.flags.append("unreadable")
        if read.file_problem is not None:       # a link, FIFO, device, socket, huge file
            pl.flags.append(f"file_{read.file_problem}")
            msg = note("grading.file", reason=read.file_problem,
                       cap_mb=MAX_NOTEBOOK_BYTES // 1_000_000, cells=MAX_CELLS,
                       values=f"{MAX_JSON_TOKENS:,}")
        else:
            msg = note("grading.unreadable", reason=read.error)
        pl.notes.append(msg)
        pl.final = _finish(pl, _zero(problems, msg), "unreadable")
        return pl
    if is_notice(nb):      # the page a fetch gave instead of a notebook: never work
        pl.flags.append("fetch_notice")
        msg = note("grading.fetch_notice")
        pl.notes.append(msg)
        pl.final = _finish(pl, _zero(problems, msg), "unreadable")
        return pl
    if issued is None:
        stamp = verify_stamp(course, meta.get(STAMP_KEY), assignment, sub.student_id, problems)
        if stamp.status != "ok":
            pl.flags.append(f"stamp:{stamp.status}")
            pl.notes.append({lang: render_all("grading.stamp", message=text)[lang]
                             for lang, text in stamp.messages.items()})
        other = stamp.status == "other_student"
    else:
        other = False
    assemble(pl, nb, other_student=other)
    return pl


def _student_cells(nb: dict) -> Iterator[tuple[str | None, int | None, dict, str]]:
    """(role, problem number, nbgrader metadata, source) of every code cell that may run:
    our setup cell, hidden tests and self-checks are left out."""
    for _, meta, src in iter_code_cells(nb):
        role = meta.get(ROLE_KEY)
        number = meta.get("pset_problem") if isinstance(meta.get("pset_problem"), int) else None
        nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
        if role in ("setup", "test", "selfcheck") or nbg.get("grade") is True:
            continue
        yield role, number, nbg, src


def assemble(pl: Plan, nb: dict, other_student: bool = False) -> None:
    """The cells to execute: the student's code in notebook order, with our setup and
    data cells restored, tests and self-checks left out.

    ``other_student``: the notebook was issued to someone else, so its data cells differ
    by design; the stamp note says so and an "edited data" note would only confuse.
    """
    by_number = {p.number: p for p in pl.problems}
    data_done: set[int] = set()
    answers_seen: set[int] = set()

    def add(src: str, number: int | None) -> None:
        pl.cells.append(src)
        pl.cell_problem.append(number)

    def restore_data(n: int) -> None:
        if n in by_number and n not in data_done:
            data_done.add(n)
            pl.problem_notes.setdefault(n, []).append(note("grading.data_missing", number=n))
            add(by_number[n].data_code(), n)

    answer_ids = {answer_cell_id(p.number): p.number for p in pl.problems}
    add(SETUP_CELL, None)
    for role, number, nbg, src in _student_cells(nb):
        if role == "data" and number in by_number:
            if number in data_done:       # a copy, or moved below its answer cell
                continue
            canonical = by_number[number].data_code()
            if src.strip() != canonical.strip() and not other_student:
                pl.flags.append("edited_data")
                pl.problem_notes.setdefault(number, []).append(
                    note("grading.data_edited", number=number))
            data_done.add(number)
            add(canonical, number)
            continue
        grade_id = nbg.get("grade_id")
        answer_of = answer_ids.get(grade_id) if isinstance(grade_id, str) else None
        if answer_of is not None:
            number = answer_of
            answers_seen.add(number)
            restore_data(number)
        if "torch" in src and USES_TORCH.search(src):
            pl.uses_torch = True
        add(src, number if number in by_number else None)
    for p in pl.problems:
        if p.number not in answers_seen:
            pl.flags.append("missing_cells")
            pl.problem_notes.setdefault(p.number, []).append(
                note("grading.answer_cell_missing", number=p.number))
    pl.answer_names = [part.name for p in pl.problems for part in p.parts()]


def notebook_uses_torch(path: Path | None) -> bool:
    """Whether a returned notebook's own code imports torch (False when unreadable): the
    same cells :func:`assemble` runs as the student's, data cells being ours."""
    read = read_notebook(path) if path is not None else None
    if read is None or not isinstance(read.notebook, dict):
        return False
    return any(role != "data" and USES_TORCH.search(src)
               for role, _, _, src in _student_cells(read.notebook))


def _submitted(a: Answer | None) -> Submitted | None:
    if a is None:
        return None
    return Submitted(a.present, a.source_type, a.value, a.error, a.rows)


def judge(pl: Plan, ex: ExecResult, limits: Limits) -> StudentResult:
    """Combine the execution result with the key: the grading process's own work."""
    if ex.status != "ok":
        pl.flags.append(ex.status)
        why = render_all(f"exec.{ex.status}", limits=limits, detail=ex.detail)
        pl.notes.append(why)
    else:
        why = None
    room = max(0, NOTE_CAP - note_count(pl))
    for ce in ex.cell_errors:
        pl.flags.append("cell_timeout" if ce.ename == "CellTimeout" else "cell_error")
    for ce in ex.cell_errors[:room]:
        number = pl.cell_problem[ce.index] if 0 <= ce.index < len(pl.cell_problem) else None
        if number is None:
            pl.notes.append(note("grading.cell_error_extra", ename=ce.ename, evalue=ce.evalue))
        else:
            pl.problem_notes.setdefault(number, []).append(
                note("grading.cell_error", number=number, ename=ce.ename, evalue=ce.evalue))
    if len(ex.cell_errors) > room:
        pl.notes.append(note("grading.more_notes", count=len(ex.cell_errors) - room, shown=room))
    results = []
    prints: dict[str, dict] = {}
    for p in pl.problems:
        answers = {name: _submitted(ex.answers.get(name)) for name in
                   (part.name for part in p.parts())}
        parts = p.judge(answers)
        similarity.merge_prints(prints, similarity.problem_prints(p, answers, parts))
        if why is not None:
            parts = [PartResult(r.part, r.score, r.max_score, r.status,
                                {lang: render_all("grading.not_collected", part=part,
                                                  why=why[lang])[lang] for lang in why})
                     if r.status == "missing" else r
                     for r, part in zip(parts, p.parts(), strict=True)]
        results.append(ProblemResult(p.number, p.family, p.level, tuple(parts),
                                     tuple(pl.problem_notes.get(p.number, []))))
    done = _finish(pl, tuple(results), ex.status, ex)
    return replace(done, extra={**done.extra, similarity.PRINTS: prints})


def note_count(pl: Plan) -> int:
    """Notes the plan holds so far, on the notebook and on its problems."""
    return len(pl.notes) + sum(len(v) for v in pl.problem_notes.values())


def _finish(pl: Plan, problems: tuple[ProblemResult, ...], status: str,
            ex: ExecResult | None = None) -> StudentResult:
    return StudentResult(
        student_id=pl.sub.student_id, assignment="", path=None if pl.sub.path is None else str(pl.sub.path),
        sha256=pl.sha256, problems=problems, flags=tuple(dict.fromkeys(pl.flags)),
        notes=tuple(pl.notes), exec_status=status,
        duration_s=0.0 if ex is None else round(ex.duration_s, 4),
        stdout_tail="" if ex is None else ex.stdout_tail[-2000:])


def grade_stream(course: Course, assignment: str, subs: Iterable[Submission], *,
                 limits: Limits, jobs: int, roster_ids: set[str]) -> Iterator[Plan]:
    """Grade submissions lazily, in order, with up to ``jobs`` sandboxes at once.

    Yields each Plan with ``final`` (its StudentResult) set, in submission order; the plan
    also carries the student's problems for the feedback page. Plans are made one at a
    time as the sandbox pool asks for work, so memory does not grow with the batch.
    """
    ordered: collections.deque[Plan] = collections.deque()
    awaiting: collections.deque[Plan] = collections.deque()

    def tasks() -> Iterator[tuple[list[str], list[str], bool]]:
        for sub in subs:
            pl = guarded_plan(course, assignment, sub, roster_ids)
            ordered.append(pl)
            if pl.final is None:
                awaiting.append(pl)
                yield pl.cells, pl.answer_names, pl.uses_torch

    def ready() -> Iterator[Plan]:
        while ordered and ordered[0].final is not None:
            pl = ordered.popleft()
            pl.final = _stamped(pl.final, assignment)
            yield pl

    for ex in run_many(tasks(), limits, jobs):
        pl = awaiting.popleft()
        pl.final = guarded_judge(pl, ex, limits)
        yield from ready()
    yield from ready()


def _stamped(r: StudentResult, assignment: str) -> StudentResult:
    from dataclasses import replace

    return replace(r, assignment=assignment)


# ----------------------------------------------------------------------------- the invariant
def safe_data(x, depth: int = 0):
    """A copy of result data (dicts, lists, strings, numbers) with every string valid
    UTF-8 and at most TEXT_CAP characters; anything else becomes its capped repr."""
    if isinstance(x, str):
        return clean_text(x, TEXT_CAP)
    if x is None or isinstance(x, bool | int | float):
        return x
    if depth > 50:
        return "<too deep>"
    if isinstance(x, dict):
        return {safe_data(str(k)): safe_data(v, depth + 1) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [safe_data(v, depth + 1) for v in x]
    return clean_text(repr(x), TEXT_CAP)


def failed_result(sub: Submission, problems: list[Problem] | None, step: str,
                  err: BaseException | None = None, sha256: str = "") -> StudentResult:
    """The row of a student whose notebook the grader failed on: 0 points for every part,
    flag ``grader_error``, a note; ``extra`` says which step and what was raised, for the
    instructor. Logged, never raised."""
    # the id (a folder name) and the error text are the student's: inert on a terminal
    log.warning("grader error for %s at %s: %s", terminal_text(sub.student_id), step,
                terminal_text(repr(err), 2000))
    msg = note("grading.grader_error")
    pl = Plan(sub, list(problems or []), sha256=sha256)
    pl.flags.append(GRADER_ERROR)
    pl.notes.append(msg)
    r = _finish(pl, _zero(pl.problems, msg), GRADER_ERROR)
    from dataclasses import replace

    what = "" if err is None else clean_text(f"{type(err).__name__}: {err}"[:500], 500)
    return replace(r, extra={GRADER_ERROR: {"step": step, "error": what}})


def _problems_or_none(course: Course, assignment: str, sub: Submission) -> list[Problem] | None:
    try:
        return problems_for(course, course.assignment(assignment), sub.student_id)
    except Exception:
        return None


def guarded_plan(course: Course, assignment: str, sub: Submission, roster_ids: set[str]) -> Plan:
    """:func:`plan`, or a Plan already decided as a grader error (reading, stamp, assembly)."""
    try:
        return plan(course, assignment, sub, roster_ids)
    except Exception as err:      # RecursionError, MemoryError-free failures of any step
        problems = _problems_or_none(course, assignment, sub)
        pl = Plan(sub, problems or [])
        pl.final = failed_result(sub, problems, "plan", err)
        return pl


def guarded_judge(pl: Plan, ex: ExecResult, limits: Limits) -> StudentResult:
    """:func:`judge`, or the student's grader-error row."""
    if ex.status == GRADER_ERROR:
        return failed_result(pl.sub, pl.problems, "run", None, pl.sha256)
    try:
        return judge(pl, ex, limits)
    except Exception as err:
        return failed_result(pl.sub, pl.problems, "judge", err, pl.sha256)
