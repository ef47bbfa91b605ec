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
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

pset_app = typer.Typer(help="Personalized convolution problem sets: preview, solve, generate.",
                       no_args_is_help=True, add_completion=False)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


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
    """Families, their levels and answer parts."""
    from problems import FAMILY_NAMES, get_family, variant_from_seed

    table = Table("family", "levels", "answer parts (name: kind, points)", "known mistakes")
    for name in FAMILY_NAMES:
        fam = get_family(name)
        v = variant_from_seed(name, 0, max(fam.LEVELS))
        parts = ", ".join(f"{p.name}: {p.kind}, {p.points:g}" for p in fam.parts(v))
        seen: dict[str, None] = {}
        for level in fam.LEVELS:
            for seed in range(3):
                for m in fam.mistakes(variant_from_seed(name, seed, level)):
                    seen[m.key] = None
        table.add_row(name, ", ".join(map(str, fam.LEVELS)), parts, ", ".join(seen))
    console.print(table)


@pset_app.command()
def preview(
    family: str,
    seed: Annotated[int, typer.Option(help="variant seed")] = 0,
    level: Annotated[int, typer.Option(help="difficulty 1-3")] = 1,
    lang: Annotated[str, typer.Option(help="en or ru")] = "en",
    raw: Annotated[bool, typer.Option(help="print markdown source instead of rendering")] = False,
) -> None:
    """Statement and reference answers of one variant."""
    from problems import FamilyError, get_family, variant_from_seed

    try:
        fam = get_family(family)
        v = variant_from_seed(family, seed, level)
        text = fam.statement(v, lang)
    except (FamilyError, ValueError) as err:
        _fail(str(err).strip("'\""))
    console.print(text if raw else Markdown(text))
    console.rule("data cell")
    console.print(fam.data_code(v), highlight=False)
    console.rule("answers")
    for name, value in fam.solve(v).items():
        console.print(f"{name} = {json.dumps(_jsonable(value))}", highlight=False)


@pset_app.command()
def solve(
    kind: Annotated[str, typer.Argument(help="network | conv_as_matrix | conv_backward | pooling")],
    params: Annotated[str, typer.Option(help="JSON object, or @file.json")],
) -> None:
    """Solve a problem given as JSON parameters; prints JSON."""
    from solutions.from_params import SpecError
    from solutions.from_params import solve as solve_params

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


def pset_main() -> None:
    pset_app()


def grade_main() -> None:
    from autograder.grade_cli import grade_app

    grade_app()
