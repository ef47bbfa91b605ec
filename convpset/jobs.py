"""What ``grade DIR`` does, as one library call: check the request, find the course and
the assignment, set the limits, grade the batch, and hand the results to nbgrader's
gradebook when the course uses it.

The command line only turns its options into a :class:`GradeRequest` and prints what
:func:`run` returns; every decision (which folder, which limits, whether the gradebook is
written) is made here, where the Gradescope runner and tests can make it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from convpset.autograder.batch import BatchOptions, BatchReport, detect_assignment, grade_folder
from convpset.autograder.guards import check_jobs, check_lang, check_submissions_folder, say
from convpset.autograder.sandbox import Limits
from convpset.notebooks.course import Course, CourseError, find_course_root, load_course

EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class GradeRequest:
    """``grade``'s options, as the instructor gave them."""

    submissions: Path
    course: Path | None = None
    assignment: str | None = None
    out: Path | None = None
    jobs: int = 0
    lang: str | None = None
    reveal: bool = False
    regrade: bool = False
    nbgrader: bool | None = None          # None: when the course has a gradebook.db
    executor: str = "local"
    scheduler: str | None = None
    timeout: float = 20.0
    cell_timeout: float = 5.0
    cell_cpu: float = 1.0
    import_cpu: float = 5.0
    memory_mb: int = 512


@dataclass(frozen=True)
class GradeOutcome:
    report: BatchReport
    course: Course
    nbgrader_message: str | None


def limits_for(req: GradeRequest) -> Limits:
    """The sandbox limits of a request: RLIMIT_CPU follows the notebook's wall limit."""
    return Limits(wall_s=req.timeout, cell_s=req.cell_timeout, cell_cpu_s=req.cell_cpu,
                  import_cpu_s=req.import_cpu, cpu_s=max(1, int(req.timeout)),
                  memory_mb=req.memory_mb)


def prepare(req: GradeRequest) -> tuple[Course, str, BatchOptions]:
    """Check everything an instructor can get wrong before anything is graded or written;
    CourseError (one line) names what is wrong."""
    if req.executor not in EXECUTORS:
        raise CourseError(say("executor", choices=", ".join(EXECUTORS),
                              found=repr(req.executor)))
    check_submissions_folder(req.submissions)
    check_jobs(req.jobs)
    check_lang(req.lang)
    course = load_course(req.course if req.course else find_course_root(req.submissions))
    name = req.assignment or detect_assignment(req.submissions, course)
    course.assignment(name)
    opts = BatchOptions(out=req.out, jobs=req.jobs, lang=req.lang, reveal=req.reveal,
                        regrade=req.regrade, limits=limits_for(req), executor=req.executor,
                        scheduler=req.scheduler)
    return course, name, opts


def read_back_manual_scores(course: Course, assignment: str, opts: BatchOptions,
                            explicit: bool | None) -> int:
    """Before grading, a course on nbgrader turns formgrader's manual scores into
    overrides (the one override mechanism): the batch then keeps and counts them."""
    from convpset.autograder.outputs import Journal
    from convpset.integrations.nbgrader.gradebook import import_manual_scores, wants_gradebook

    if not wants_gradebook(course, explicit):
        return 0
    out = (opts.out or course.grades_dir(assignment)).resolve()
    return import_manual_scores(course, assignment, Journal(out).load())


def run(req: GradeRequest,
        progress: Callable[[int, int], None] | None = None) -> GradeOutcome:
    """Grade the request's folder; the nbgrader gradebook too when the course uses one."""
    from convpset.integrations.nbgrader.gradebook import after_grade

    course, name, opts = prepare(req)
    read_back_manual_scores(course, name, opts, req.nbgrader)
    report = grade_folder(req.submissions, course, name, opts, progress)
    msg = after_grade(course, name, report.results, req.nbgrader, req.lang, req.reveal)
    return GradeOutcome(report, course, msg)
