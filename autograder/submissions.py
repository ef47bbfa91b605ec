"""Find returned notebooks and read them defensively.

Accepted layouts: nbgrader's ``submitted/STUDENT/ASSIGNMENT/*.ipynb``, a folder of
``STUDENT/*.ipynb``, or a flat folder of ``*.ipynb`` whose names contain the student id
(as LMS downloads do, e.g. ``conv1 - s001 - Anna Ivanova.ipynb``). The student always
comes from the path; what the notebook says about itself is only checked against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convpset.autograder.untrusted import StudentFileError, read_bounded

MAX_NOTEBOOK_BYTES = 20_000_000
# A notebook nests about 5 deep; deeper JSON would only make later steps (stamp check,
# copies, journal) recurse where they never need to.
MAX_DEPTH = 64
# Digits of an integer in a notebook's JSON. Jupyter writes small counters only; Python
# converts up to 4,300 digits, in time quadratic in the digits (4,000 such numbers in a
# notebook cost the grading process half a second).
MAX_INT_DIGITS = 100
# Cells per notebook (ours are about 30): every cell costs the grading process work in
# assembly, the task sent to the sandbox and the result read back; 200,000 tiny cells fit
# in 20 MB and cost 1.4 s and 175 MB. Counted in the raw bytes before parsing, and again
# after (a key spelled with escapes is not counted in the bytes).
MAX_CELLS = 10_000


@dataclass(frozen=True)
class Submission:
    student_id: str
    path: Path | None          # None: on the roster, nothing returned
    layout: str                # "nbgrader" | "folders" | "flat" | "missing"
    issue: str | None = None   # "no_notebook" | "several_notebooks": the folder's content
    files: tuple[str, ...] = ()   # with an issue: the files the student's folder holds


@dataclass(frozen=True)
class ReadNotebook:
    sha256: str
    notebook: dict[str, Any] | None
    error: str | None          # why it is not a readable notebook
    # why the file itself was not read (a StudentFileError reason: link, not_regular,
    # too_large, missing, unreadable) or not parsed (too_many_cells); then ``error`` is
    # empty and the text tables phrase it
    file_problem: str | None = None


def _ipynbs(folder: Path) -> list[Path]:
    """The ``*.ipynb`` entries of ``folder`` that are not folders, links included: a link,
    a FIFO or a device named like a notebook is the student's upload and is reported as
    such when read (:func:`read_notebook`), not skipped as if nothing was there."""
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith(".") and _not_dir(p))


def _not_dir(p: Path) -> bool:
    try:
        return not stat.S_ISDIR(os.lstat(p).st_mode)
    except OSError:
        return False


def _pick(files: list[Path], assignment: str) -> Path | None:
    if not files:
        return None
    exact = [f for f in files if f.stem == assignment]
    return exact[0] if exact else files[0]


def _id_in_name(name: str, roster_ids: Iterable[str]) -> str | None:
    tokens = set(re.split(r"[^A-Za-z0-9_.-]+|[_.-]{2,}", name))
    hits = [sid for sid in roster_ids if sid in tokens or re.search(
        rf"(?<![A-Za-z0-9]){re.escape(sid)}(?![A-Za-z0-9])", name)]
    return max(hits, key=len) if hits else None


def discover(folder: Path, assignment: str, roster_ids: list[str]) -> list[Submission]:
    """Every submission under ``folder``, one per student, sorted by student id.

    Roster students with nothing returned are listed with ``path=None`` so that the
    grade sheet is complete.
    """
    folder = folder.resolve()
    found: dict[str, Submission] = {}
    roster = set(roster_ids)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        nbgrader_dir = sub / assignment
        where = nbgrader_dir if nbgrader_dir.is_dir() else sub
        files = _ipynbs(where)
        path = _pick(files, assignment)
        layout = "nbgrader" if where is nbgrader_dir else "folders"
        if path is None and not nbgrader_dir.is_dir() and sub.name not in roster:
            continue                   # not a student's folder
        issue, listed = None, ()
        if path is None:
            issue = "no_notebook"
            listed = tuple(sorted(p.name for p in where.iterdir()
                                  if not p.name.startswith(".")))[:10]
        elif len(files) > 1:
            issue, listed = "several_notebooks", tuple(f.name for f in files)[:10]
        found[sub.name] = Submission(sub.name, path, layout if path else "missing", issue, listed)
    for f in _ipynbs(folder):
        sid = _id_in_name(f.stem, roster_ids) or f.stem
        if sid not in found:
            found[sid] = Submission(sid, f, "flat")
    for sid in roster_ids:
        found.setdefault(sid, Submission(sid, None, "missing"))
    return [found[k] for k in sorted(found)]


def _bounded_int(digits: str) -> int:
    """json's ``parse_int``: an integer of more than MAX_INT_DIGITS digits is refused
    before Python converts it."""
    if len(digits) > MAX_INT_DIGITS + 1:       # + 1: the sign
        raise ValueError("integer too long")
    return int(digits)


def read_notebook(path: Path) -> ReadNotebook:
    """Bytes → notebook dict, or a message saying what is wrong with the file.

    The file is read through :func:`~convpset.autograder.untrusted.read_bounded`: a link,
    a FIFO, a device, a socket or a file over MAX_NOTEBOOK_BYTES is never opened for a
    read (no hang, no 100 GB read); ``file_problem`` says which.
    """
    try:
        data = read_bounded(path, MAX_NOTEBOOK_BYTES)
    except StudentFileError as err:
        return ReadNotebook("", None, None, err.reason)
    digest = hashlib.sha256(data).hexdigest()
    if not data.strip():
        return ReadNotebook(digest, None, "the file is empty")
    if data.count(b'"cell_type"') > MAX_CELLS:
        return ReadNotebook(digest, None, None, "too_many_cells")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ReadNotebook(digest, None, "the file is not text (binary data, not a .ipynb notebook)")
    try:
        nb = json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as err:
        return ReadNotebook(digest, None, f"the file is not valid notebook JSON ({err.msg} at "
                                          f"line {err.lineno}, column {err.colno})")
    except (RecursionError, ValueError, MemoryError):
        # nesting deeper than the parser's recursion limit; ValueError: an integer of
        # more digits than Python converts
        return ReadNotebook(digest, None, "the file's JSON is nested too deeply or holds "
                                          "numbers too large to read")
    # only the metadata is walked recursively later (the stamp is re-serialized and its
    # variants thawed); cells are read field by field and outputs never
    if isinstance(nb, dict) and _too_deep(nb.get("metadata"), MAX_DEPTH):
        return ReadNotebook(digest, None, "the file's JSON is nested too deeply or holds "
                                          "numbers too large to read")
    if isinstance(nb, dict) and isinstance(nb.get("nbformat"), int) and nb["nbformat"] != 4:
        # checked first: an nbformat 3 notebook has worksheets, not a list of cells
        return ReadNotebook(digest, None, f"unsupported notebook format nbformat={nb.get('nbformat')!r}"
                                          " (expected 4; save it with Jupyter 4+)")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return ReadNotebook(digest, None, "the JSON is not a Jupyter notebook (no list of cells)")
    if nb.get("nbformat") != 4:
        return ReadNotebook(digest, None, f"unsupported notebook format nbformat={nb.get('nbformat')!r}"
                                          " (expected 4; save it with Jupyter 4+)")
    if len(nb["cells"]) > MAX_CELLS:
        return ReadNotebook(digest, None, None, "too_many_cells")
    return ReadNotebook(digest, nb, None)


def _too_deep(x: Any, limit: int) -> bool:
    """Whether ``x`` nests lists/dicts more than ``limit`` deep (iterative: no recursion)."""
    stack = [(x, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        if d >= limit:
            return True
        stack.extend((c, d + 1) for c in v)
    return False


def iter_code_cells(nb: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(index, metadata, source) of every well-formed code cell."""
    for i, cell in enumerate(nb.get("cells", [])):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if not isinstance(src, str):
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        yield i, meta, src
