"""What every command line shares: help without type noise, ``--version``, errors on
stderr, and a progress line for logs.

typer prints ``<bool>`` after flags and ``{submissions}`` in the usage line; our help
shows a flag bare, an argument as ``SUBMISSIONS``. Errors go to stderr, one line, exit 2.
When output is not a terminal (a log, CI), a long batch prints a progress line every
:data:`LOG_EVERY_S` seconds instead of a bar.

Everything a command prints goes through :func:`show`, :func:`warn`, :func:`fail` or a
:func:`data_table`: a message or a cell is *text*, never rich markup, and passes
:func:`~convpset.autograder.untrusted.terminal_text` first. Ids come from folder and file
names a student chose; one holding ``ESC ] 52`` would write the instructor's clipboard,
``ESC [ 2J`` clear the screen, ``ESC ] 8`` or ``[link=…]`` show a disguised link. Styling
is ours alone: a :class:`rich.text.Text` built here, around data that stays inert.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

import convpset
from convpset.autograder.untrusted import terminal_text

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
LOG_EVERY_S = 5.0
DATA_LIMIT = 200          # one id, flag or file name in a table cell
MESSAGE_LIMIT = 20_000    # a whole message (a list of students, a path)


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


def data(value: object, limit: int = DATA_LIMIT, style: str = "") -> Text:
    """One value a student may control (an id, a flag, a file name) as inert text: on one
    line, controls shown as escapes, at most ``limit`` characters, never markup."""
    return Text(terminal_text(value, limit), style=style)


def plain(message: object, limit: int = MESSAGE_LIMIT, style: str = "") -> Text:
    """A message (ours, possibly holding student data) as inert text; its own line breaks
    are kept, every other control character is shown as an escape."""
    return Text(terminal_text(message, limit, newlines=True), style=style)


def _text(part: object) -> Text:
    return part if isinstance(part, Text) else plain(part)


def show(*parts: object, style: str = "", err: bool = False) -> None:
    """Print ``parts`` on one line (stdout, or stderr with ``err``): a ``str`` is text, not
    markup; a :class:`Text` made by :func:`data`/:func:`plain` keeps its style."""
    line = Text(style=style).join(_text(p) for p in parts) if parts else Text()
    (err_console if err else console).print(line, soft_wrap=True, highlight=False)


def warn(message: object) -> None:
    """``warning: MESSAGE`` on stderr, the message as plain text."""
    show(Text("warning: ", style="yellow"), message, err=True)


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, never wrapped, never read as markup; then exit ``code``."""
    show(Text("error: ", style="red"), message, err=True)
    raise typer.Exit(code)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                          "\ud800-\udfff]")


def terminal_json(value: Any) -> str:
    """``value`` as JSON for a terminal: the same JSON value (UTF-8 text kept readable),
    but C1 controls, bidi overrides and lone surrogates written as ``\\uXXXX`` escapes
    (JSON already escapes C0 controls, ESC included)."""
    text = json.dumps(value, ensure_ascii=False, indent=1)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def data_table(columns: Sequence[str | tuple[str, str]], rows: Iterable[Sequence[object]],
               title: object = "", styles: Iterable[str] | None = None,
               limit: int = DATA_LIMIT) -> Table:
    """A table whose every cell is :func:`data` (one line, no markup, at most ``limit``
    characters).

    A column is a header or ``(header, justify)``; ``styles`` gives each row's style (a
    flagged student in red). The title is plain text too.
    """
    table = Table(title=_text(title) if title else None)
    for col in columns:
        header, justify = (col, "left") if isinstance(col, str) else col
        table.add_column(Text(header), justify=justify)  # type: ignore[arg-type]
    style_iter = iter(styles) if styles is not None else None
    for row in rows:
        style = next(style_iter, "") if style_iter is not None else ""
        table.add_row(*(c if isinstance(c, Text) else data(c, limit) for c in row),
                      style=style)
    return table


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
