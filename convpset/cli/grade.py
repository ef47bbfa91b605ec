"""``grade DIR``: argument parsing only; the work is in :mod:`convpset.autograder.batch`."""

from __future__ import annotations

import collections
import statistics
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from convpset.cli._style import (
    LogProgress,
    PlainCommand,
    console,
    data,
    data_table,
    fail,
    plain,
    show,
    version_callback,
)

grade_app = typer.Typer(add_completion=False)


@grade_app.command(cls=PlainCommand)
def grade(
    submissions: Annotated[Path, typer.Argument(help="folder of returned notebooks (e.g. COURSE/submitted)", show_default=False)],
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    assignment: Annotated[str | None, typer.Option(help="assignment name (default: detected)")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default: COURSE/grades/ASSIGNMENT)")] = None,
    jobs: Annotated[int, typer.Option(help="parallel sandboxes; 0 = one per CPU core")] = 0,
    lang: Annotated[str | None, typer.Option(help="feedback language en|ru (default: course's)")] = None,
    reveal: Annotated[bool, typer.Option("--reveal", help="show worked solutions in feedback")] = False,
    regrade: Annotated[bool, typer.Option("--regrade", help="grade everything again; keep and diff the old results")] = False,
    nbgrader: Annotated[bool | None, typer.Option("--nbgrader/--no-nbgrader", help="write scores into nbgrader's gradebook (default: when gradebook.db exists)")] = None,
    executor: Annotated[str, typer.Option(help="local | dask (dask needs: pip install 'convpset[dask]')")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (with --executor dask)")] = None,
    timeout: Annotated[float, typer.Option(help="wall-clock seconds per notebook")] = 20.0,
    cell_timeout: Annotated[float, typer.Option(help="wall seconds per cell (a stuck cell fails alone)")] = 5.0,
    cell_cpu: Annotated[float, typer.Option(help="CPU seconds per cell (a looping cell fails alone)")] = 1.0,
    import_cpu: Annotated[float, typer.Option(help="CPU seconds per notebook for first imports of libraries, not charged to cells")] = 5.0,
    memory_mb: Annotated[int, typer.Option(help="memory per notebook, MB (above the interpreter's own)")] = 512,
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True, help="print the version and exit")] = False,
) -> None:
    """Grade every returned notebook in SUBMISSIONS safely and write grades and feedback."""
    from convpset.jobs import GradeRequest, run
    from convpset.notebooks.course import CourseError

    req = GradeRequest(submissions=submissions, course=course, assignment=assignment, out=out,
                       jobs=jobs, lang=lang, reveal=reveal, regrade=regrade, nbgrader=nbgrader,
                       executor=executor, scheduler=scheduler, timeout=timeout,
                       cell_timeout=cell_timeout, cell_cpu=cell_cpu, import_cpu=import_cpu,
                       memory_mb=memory_mb)
    try:
        if console.is_terminal:
            with Progress(TextColumn("[bold]grading[/bold]"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
                task = bar.add_task("grade", total=None)

                def progress(n: int, total: int) -> None:
                    bar.update(task, total=total, advance=n)

                outcome = run(req, progress)
        else:      # a log: a line every few seconds, so a reader sees how far it is
            outcome = run(req, LogProgress("grading", lambda line: print(line, flush=True)))
    except CourseError as err:
        fail(str(err))
    _summary(outcome.report)
    if outcome.nbgrader_message:
        show(outcome.nbgrader_message)


SHOW_ROWS = 40   # a larger batch gets a summary and its flagged students, not every row


def _summary(report) -> None:
    """Every student for a small batch; for a large one the score summary, the flags and
    the flagged students (everything else is in grades.csv and the feedback pages)."""
    results = report.results
    title = (f"{report.assignment}: {len(results)} students "
             f"({report.graded} graded now, {report.skipped} unchanged)")
    shown = results if len(results) <= SHOW_ROWS else [r for r in results if r.flags]
    if len(results) > SHOW_ROWS:
        scores = [r.score for r in results]
        top = max((r.max_score for r in results), default=0.0)
        flags = collections.Counter(f.split(":")[0] for r in results for f in r.flags)
        show(plain(title, style="bold"))
        show(f"score: mean {statistics.fmean(scores):.2f}, median "
             f"{statistics.median(scores):g}, full marks {sum(s >= top for s in scores)}"
             f" of {len(scores)} (max {top:g})\n"
             "flags: " + (", ".join(f"{k} {n}" for k, n in flags.most_common()) or "none"))
        title = f"flagged students ({len(shown)})"
    rows = [(r.student_id, f"{r.score:g} / {r.max_score:g}", ", ".join(r.flags))
            for r in shown[:SHOW_ROWS]]
    styles = ["red" if r.flags else "" for r in shown[:SHOW_ROWS]]
    if len(shown) > SHOW_ROWS:
        rows.append((f"… {len(shown) - SHOW_ROWS} more", "", "see grades.csv"))
    if shown:
        console.print(data_table(["student", ("score", "right"), "flags"], rows, title, styles,
                                 limit=1000))
    if report.changes:
        changed = [(c["student_id"], _of(c["old"], c.get("old_max")),
                    _of(c["new"], c.get("new_max")), c.get("reason", ""),
                    data("; ".join(f"{p['part']}: {p['old']}→{p['new']}" for p in c["parts"]),
                         limit=2000))
                   for c in report.changes[:SHOW_ROWS]]
        if len(report.changes) > SHOW_ROWS:
            changed.append((f"… {len(report.changes) - SHOW_ROWS} more", "", "", "",
                            "see regrade_diff.json"))
        console.print(data_table(["student", "old", "new", "why", "parts"], changed,
                                 f"changed grades: {len(report.changes)} students"))
    _unowned(report)
    show(f"wrote {report.out_dir}/grades.csv, results.json, feedback/ "
         f"in {report.seconds:.1f} s"
         + (f"; previous results kept in {report.archived}" if report.archived else ""))


def _of(score: float | None, top: float | None) -> str:
    if score is None:
        return "–"
    return f"{score:g}" if top is None else f"{score:g} / {top:g}"


def _unowned(report) -> None:
    """Files no student received (nobody's, or held for the instructor), one line each.

    File names and what was read from them are student text: printed with :func:`show`
    (``terminal_text``, no markup), so no byte of them styles or drives the terminal.
    """
    from convpset.autograder.submissions import unowned_reason
    from convpset.problems.text import render

    items = getattr(report, "unowned", [])
    if not items:
        return
    lang = getattr(report, "lang", "en")
    show(render(lang, "attribution.heading", count=len(items),
                path=str(report.out_dir / "unmatched_files.csv")))
    for u in items[:SHOW_ROWS]:
        show(f"  {render(lang, f'attribution.{u.status}')}: ", data(u.name),
             " — ", data(unowned_reason(u, lang), limit=300))
    if len(items) > SHOW_ROWS:
        show(f"  … {len(items) - SHOW_ROWS}")
    if any(u.status == "held" for u in items):
        show(render(lang, "attribution.held_hint"))
