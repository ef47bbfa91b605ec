"""What every command line shares: help without type noise, ``--version``, errors on
stderr, and a progress line for logs.

typer prints ``<bool>`` after flags and ``{submissions}`` in the usage line; our help
shows a flag bare, an argument as ``SUBMISSIONS``. Errors go to stderr, one line, exit 2.
When output is not a terminal (a log, CI), a long batch prints a progress line every
:data:`LOG_EVERY_S` seconds instead of a bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

import convpset

err_console = Console(stderr=True)
LOG_EVERY_S = 5.0


def plain_params(params: list[Any]) -> None:
    """Drop typer's type labels from help: none for flags and arguments (the name says
    what they are), and a plain upper-case argument in the usage line."""
    for p in params:
        if isinstance(p, TyperArgument):
            name = (p.metavar or p.name or "").upper()
            p.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
            p._usage_display_name = (  # type: ignore[attr-defined]
                lambda n=name, req=p.required: n if req else f"[{n}]")
        elif isinstance(p, TyperOption) and p.is_flag:
            p.metavar = ""


class PlainCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        plain_params(params)
        return params


class PlainGroup(TyperGroup):
    """A group whose commands (also those other modules register) get plain help."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        plain_params(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            plain_params(cmd.params)
            help_option = cmd.get_help_option(ctx)
            if help_option is not None:
                plain_params([help_option])
        return cmd


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"convpset {convpset.__version__}")
        raise typer.Exit()


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, never wrapped, paths not read as markup; then exit ``code``."""
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class LogProgress:
    """Progress for a reader of a log: ``grading: 120/1000 (12%), 10 s`` at most every
    ``every`` seconds, and once at the end."""

    def __init__(self, label: str, write: Callable[[str], None], every: float = LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.write, self.every, self.clock = label, write, every, clock
        self.start = self.last = clock()
        self.done = 0
        self.total: int | None = None

    def __call__(self, n: int, total: int) -> None:
        self.total = total
        self.done += n
        now = self.clock()
        if (self.done and now - self.last >= self.every) or (total and self.done == total):
            self.last = now
            pct = f" ({100 * self.done // total}%)" if total else ""
            self.write(f"{self.label}: {self.done}/{total}{pct}, {now - self.start:.0f} s")
