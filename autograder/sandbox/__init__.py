"""Run untrusted student notebook cells in a sandbox and hand back plain data.

The seams, one concern per module:

* :mod:`.model`      -- :class:`Limits`, :class:`Answer`, :class:`CellError`, :class:`ExecResult`;
* :mod:`.protocol`   -- the parent/zygote/child wire formats, exit codes and outcome names;
* :mod:`.parent`     -- the grading process's side: zygote client, uids, one run, run_many;
* :mod:`.result`     -- validating a child's result frame, reading its output, classifying;
* :mod:`.zygote`     -- the warm template (numpy; torch on demand) that forks children;
* :mod:`.child`      -- the forked child: isolate, run the cells, convert, send;
* :mod:`.convert`    -- answer conversion (shared with the nbgrader bridge);
* :mod:`.namespaces` -- namespaces, private mounts, dying with the parent;
* :mod:`.landlock`, :mod:`.seccomp`, :mod:`.rlimits` -- the kernel's walls.

``sys.exit`` / ``SystemExit`` / ``KeyboardInterrupt`` in a cell are recorded as a
:class:`CellError` and execution CONTINUES with the next cell (unlike nbgrader).
"""

from __future__ import annotations

from convpset.autograder.sandbox.model import Answer, CellError, ExecResult, Limits
from convpset.autograder.sandbox.parent import (
    _MAX_SLOTS,
    _UID_BASE,
    attach_zygote,
    isolation_report,
    prewarm_torch,
    run_cells,
    run_many,
    shutdown,
    zygote_socket,
)

__all__ = ["Limits", "Answer", "CellError", "ExecResult", "run_cells", "run_many", "shutdown",
           "isolation_report", "zygote_socket", "attach_zygote", "prewarm_torch",
           "landlock_available", "_UID_BASE", "_MAX_SLOTS"]


def landlock_available() -> bool:
    """True when the running kernel supports Landlock (any ABI version)."""
    from convpset.autograder.sandbox.landlock import landlock_abi

    return landlock_abi() > 0
