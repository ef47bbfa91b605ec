"""``grade DIR``: the whole batch, resumable, with every output a course publishes."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from convpset.autograder import sandbox, similarity
from convpset.autograder.guards import check_jobs, check_lang, check_submissions_folder, say
from convpset.autograder.outputs import (
    Journal,
    atomic_write,
    feedback_file,
    feedback_html,
    grades_csv,
    part_columns,
    results_json,
)
from convpset.autograder.pipeline import (
    GRADER_ERROR,
    Plan,
    failed_result,
    grade_stream,
    key_fingerprint,
    notebook_uses_torch,
    safe_data,
)
from convpset.autograder.regrade import archive, diff_results, drop_archive, grading_policy
from convpset.autograder.results import StudentResult
from convpset.autograder.sandbox import Limits
from convpset.autograder.sandbox.namespaces import die_with_parent
from convpset.autograder.submissions import (
    HELD,
    Submission,
    Unowned,
    discover_all,
    is_held,
    unowned_csv,
    unowned_json,
)
from convpset.autograder.term import StudentTerm, TermContext, term_digest
from convpset.autograder.term import apply as apply_term
from convpset.autograder.untrusted import json_text
from convpset.notebooks.course import Course, CourseError, load_course, load_roster
from convpset.notebooks.variants import problems_for


@dataclass(frozen=True)
class BatchOptions:
    out: Path | None = None
    jobs: int = 0
    lang: str | None = None
    reveal: bool = False
    regrade: bool = False
    limits: Limits = Limits()
    executor: str = "local"
    scheduler: str | None = None


@dataclass
class BatchReport:
    assignment: str
    out_dir: Path
    graded: int = 0
    skipped: int = 0
    results: list[StudentResult] = field(default_factory=list)
    seconds: float = 0.0
    archived: Path | None = None
    changes: list[dict] = field(default_factory=list)
    unowned: list[Unowned] = field(default_factory=list)   # files no student received
    lang: str = "en"


def detect_assignment(folder: Path, course: Course) -> str:
    """The assignment a submissions folder belongs to (nbgrader layout or course config)."""
    names = set(course.assignments)
    if folder.name in names:
        return folder.name
    inner = {p.name for d in folder.iterdir() if d.is_dir() for p in d.iterdir() if p.is_dir()}
    hits = sorted(inner & names)
    if len(hits) == 1:
        return hits[0]
    if len(names) == 1:
        return next(iter(names))
    raise CourseError(say("which_assignment", folder=folder,
                          assignments=", ".join(sorted(names))))


def file_sha(path: Path | None) -> str:
    """The notebook's SHA-256 as :func:`~.submissions.read_notebook` records it, streamed
    and capped: "" for a file that is not read (a link, FIFO, device, one over the size
    cap), as in its journal row, so an unchanged bad file is not graded again and a
    100 GB file is never read."""
    from convpset.autograder.submissions import MAX_NOTEBOOK_BYTES
    from convpset.autograder.untrusted import StudentFileError, sha256_bounded

    if path is None:
        return ""
    try:
        return sha256_bounded(path, MAX_NOTEBOOK_BYTES)
    except StudentFileError:
        return ""


CHUNK = 8


def _with_feedback(stream: Iterable[Plan], lang: str, reveal: bool, course: Course,
                   assignment: str, terms: Mapping[str, StudentTerm] | None = None
                   ) -> Iterator[tuple[dict, str]]:
    """(result as JSON data, feedback page) per plan: what the journal and disk get.

    The page is headed with the student's name from the roster and the assignment's
    title. Rendering one student's page or data never stops the batch: a failure becomes
    that student's grader-error row (see :mod:`.pipeline`).
    """
    title = course.assignment(assignment).title
    names = _roster_names(course.roster_path)
    for pl in stream:
        assert pl.final is not None
        name = names.get(pl.final.student_id, "")
        try:
            t = (terms or {}).get(pl.final.student_id)
            if t is not None:     # overrides and lateness: the final result every output shows
                pl.final = apply_term(pl.final, t)
            data = pl.final.to_json()
            data["extra"]["policy"] = grading_policy(pl.problems)
            out = safe_data(data), _page(pl.final, pl.problems, lang, reveal, name, title)
        except Exception as err:
            row = failed_result(pl.sub, pl.problems, "feedback", err, pl.sha256)
            out = _failed_output(row, pl.problems, lang, name, title)
        yield out


@lru_cache(maxsize=4)
def _roster_names(path: Path) -> dict[str, str]:
    """Student id -> "First Last" (ids without a name are left out)."""
    try:
        roster = load_roster(path)
    except CourseError:
        return {}
    return {s.student_id: f"{s.first_name} {s.last_name}".strip() for s in roster
            if (s.first_name or s.last_name)}


def _page(r: StudentResult, problems: list, lang: str, reveal: bool, name: str = "",
          title: str = "") -> str:
    html = feedback_html(r, problems, lang, reveal, name=name, title=title)
    return html.encode("utf-8", "replace").decode("utf-8")


def _failed_output(row: StudentResult, problems: list, lang: str, name: str = "",
                   title: str = "") -> tuple[dict, str]:
    """(data, page) of a grader-error row; the page without the statements if even
    those cannot be rendered."""
    try:
        page = _page(row, problems, lang, False, name, title)
    except Exception:
        page = _page(row, [], lang, False, name, title) if not row.problems else ""
    return safe_data(row.to_json()), page


def _failed_chunk(root: str, assignment: str, subs: list[Submission], lang: str,
                  err: BaseException) -> list[tuple[dict, str]]:
    """A worker died or raised on a chunk: every student of it gets a grader-error row."""
    course = _worker_course(root)
    out = []
    for sub in subs:
        try:
            problems = problems_for(course, course.assignment(assignment), sub.student_id)
        except Exception:
            problems = []
        out.append(_failed_output(failed_result(sub, problems, "worker", err), problems, lang))
    return out


def _uses_torch(path: Path | None) -> bool:
    try:
        return notebook_uses_torch(path)
    except Exception:
        return False


def _grade_chunk(root: str, assignment: str, subs: list[Submission], limits: Limits,
                 roster_ids: set[str], lang: str, reveal: bool,
                 terms: Mapping[str, StudentTerm] | None = None) -> list[tuple[dict, str]]:
    """Worker process: plan, execute, judge and render a chunk, end to end.

    Splitting whole submissions across processes uses every core for the grading
    process's own work too (variants, judging, feedback), not only for the sandboxes.
    """
    course = _worker_course(root)
    stream = grade_stream(course, assignment, subs, limits=limits, jobs=1, roster_ids=roster_ids)
    return list(_with_feedback(stream, lang, reveal, course, assignment, terms))


def _init_worker(zygote: socket.socket, parent_pid: int) -> None:
    """Worker start-up: die with the grading process (even a ``kill -9`` of it), and fork
    sandboxes from its warm templates."""
    die_with_parent(parent_pid)
    sandbox.attach_zygote(zygote)


@lru_cache(maxsize=4)
def _worker_course(root: str) -> Course:
    return load_course(Path(root))


def _results(course: Course, assignment: str, todo: list[Submission], opts: BatchOptions,
             jobs: int, roster_ids: set[str], lang: str,
             terms: Mapping[str, StudentTerm] | None = None) -> Iterator[tuple[dict, str]]:
    """Results from the chosen executor (in completion order across worker chunks)."""
    if opts.executor == "dask":
        from convpset.autograder.dask_executor import grade_stream_dask

        stream = grade_stream_dask(course, assignment, todo, limits=opts.limits,
                                   roster_ids=roster_ids, scheduler=opts.scheduler, jobs=jobs)
        yield from _with_feedback(stream, lang, opts.reveal, course, assignment, terms)
        return
    if jobs <= 1 or len(todo) <= CHUNK:
        stream = grade_stream(course, assignment, todo, limits=opts.limits, jobs=jobs,
                              roster_ids=roster_ids)
        yield from _with_feedback(stream, lang, opts.reveal, course, assignment, terms)
        return
    # The torch template takes seconds to import: start it now, while the workers start,
    # and move the first notebooks that need it to the end so nobody waits for it.
    head = [s for s in todo[:8 * CHUNK] if _uses_torch(s.path)]
    if head:
        sandbox.prewarm_torch()
        moved = {s.student_id for s in head}
        todo = [s for s in todo if s.student_id not in moved] + head
    chunks = iter([todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK)])
    ctx = multiprocessing.get_context("spawn")
    # The workers share one warm template tree (numpy, and torch once a notebook needs it)
    # instead of each importing its own: start-up cost and memory paid once per batch.
    given: dict[Future, list[Submission]] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(sandbox.zygote_socket(), os.getpid())) as pool:
        def submit(chunk: list[Submission]) -> Future:
            try:
                fut = pool.submit(_grade_chunk, str(course.root), assignment, chunk,
                                  opts.limits, roster_ids, lang, opts.reveal,
                                  {s.student_id: (terms or {})[s.student_id] for s in chunk
                                   if s.student_id in (terms or {})})
            except Exception as err:          # the pool broke (a worker was killed)
                fut = Future()
                fut.set_exception(err)
            given[fut] = chunk
            return fut

        # At most 2 chunks per worker in flight (memory stays flat); a new chunk goes out
        # as soon as ANY finishes, so a slow chunk (a notebook looping until its CPU
        # limit) never leaves the other workers idle behind it.
        running = {submit(c) for c in itertools.islice(chunks, 2 * jobs)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                nxt = next(chunks, None)
                if nxt is not None:
                    running.add(submit(nxt))
                chunk = given.pop(fut)
                try:
                    rows = fut.result()
                except Exception as err:
                    rows = _failed_chunk(str(course.root), assignment, chunk, lang, err)
                yield from rows


def _record(journal: Journal, feedback_dir: Path, data: dict, html: str) -> None:
    """Journal line and feedback page of one student (already made safe text); the page
    is named by :func:`feedback_file`, never by the raw id."""
    journal.append(data)
    try:
        atomic_write(feedback_dir / feedback_file(data["student_id"]), html, sync=False)
    except OSError:       # a full disk, a read-only folder: the journal still has the row
        pass


def _archive_before(out_dir: Path, previous: dict[str, StudentResult],
                    regrade: bool) -> Path | None:
    """Keep the previous outputs (dated) before this run can overwrite a grade."""
    if not previous and not regrade:
        return None
    return archive(out_dir)


def _hold_changed(prev: StudentResult, sub: Submission) -> bool:
    """Whether a held student's row must be made again: a hold never counts as
    unchanged (it costs no sandbox), and neither does the end of one."""
    return is_held(sub) or any(f in prev.flags for f in HELD)


def accounted_for(results: dict[str, StudentResult],
                  students: set[str]) -> dict[str, StudentResult]:
    """The journal's results of the students this run accounts for (the roster, and
    folders graded under an id the roster lacks). An entry of anyone else is stale: a
    student since removed from the roster whose file now names nobody. ``grade_folder``
    ends its record (``Journal.remove``, after archiving the previous outputs), so its old
    grade reaches no output and no export."""
    return {sid: r for sid, r in results.items() if sid in students}


def grade_folder(folder: Path, course: Course, assignment: str, opts: BatchOptions,
                 progress: Callable[[int, int], None] | None = None) -> BatchReport:
    import time

    start = time.perf_counter()
    check_submissions_folder(folder)
    check_jobs(opts.jobs)
    check_lang(opts.lang)
    if opts.executor == "dask":
        from convpset.autograder.dask_executor import require_dask

        require_dask()
    folder = folder.resolve()
    out_dir = (opts.out or course.grades_dir(assignment)).resolve()
    if out_dir == folder or folder in out_dir.parents and out_dir.parent == folder:
        raise CourseError(say("out_inside"))
    lang = opts.lang or course.language
    roster = course.roster()
    roster_ids = [s.student_id for s in roster]
    found = discover_all(folder, assignment, roster)
    subs = found.submissions
    report = BatchReport(assignment, out_dir, unowned=found.unowned, lang=lang)
    journal = Journal(out_dir)
    previous = journal.load()
    fp = key_fingerprint(course, assignment)
    # each student's deadline, submission time and overrides: a change in any of them
    # rebuilds that student's row (the raw grading is the same; the final result is not)
    ctx = TermContext.load(course, folder)
    terms = {s.student_id: ctx.for_submission(course, assignment, s) for s in subs}
    todo: list[Submission] = []
    for s in subs:
        prev = previous.get(s.student_id)
        if (not opts.regrade and prev is not None and prev.key_fingerprint == fp
                and term_digest(prev) == terms[s.student_id].digest()
                and not _hold_changed(prev, s)
                and prev.sha256 == file_sha(s.path) and prev.path == (str(s.path) if s.path else None)):
            report.skipped += 1
            continue
        todo.append(s)
    # Any run that may change an existing grade keeps the previous outputs first (the
    # copy is dropped again below when no grade changed).
    accounted = {s.student_id for s in subs}
    stale = sorted(set(previous) - accounted)
    if opts.regrade or stale or any(s.student_id in previous for s in todo):
        report.archived = _archive_before(out_dir, previous, opts.regrade)
    if opts.regrade:
        journal.reset()
    for sid in stale:
        journal.remove(sid)
    if progress:
        progress(0, len(todo))
    feedback_dir = out_dir / "feedback"
    jobs = opts.jobs or os.cpu_count() or 1
    for data, html in _results(course, assignment, todo, opts, jobs, set(roster_ids), lang,
                               terms):
        # a grader-error row is graded again on the next run (no fingerprint to match)
        data["key_fingerprint"] = "" if GRADER_ERROR in data.get("flags", ()) else fp
        _record(journal, feedback_dir, data, html)
        report.graded += 1
        if progress:
            progress(1, len(todo))
    journal.sync()
    final = similarity.mark(course, assignment, accounted_for(journal.load(), accounted),
                            out_dir, roster_ids)
    if report.archived is not None:
        report.changes = diff_results(previous, final)
        if report.changes or opts.regrade:

            atomic_write(out_dir / "regrade_diff.json",
                         json_text(report.changes, indent=1) + "\n")
        else:
            drop_archive(report.archived)
            report.archived = None
    ordered = [final[k] for k in sorted(final)]
    columns = part_columns(problems_for(course, course.assignment(assignment), "template"))
    atomic_write(out_dir / "grades.csv", grades_csv(ordered, columns))
    atomic_write(out_dir / "results.json", results_json(similarity.student_view(ordered), lang))
    atomic_write(out_dir / "unmatched_files.csv", unowned_csv(found.unowned, lang))
    atomic_write(out_dir / "unmatched_files.json", unowned_json(found.unowned))
    report.results = ordered
    report.seconds = time.perf_counter() - start
    return report
