"""``pset nbgrader ...``: the course's nbgrader configs and gradebook roster (parse, call,
print; the work is in :mod:`convpset.integrations.nbgrader`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convpset.cli._style import show

nbgrader_app = typer.Typer(help="nbgrader/JupyterHub: configs for both sides, the gradebook roster.",
                           no_args_is_help=True, add_completion=False)


def _course(course: Path | None):
    from convpset.cli.pset import _load_course

    return _load_course(course)


@nbgrader_app.command("config")
def config(
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    course_id: Annotated[str | None, typer.Option(help="nbgrader course id (default: the current config's, else the course name)")] = None,
    exchange_root: Annotated[str | None, typer.Option(help="exchange folder shared by instructor and students (default: the current config's, else nbgrader's default)")] = None,
) -> None:
    """Write nbgrader_config.py and student_nbgrader_config.py again (pset.toml, its secret
    and the roster are never touched; a changed file is kept as .bak)."""
    from convpset.notebooks.nbgrader_config import refresh_configs
    from convpset.problems.text import render

    c = _course(course)
    for w in refresh_configs(c.root, c.name, c.language, course_id, exchange_root):
        msg = (render(c.language, "nbgrader.config_backup", path=str(w.path), backup=str(w.backup))
               if w.backup else render(c.language, "nbgrader.config_written", path=str(w.path)))
        show(msg)


@nbgrader_app.command("roster")
def roster(
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
) -> None:
    """Create or update every roster student (names, emails) in the gradebook."""
    from convpset.cli.pset import _fail
    from convpset.integrations.nbgrader.gradebook import GRADEBOOK, sync_students
    from convpset.notebooks.course import CourseError
    from convpset.problems.text import render

    c = _course(course)
    try:
        students = c.roster()
    except CourseError as err:
        _fail(str(err))
    db = c.root / GRADEBOOK
    n = sync_students(f"sqlite:///{db}", students)
    show(render(c.language, "nbgrader.roster_synced", count=n, db=str(db)))
