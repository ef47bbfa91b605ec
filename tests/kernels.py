"""Running a notebook in a real Jupyter kernel from the tests.

jupyter_client picks the kernel's five TCP ports before the kernel binds them, so two
kernels started at once by parallel test workers can pick the same port; the kernel then
dies before it answers ``kernel_info`` ("Address already in use"). That is the test
machine's race, not the notebook's: such a start is retried with a fresh kernel (and a
fresh copy of the notebook). A kernel that dies or fails later, in a cell, is never
retried.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

STARTS = 3


def _startup_race(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}"
    return "before replying to kernel_info" in text or "Address already in use" in text


def execute(nb: nbformat.NotebookNode, cwd: Path, *, allow_errors: bool = False,
            timeout: int = 120) -> nbformat.NotebookNode:
    """``nb`` run top to bottom in a ``python3`` kernel started in ``cwd``; returns it."""
    from nbclient import NotebookClient

    for attempt in range(STARTS):
        run = copy.deepcopy(nb)
        client = NotebookClient(run, kernel_name="python3", timeout=timeout,
                                allow_errors=allow_errors,
                                resources={"metadata": {"path": str(cwd)}})
        try:
            client.execute()
        except Exception as err:
            if attempt + 1 < STARTS and _startup_race(err):
                continue
            raise
        nb.clear()
        nb.update(run)
        return nb
    raise AssertionError("unreachable")
