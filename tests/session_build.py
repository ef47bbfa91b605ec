"""Test helpers shared by the grading tests: one expensive build per test session, and a
fingerprint of a folder tree (to prove grading changed nothing in it)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def build_once(tmp_path_factory, name: str, marker: str, build: Callable[[Path], str]) -> Path:
    """The folder ``name``, shared by every xdist worker of the session and built once.

    Whichever worker takes the lock first runs ``build(folder)`` (from scratch when no
    earlier build finished) and stores what it returns in ``folder/marker``; the others
    wait for the lock and find it built.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    d = base / name
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / marker).exists():
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            text = build(d)
            (d / marker).write_text(text)
    return d


def tree_state(root: Path, exclude: Path | None = None) -> dict[str, str]:
    """Relative path → sha256 (or 'dir') of everything under root, except ``exclude``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if exclude is not None:
            dirnames[:] = [n for n in dirnames if (d / n).resolve() != exclude.resolve()]
        for n in dirnames:
            out[str((d / n).relative_to(root))] = "dir"
        for n in filenames:
            p = d / n
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def host_sysv_keys() -> set[int]:
    """Keys of the SysV IPC objects (shm, msg, sem) the host's IPC namespace holds now."""
    keys = set()
    for table in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{table}") as f:
                next(f)
                keys |= {int(line.split()[0]) for line in f if line.strip()}
        except (OSError, StopIteration):
            pass
    return keys
