"""``pset serve`` (the check service) and ``pset token`` (a student's check token, or a
revocation): parse, call :mod:`convpset.service`, print."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from convpset.cli.pset import _fail, _load_course, pset_app


def _say(key: str, **ctx: object) -> str:
    from convpset.problems.text import render

    return render("en", f"serve.{key}", **ctx)


@pset_app.command()
def serve(
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on (loopback by default; put a TLS proxy in front for students)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port; 0 picks a free one (printed)")] = 8765,
) -> None:
    """Answer checks from students' notebooks: the same judge as `grade`, on each student's
    own variant, under the assignment's [check] policy in pset.toml."""
    from convpset.notebooks.course import CourseError
    from convpset.service.app import serve as run
    from convpset.service.judge import CheckService

    if not 0 <= port <= 65535:
        _fail(_say("bad_port", found=port))
    c = _load_course(course)
    try:
        service = CheckService(c)
    except CourseError as err:
        _fail(str(err))

    import logging

    # the access log: method, path, status, time (tornado never logs headers or bodies)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def announce(url: str) -> None:
        print(_say("listening", course=c.name, url=url), flush=True)

    try:
        asyncio.run(run(service, host, port, announce))
    except KeyboardInterrupt:
        pass
    except OSError as err:
        _fail(f"cannot listen on {host}:{port}: {err.strerror or err}")


@pset_app.command()
def token(
    assignment: Annotated[str | None, typer.Argument(help="assignment")] = None,
    student: Annotated[str | None, typer.Argument(help="student id")] = None,
    course: Annotated[Path | None, typer.Option(help="course folder (default: found upward)")] = None,
    serial: Annotated[int, typer.Option(help="0 is the token in the notebooks; a higher one replaces a revoked token")] = 0,
    revoke: Annotated[str | None, typer.Option(help="add this token id to revoked_tokens.txt")] = None,
) -> None:
    """Print a student's check token (the one their notebook carries), or revoke one."""
    from convpset.service.tokens import TOKEN_ID, make_token, token_id
    from convpset.service.tokens import revoke as do_revoke

    c = _load_course(course)
    if revoke is not None:
        if not TOKEN_ID.match(revoke):
            _fail(_say("bad_token_id", found=repr(revoke)))
        path = do_revoke(c.root, revoke)
        print(_say("revoked", tid=revoke, path=path))
        return
    if assignment is None or student is None or not 0 <= serial <= 10**6:
        _fail(_say("token_args"))
    from convpset.notebooks.course import CourseError

    try:
        c.assignment(assignment)
        ids = {s.student_id for s in c.roster()}
    except CourseError as err:
        _fail(str(err))
    if student not in ids:
        _fail(_say("not_student", student=repr(student)))
    print(make_token(c.secret, assignment, student, serial))
    print(_say("token_issued", tid=token_id(c.secret, assignment, student, serial),
               student=student, assignment=assignment), file=sys.stderr)
