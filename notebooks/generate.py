"""``pset generate``: write the nbgrader source notebook and every student's notebook."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from convpset.notebooks.build import TEMPLATE_STUDENT, Mode, build_notebook, dumps
from convpset.notebooks.course import Course, Student, load_course
from convpset.notebooks.variants import problems_for

SOURCE_DIR, PERSONAL_DIR, SOLUTIONS_DIR = "source", "personalized", "personalized_solutions"


@dataclass(frozen=True)
class GenerateReport:
    assignment: str
    students: int
    files: int
    seconds: float
    source: Path


def notebook_text(course: Course, assignment: str, student_id: str, display: str, lang: str,
                  mode: Mode) -> str:
    spec = course.assignment(assignment)
    problems = problems_for(course, spec, student_id)
    return dumps(build_notebook(course, assignment, spec.title, problems, student_id, display,
                                lang, mode), compact=mode != "source")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".ipynb.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _student_files(root: str, assignment: str, student: Student, lang: str,
                   solutions: bool) -> int:
    course = load_course(Path(root))
    rel = Path(student.student_id) / assignment / f"{assignment}.ipynb"
    n = 0
    modes: list[tuple[str, Mode]] = [(PERSONAL_DIR, "personal")]
    if solutions:
        modes.append((SOLUTIONS_DIR, "solution"))
    for folder, mode in modes:
        _write(course.root / folder / rel,
               notebook_text(course, assignment, student.student_id, student.display, lang, mode))
        n += 1
    return n


def generate(course: Course, assignment: str, *, solutions: bool = False,
             lang: str | None = None, jobs: int = 1,
             progress: Callable[[int], None] | None = None,
             students: Iterable[Student] | None = None) -> GenerateReport:
    """Write source, personal (and solution) notebooks; returns what was written."""
    start = time.perf_counter()
    lang = lang or course.language
    course.assignment(assignment)  # fail early on a wrong name
    roster = list(course.roster() if students is None else students)
    source = course.root / SOURCE_DIR / assignment / f"{assignment}.ipynb"
    _write(source, notebook_text(course, assignment, TEMPLATE_STUDENT, TEMPLATE_STUDENT, lang,
                                 "source"))
    files = 1
    args = [(str(course.root), assignment, s, lang, solutions) for s in roster]
    if jobs > 1 and len(roster) > 20:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for n in pool.map(_student_files, *zip(*args, strict=True), chunksize=16):
                files += n
                if progress:
                    progress(1)
    else:
        for a in args:
            files += _student_files(*a)
            if progress:
                progress(1)
    return GenerateReport(assignment, len(roster), files, time.perf_counter() - start, source)
