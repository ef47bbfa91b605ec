"""Checks on what an instructor passes to ``grade``, before anything is graded or written.

A wrong folder must not turn into a grade sheet of zeros: an empty folder, or the
course folder passed instead of its ``submitted/``, is an error that names the folder
probably meant. The CLI prints the message (one line) and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path

from convpset.notebooks.course import CONFIG_NAME, CourseError
from convpset.problems.text import render

# Instructor messages are rendered in English (the language of the command line); the
# tables hold Russian too.
LANG = "en"

# nbgrader's and our own folders of a course root: a submissions folder never holds them
COURSE_MARKERS = ("source", "release", "grades", "autograded", "personalized")
MAX_JOBS = 256


def say(message: str, **ctx: object) -> str:
    """An instructor message from the ``guard`` table, in the command line's language."""
    return render(LANG, f"guard.{message}", **ctx)


def _has_notebooks(folder: Path, depth: int = 3) -> bool:
    """Whether any ``*.ipynb`` lies within ``depth`` levels (the deepest layout is
    nbgrader's ``STUDENT/ASSIGNMENT/x.ipynb``)."""
    if depth < 0:
        return False
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    if any(p.suffix == ".ipynb" and p.is_file() for p in entries):
        return True
    return any(_has_notebooks(p, depth - 1) for p in entries
               if p.is_dir() and not p.name.startswith("."))


def check_submissions_folder(folder: Path) -> None:
    """Raise CourseError when ``folder`` cannot be a folder of returned notebooks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CourseError(render(LANG, "guard.not_a_folder", folder=folder))
    markers = [m for m in COURSE_MARKERS if (folder / m).is_dir()]
    if (folder / CONFIG_NAME).is_file() or len(markers) >= 2:
        meant = folder / "submitted"
        raise CourseError(render(LANG, "guard.course_root", folder=folder, meant=meant))
    if not _has_notebooks(folder):
        meant = next((c for c in (folder / "submitted", folder.parent / "submitted")
                      if c.resolve() != folder.resolve() and c.is_dir() and _has_notebooks(c)),
                     None)
        raise CourseError(render(LANG, "guard.no_notebooks", folder=folder, meant=meant))


def check_jobs(jobs: int) -> None:
    """``--jobs``: 0 means one per CPU core; otherwise a positive count."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 0 <= jobs <= MAX_JOBS:
        raise CourseError(render(LANG, "guard.jobs", max=MAX_JOBS, found=repr(jobs)))


def check_lang(lang: str | None) -> None:
    """``--lang``: one of the languages of the text tables (None: the course's)."""
    from convpset.problems.base import LANGS

    if lang is not None and lang not in LANGS:
        raise CourseError(render(LANG, "guard.lang", langs=", ".join(LANGS), found=repr(lang)))
