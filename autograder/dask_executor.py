"""Scale grading out on a Dask distributed cluster (``grade --executor dask``).

Only execution is distributed: each Dask task runs a chunk of notebooks in the worker's
own sandbox pool and returns plain ExecResults. Planning (which needs the course secret)
and judging (which needs the key) stay in the grading process, so workers never hold a
secret or an answer key -- a worker machine is as trusted as the student code it runs.
Workers need this package installed; as root they also get the sandbox's isolation.
Dask is an optional extra (``pip install 'convpset[dask]'``); a scheduler that does not
answer within :data:`CONNECT_TIMEOUT_S` seconds is reported in one line.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from convpset.autograder.pipeline import Plan, failed_result, guarded_judge, guarded_plan
from convpset.autograder.sandbox import ExecResult, Limits
from convpset.autograder.submissions import Submission
from convpset.notebooks.course import Course, CourseError
from convpset.problems.text import render

CHUNK = 16


def execute_chunk(tasks: Sequence[tuple[list[str], list[str], bool]], limits: Limits) -> list[ExecResult]:
    """Runs on a Dask worker: the worker's warm sandbox template, one child per notebook."""
    from convpset.autograder.sandbox import run_many

    return list(run_many(tasks, limits, jobs=1))


# Seconds to reach a --scheduler before giving up with one line (Dask's default is 30 s
# followed by a long traceback).
CONNECT_TIMEOUT_S = 5
INSTALL_HINT = "pip install 'convpset[dask]'"


class ExecutorError(CourseError):
    """The Dask executor cannot run: Dask missing, or the scheduler unreachable."""


def require_dask() -> None:
    """Raise ExecutorError with the install command when Dask is not installed."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise ExecutorError(render("en", "guard.dask_missing", install=INSTALL_HINT)) from None


def _client(scheduler: str | None, jobs: int):
    require_dask()
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT_S), None
        except Exception as err:  # noqa: BLE001 -- anything on connect: one line, not 200
            raise ExecutorError(render("en", "guard.dask_unreachable", scheduler=scheduler,
                                       seconds=CONNECT_TIMEOUT_S,
                                       error=type(err).__name__)) from None
    cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                           dashboard_address=None, host="127.0.0.1")
    return Client(cluster), cluster


def grade_stream_dask(course: Course, assignment: str, subs: Iterable[Submission], *,
                      limits: Limits, roster_ids: set[str], scheduler: str | None = None,
                      jobs: int = 2, chunk: int = CHUNK) -> Iterator[Plan]:
    """Same results as :func:`convpset.autograder.pipeline.grade_stream`, executed on Dask."""
    client, cluster = _client(scheduler, jobs)
    try:
        window: collections.deque = collections.deque()   # (plans, future or None)
        max_in_flight = 4 * max(1, len(client.scheduler_info().get("workers", {})) or jobs)

        def flush(batch: list[Plan]) -> None:
            run = [p for p in batch if p.final is None]
            fut = None
            if run:
                fut = client.submit(execute_chunk, [(p.cells, p.answer_names, p.uses_torch)
                                                    for p in run], limits, pure=False)
            window.append((batch, fut))

        def drain_one() -> Iterator[Plan]:
            batch, fut = window.popleft()
            try:
                results = iter(fut.result()) if fut is not None else iter(())
                err = None
            except Exception as e:            # a worker died: those students' rows say so
                results, err = iter(()), e
            for p in batch:
                if p.final is not None:
                    r = p.final
                elif err is not None:
                    r = failed_result(p.sub, p.problems, "worker", err, p.sha256)
                else:
                    r = guarded_judge(p, next(results), limits)
                p.final = replace(r, assignment=assignment)
                yield p

        batch: list[Plan] = []
        for sub in subs:
            batch.append(guarded_plan(course, assignment, sub, roster_ids))
            if len(batch) >= chunk:
                flush(batch)
                batch = []
                while len(window) >= max_in_flight:
                    yield from drain_one()
        if batch:
            flush(batch)
        while window:
            yield from drain_one()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
