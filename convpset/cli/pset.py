"""Command lines: ``pset`` (instructor tools) and ``grade`` (the main job).

This module only parses arguments and calls library functions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markdown import Markdown
from rich.markup import escape

from convpset.autograder.untrusted import terminal_text
from convpset.cli._style import PlainGroup, console, data_table, fail, plain, show, version_callback

pset_app = typer.Typer(help="Personalized convolution problem sets for a course: see the "
                       "commands below (`pset COMMAND --help` for each).",
                       no_args_is_help=True, add_completion=False, cls=PlainGroup)


@pset_app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=version_callback, is_eager=True,
        help="print the version and exit")] = False) -> None:
    """Personalized convolution problem sets: every command is listed below."""


def _fail(message: str, code: int = 2) -> None:
    fail(message, code)


def _family_help() -> str:
    from convpset.problems import family_names

    return "problem family: " + ", ".join(family_names())


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


@pset_app.command("list")
def list_families() -> None:
    """Families per level: advertised features, answer parts, every mistake it can name."""
    from convpset.problems import FamilyError, families, variant_from_seed

    try:
        fams = families()
    except FamilyError as err:
        _fail(str(err))
    rows = []
    for name, fam in fams.items():
        for level in fam.levels:
            v = variant_from_seed(name, 0, level)
            parts = ", ".join(f"{p.name}: {p.kind}, {p.points:g}" for p in fam.parts(v))
            shares = fam.advertised.get(level, {})
            feats = ", ".join(f"{t} ({lo:.0%}–{hi:.0%})" if lo < hi else f"{t} ({lo:.0%})"
                              for t, (lo, hi) in shares.items()) or "—"
            named = fam.mistake_names.get(level)
            if not named:  # a family that does not declare them: what some seeds name
                seen: dict[str, None] = {}
                for seed in range(20):
                    for m in fam.mistakes(variant_from_seed(name, seed, level)):
                        seen[m.key] = None
                named = tuple(seen)
            rows.append((name if level == fam.levels[0] else "", str(level), feats, parts,
                         ", ".join(named)))
    console.print(data_table(["family", "level", "features drawn (share of seeds)",
                              "answer parts (name: kind, points)", "mistakes it can name"],
                             rows, limit=5000))


@pset_app.command()
def preview(
    family: Annotated[str, typer.Argument(help=_family_help(), show_default=False)],
    seed: Annotated[int, typer.Option(help="variant seed")] = 0,
    level: Annotated[int, typer.Option(help="difficulty 1-3")] = 1,
    lang: Annotated[str, typer.Option(help="en or ru")] = "en",
    raw: Annotated[bool, typer.Option(help="print markdown source instead of rendering")] = False,
) -> None:
    """Statement and reference answers of one variant."""
    from convpset.problems import FamilyError, get_family, variant_from_seed

    try:
        fam = get_family(family)
        v = variant_from_seed(family, seed, level)
        text = fam.statement(v, lang)
    except (FamilyError, ValueError) as err:
        _fail(str(err).strip("'\""))
    console.print(plain(text) if raw else Markdown(terminal_text(text, 10**6, newlines=True)))
    console.rule("data cell")
    console.print(plain(fam.data_code(v), limit=10**6), soft_wrap=True)
    console.rule("answers")
    for name, value in fam.solve(v).items():
        console.print(plain(f"{name} = {json.dumps(_jsonable(value))}", limit=10**6),
                      soft_wrap=True)


@pset_app.command()
def solve(
    kind: Annotated[str, typer.Argument(help="network | conv_as_matrix | conv_backward | pooling")],
    params: Annotated[str, typer.Option(help="JSON object, or @file.json")],
) -> None:
    """Solve a problem given as JSON parameters; prints JSON."""
    from convpset.solutions.from_params import SpecError
    from convpset.solutions.from_params import solve as solve_params

    text = params
    if params.startswith("@"):
        try:
            text = Path(params[1:]).read_text(encoding="utf-8")
        except OSError as err:
            _fail(f"params: cannot read {params[1:]}: {err.strerror}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        _fail(f"params: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})")
    try:
        result = solve_params(kind, data)
    except SpecError as err:
        _fail(f"{err.field}: {err.message}")
    sys.stdout.write(json.dumps(result) + "\n")


@pset_app.command()
def init(
    course: Annotated[Path, typer.Argument(help="folder to create")],
    name: Annotated[str | None, typer.Option(help="course name")] = None,
    lang: Annotated[str, typer.Option(help="en or ru")] = "en",
    students: Annotated[int, typer.Option(help="example roster size")] = 30,
    sample: Annotated[bool, typer.Option("--sample", help="the bundled sample course: fixed "
                                         "secret, notebooks generated, submissions simulated")] = False,
    exchange_root: Annotated[str | None, typer.Option(help="nbgrader exchange folder shared by "
                                                      "all servers (written into both nbgrader "
                                                      "configs)")] = None,
) -> None:
    """Create a course: nbgrader layout, pset.toml with an example assignment, a roster."""
    from convpset.notebooks.course import CourseError, init_course

    try:
        c = init_course(course, name=name or ("sample-course" if sample else None),
                        language=lang, students=students, seed=1 if sample else None,
                        exchange_root=exchange_root)
    except CourseError as err:
        _fail(str(err))
    show("created course ", plain(c.name, style="bold"),
         f" in {c.root} ({students} students, assignment: {', '.join(c.assignments)})")
    if sample:
        from convpset.notebooks.generate import generate as run_generate
        from convpset.notebooks.simulate import simulate as run_simulate

        for a in c.assignments:
            run_generate(c, a, solutions=True)
            run_simulate(c, a)
        show("generated personal notebooks and simulated submissions")


def _load_course(course: Path | None) -> Any:
    from convpset.notebooks.course import CourseError, find_course_root, load_course

    try:
        return load_course(course if course else find_course_root(Path.cwd()))
    except CourseError as err:
        _fail(str(err))


@pset_app.command()
def generate(
    assignment: str,
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    solutions: Annotated[bool, typer.Option("--solutions", help="also write solution notebooks")] = False,
    lang: Annotated[str | None, typer.Option(help="en or ru (default: the course's)")] = None,
    jobs: Annotated[int, typer.Option(help="worker processes; 0 = one per CPU core")] = 0,
) -> None:
    """Write the nbgrader source notebook and one personal notebook per student."""
    import os

    from rich.progress import Progress

    from convpset.notebooks.course import CourseError
    from convpset.notebooks.generate import generate as run_generate

    c = _load_course(course)
    try:
        roster = c.roster()
        c.assignment(assignment)
    except CourseError as err:
        _fail(str(err))
    if lang not in (None, "en", "ru"):
        _fail(f"--lang must be en or ru, found {lang!r}")
    from convpset.autograder.guards import check_jobs

    try:
        check_jobs(jobs)
    except CourseError as err:
        _fail(str(err))
    workers = jobs or os.cpu_count() or 1
    if console.is_terminal:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(escape(terminal_text(f"generating {assignment}", 200)),
                                total=len(roster))
            report = run_generate(c, assignment, solutions=solutions, lang=lang, jobs=workers,
                                  students=roster, progress=lambda n: bar.advance(task, n))
    else:          # a log: a line every few seconds
        from convpset.cli._style import LogProgress

        log = LogProgress("generating", lambda line: print(line, flush=True))
        report = run_generate(c, assignment, solutions=solutions, lang=lang, jobs=workers,
                              students=roster, progress=lambda n: log(n, len(roster)))
    from convpset.notebooks.generate import PERSONAL_DIR

    show(f"{report.files} notebooks for {report.students} students in "
         f"{report.seconds:.1f} s\n"
         f"personal notebooks: {c.root / PERSONAL_DIR}/STUDENT/{assignment}/"
         f"{assignment}.ipynb (hand these out)\n"
         f"nbgrader source: {report.source}")


@pset_app.command()
def simulate(
    assignment: str,
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
) -> None:
    """Fill submitted/ with realistic returns (correct, mistakes, broken, hostile, swapped)."""
    from collections import Counter

    from convpset.notebooks.course import CourseError
    from convpset.notebooks.simulate import simulate as run_simulate

    c = _load_course(course)
    try:
        made = run_simulate(c, assignment)
    except CourseError as err:
        _fail(str(err))
    kinds = Counter(m.kind.split(":")[0] for m in made)
    show(f"wrote {len(made)} submissions to {c.root / 'submitted'} "
         f"({', '.join(f'{k}: {n}' for k, n in sorted(kinds.items()))}); "
         f"expected scores in {c.root / 'simulated.json'}")


@pset_app.command()
def report(
    assignment: str,
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for report.html (default: grades/ASSIGNMENT)")] = None,
    grades: Annotated[Path | None, typer.Option(help="grades folder (default: COURSE/grades/ASSIGNMENT)")] = None,
    lang: Annotated[str | None, typer.Option(help="en or ru (default: the course's)")] = None,
) -> None:
    """One self-contained HTML page: scores, difficulty, misconceptions, fairness, flags."""
    from convpset.autograder.outputs import atomic_write
    from convpset.autograder.report import build_report
    from convpset.notebooks.course import CourseError

    c = _load_course(course)
    if lang not in (None, "en", "ru"):
        _fail(f"--lang must be en or ru, found {lang!r}")
    try:
        c.assignment(assignment)
    except CourseError as err:
        _fail(str(err))
    grades_dir = grades or c.grades_dir(assignment)
    if not (grades_dir / "journal.jsonl").is_file():
        _fail(f"{grades_dir / 'journal.jsonl'} not found; grade first: grade {c.root / 'submitted'}")
    try:
        html = build_report(c, assignment, grades_dir, lang or c.language)
    except CourseError as err:
        _fail(str(err))
    path = (out or grades_dir) / "report.html"
    atomic_write(path, html)
    from convpset.cli.term import warn_stale

    if grades is None:
        warn_stale(c, [assignment])
    show(f"wrote {path}")


# export and gradescope-run live in convpset/cli/lms.py (registered on pset_app on import)
from convpset.cli import lms as _lms  # noqa: E402,F401
from convpset.cli import pools as _pools  # noqa: E402,F401  (pset pools)
from convpset.cli import serve as _serve  # noqa: E402,F401  (serve, token)
from convpset.cli import term as _term  # noqa: E402,F401  (override, gradebook)
from convpset.cli.nbgrader import nbgrader_app  # noqa: E402  (registered last: its own module)

pset_app.add_typer(nbgrader_app, name="nbgrader")
