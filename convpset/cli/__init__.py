"""The command lines: ``pset`` (instructor tools) and ``grade`` (the main job).

They only parse arguments, call the library and print; every decision lives in the
library.
"""

from __future__ import annotations


def pset_main() -> None:
    from convpset.cli.pset import pset_app

    pset_app()


def grade_main() -> None:
    from convpset.cli.grade import grade_app

    grade_app()
