"""``pset pools ASSIGNMENT [--balance]``: how the roster spreads over each problem pool,
and the ``draw`` number that would split it evenly (parse, call
:mod:`convpset.notebooks.pools`, print)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convpset.cli._style import show
from convpset.cli.pset import _fail, _load_course, pset_app


def _say(key: str, **ctx: object) -> str:
    from convpset.problems.text import render

    return render("en", f"course.{key}", **ctx)


@pset_app.command()
def pools(
    assignment: str,
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    balance: Annotated[bool, typer.Option("--balance", help="suggest a draw number that splits the roster evenly (set it before release)")] = False,
) -> None:
    """Students per alternative of each problem pool; --balance suggests an even draw."""
    from convpset.notebooks.course import CourseError, PoolSpec
    from convpset.notebooks.pools import balanced_draw, pool_uses

    c = _load_course(course)
    try:
        spec = c.assignment(assignment)
        ids = [s.student_id for s in c.roster()]
    except CourseError as err:
        _fail(str(err))
    uses = pool_uses(c.secret, spec, ids)
    if not uses:
        _fail(_say("pool_none", assignment=assignment))

    def counts(use) -> str:
        pool = spec.problems[use.entry]
        assert isinstance(pool, PoolSpec)
        return ", ".join(f"{pool.label(j)}: {n}" for j, n in enumerate(use.counts))

    for use in uses:
        pool = spec.problems[use.entry]
        show(_say("pool_counts", entry=use.entry, numbers=", ".join(map(str, use.numbers)),
                  choose=pool.count, of=len(pool.alternatives), draw=use.draw,  # type: ignore[union-attr]
                  counts=counts(use), students=len(ids)))
        if balance:
            best = balanced_draw(c.secret, spec, use.entry, ids)
            show(_say("pool_balance", entry=use.entry, draw=best.draw, counts=counts(best),
                      spread=best.spread, old=use.draw, old_spread=use.spread))
