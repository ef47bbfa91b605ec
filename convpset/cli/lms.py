"""``pset export`` (grades for Canvas, Moodle, a results archive, the Gradescope
autograder bundle) and ``pset gradescope-run`` (a bundle checked locally): parse and call
:mod:`convpset.integrations`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from convpset.cli._style import data_table, plain, show, terminal_json, warn
from convpset.cli.pset import _fail, _load_course, console, pset_app

if TYPE_CHECKING:
    from convpset.integrations.lms.gradebook import Filled


@pset_app.command()
def export(
    to: Annotated[str, typer.Option("--to", help="canvas | moodle | results-archive | gradescope-autograder")],
    assignment: Annotated[str | None, typer.Argument(help="assignment (or --all)", show_default=False)] = None,
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder (default: grades/ASSIGNMENT/exports)")] = None,
    grades: Annotated[Path | None, typer.Option(help="grades folder (default: COURSE/grades/ASSIGNMENT)")] = None,
    canvas_id: Annotated[str | None, typer.Option(help="Canvas assignment id (digits) for the column title \"Title (ID)\" (without --template; default: the bare title)")] = None,
    template: Annotated[Path | None, typer.Option(help="the gradebook CSV exported from Canvas or Moodle: filled and written to the exports folder")] = None,
    column: Annotated[str | None, typer.Option(help="the template's column to fill (default: the one titled like the assignment)")] = None,
    moodle_max: Annotated[float | None, typer.Option(help="maximum grade of the Moodle grade item: points are scaled to it (with or without --template)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every assignment's column of the --template at once (canvas or moodle)")] = False,
) -> None:
    """Grades for Canvas or Moodle, a per-student results archive, or the Gradescope
    autograder bundle (autograder.zip)."""
    from convpset.integrations.lms.export import ExportRequest
    from convpset.integrations.lms.export import export as run_export
    from convpset.notebooks.course import CourseError

    c = _load_course(course)
    if all_:
        _export_all(c, to, out, template, moodle_max, assignment)
        return
    if assignment is None:
        _fail("give an ASSIGNMENT (or --all)")
    req = ExportRequest(system=to, grades_dir=grades or c.grades_dir(assignment), out_dir=out,
                        canvas_id=canvas_id, template=template, column=column,
                        moodle_max=moodle_max)
    try:
        result = run_export(c, assignment, req)
    except (CourseError, FileNotFoundError) as err:
        _fail(str(err))
    f = result.filled
    if f is not None:
        _print_fill(c.language, f, template, result.template)
    from convpset.cli.term import warn_stale

    if grades is None and to != "gradescope-autograder":
        warn_stale(c, [assignment])
    show(f"wrote {result.path}")


def _export_all(c, to: str, out: Path | None, template: Path | None,
                moodle_max: float | None, assignment: str | None) -> None:
    from convpset.integrations.lms.export import ExportRequest, export_all
    from convpset.notebooks.course import CourseError
    from convpset.problems.text import render

    if assignment is not None:
        _fail("--all fills every assignment: give no ASSIGNMENT")
    req = ExportRequest(system=to, grades_dir=c.root / "grades", out_dir=out,
                        template=template, moodle_max=moodle_max)
    try:
        done = export_all(c, req)
    except (CourseError, FileNotFoundError) as err:
        _fail(str(err))
    from convpset.cli.term import warn_stale

    warn_stale(c, list(c.assignments))
    path = None
    for col in done:
        if col.result is None:
            warn(f"{col.assignment}: {col.problem} not found; grade it first (column left as it was)")
            continue
        path = col.result.path
        f = col.result.filled
        if f is not None:
            show(render(c.language, "term.export_all_done", assignment=col.assignment,
                        column=f.column))
            _print_fill(c.language, f, template, col.result.template)
    if path is not None:
        show(f"wrote {path}")


def _print_fill(lang: str, f: Filled, template: Path | None, filled_template: bool) -> None:
    """What a Canvas / Moodle file holds, on the terminal: student-controlled text (names
    in left-out rows, ids) as plain text (no markup, no control characters: see
    :mod:`convpset.cli._style`)."""
    from convpset.problems.text import render

    def listed(items: list[str]) -> str:
        return ", ".join(items)

    for w in f.warnings:
        warn(w)
    if filled_template:
        show(render(lang, "lms.filled", filled=f.filled, rows=f.rows, column=f.column,
                    empty=f.rows - f.filled))
    else:
        show(render(lang, "lms.written", filled=f.filled, column=f.column))
    if f.mapping:
        show(render(lang, "lms.mapping", mapping=f.mapping))
    if f.left_out:
        warn(render(lang, "lms.left_out", count=len(f.left_out), rows=listed(f.left_out)))
    if f.ambiguous:
        warn(render(lang, "lms.ambiguous", count=len(f.ambiguous), students=listed(f.ambiguous)))
    if f.kept:
        warn(render(lang, "lms.kept", count=len(f.kept),
                    students=listed([f"{s} ({v})" for s, v in sorted(f.kept.items())])))
    if f.unmatched and filled_template:
        warn(render(lang, "lms.unmatched", count=len(f.unmatched), template=template,
                    students=listed(f.unmatched)))


@pset_app.command("gradescope-run")
def gradescope_run(
    bundle: Annotated[Path, typer.Argument(help="autograder.zip from pset export --to gradescope-autograder")],
    notebook: Annotated[Path, typer.Argument(help="a submission: a notebook (or a .zip of files)")],
    sid: Annotated[str | None, typer.Option(help="the submitting account's Student ID, as Gradescope's metadata would give it (default: the student the notebook's stamp names)")] = None,
    keep: Annotated[Path | None, typer.Option(help="an empty folder to build the layout in and keep (default: a temporary folder)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print results.json as is")] = False,
) -> None:
    """Run a Gradescope bundle on one submission in Gradescope's /autograder layout, as
    Gradescope would, and print its results.json (like `otter run`)."""
    from convpset.integrations.gradescope.local import run_local
    from convpset.notebooks.course import CourseError

    if keep is not None and keep.exists() and any(keep.iterdir()):
        _fail(f"--keep {keep} is not empty")
    try:
        run = run_local(bundle, notebook, sid, keep)
    except CourseError as err:
        _fail(str(err))
    res = run.results
    if as_json:
        print(terminal_json(res))
        return
    rows = [(t["name"], f"{t['score']:g} / {t['max_score']:g}", t["status"],
             plain(t.get("output", "")))
            for t in res.get("tests", [])]
    show(res.get("output", ""))
    if rows:
        console.print(data_table(["test", "score", "status", "output"], rows,
                                 f"results.json: score {res['score']:g} (run_autograder "
                                 f"{run.seconds:.2f} s, exit {run.returncode})"))
    show(Text("stdout (instructors only): ", style="dim"), run.stdout.strip())
