"""The command lines: ``pset`` (instructor tools) and ``grade`` (the main job).

They only parse arguments, call the library and print; every decision lives in the
library. An instructor's mistake the library reports (a bad course file, an unknown or
broken family) ends as one line on stderr and exit 2 wherever it surfaces, never as a
traceback.
"""

from __future__ import annotations

from collections.abc import Callable


def _guarded(app: Callable[[], None]) -> None:
    from convpset.cli._style import fail
    from convpset.notebooks.course import CourseError
    from convpset.problems import FamilyError

    try:
        app()
    except (CourseError, FamilyError) as err:
        try:
            fail(str(err))
        except SystemExit:
            raise
        except Exception as exit_:  # typer.Exit carries the code
            raise SystemExit(getattr(exit_, "exit_code", 2)) from None


def pset_main() -> None:
    from convpset.cli.pset import pset_app

    _guarded(pset_app)


def grade_main() -> None:
    from convpset.cli.grade import grade_app

    _guarded(grade_app)
