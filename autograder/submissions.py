"""Find returned notebooks, decide whose each one is, and read them defensively.

Accepted layouts: nbgrader's ``submitted/STUDENT/ASSIGNMENT/*.ipynb``, a folder of
``STUDENT/*.ipynb``, or a flat folder of LMS downloads: Canvas's
``lastfirst[_LATE]_USERID_ATTACHMENTID_file``, Moodle's
``Full Name_PARTICIPANTID_assignsubmission_file_...`` (flat or in folders), our own
``STUDENT.ipynb`` or a name holding exactly one roster id as a token. The student always
comes from the path; what the notebook says about itself is only checked against it. A
path that could be two students', or two paths for one student, grade nobody until the
instructor decides; a path naming nobody is listed, never graded (:func:`attribute`).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from convpset.autograder.untrusted import StudentFileError, csv_table, json_text, read_bounded

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
# JSON tokens per notebook (strings, plus the commas, ``[`` and ``{`` outside them): about
# the number of objects json.loads makes. Ours hold ~2,500; 6 M empty lists fit in 20 MB
# and cost the grading process 4.4 s and 585 MB (9 M zeros: 4.8 s). Counted before parsing.
MAX_JSON_TOKENS = 300_000
_JSON_STRING = re.compile(rb'"[^"]*"')


@dataclass(frozen=True)
class Submission:
    student_id: str
    path: Path | None          # None: on the roster, nothing returned
    layout: str                # "nbgrader" | "folders" | "flat" | "missing" | "held"
    # "no_notebook" | "several_notebooks": the folder's content; "owner_conflict" |
    # "owner_ambiguous": held, nothing graded until the instructor decides (see attribute)
    issue: str | None = None
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


# ----------------------------------------------------------------------------- who owns a file
# A file's owner comes only from its name (what the notebook says about itself is checked
# against it later). The names are the ones the LMS really writes:
#
# * Canvas, "Download Submissions" (canvas-lms lib/content_zipper.rb, ``get_filename`` and
#   ``add_upload_submission``): ``<sortable name>[_LATE]_<user id>_<attachment id>_<file>``,
#   the sortable name ("Ivanova, Anna") downcased and stripped of every non-word character
#   ("ivanovaanna"; Cyrillic letters stay), any ``_<digits>_`` inside it collapsed; with
#   anonymous grading ``[LATE_]anon_<anonymous id>_<attachment id>_<file>``. A re-upload of
#   the same name keeps the prefix, the file part becomes ``conv1-1.ipynb``.
# * Moodle, "Download all submissions" (mod/assign/locallib.php, ``download_submissions``):
#   ``<full name>_<participant id>_assignsubmission_file_`` with the student's own file
#   name appended (flat) or as a folder holding it ("Download submissions in folders", the
#   default since 3.1). Underscores in the name become spaces, so the name has none. The
#   participant id is per assignment (``assign_user_mapping``), not the user id: a roster
#   column cannot hold it, so a Moodle file is matched by full name, in either order.
# * Ours: ``<student id>.ipynb``, ``<student id>/[<assignment>/]*.ipynb``, or a name that
#   mentions exactly one roster id as a whole token (``conv1 - s003 - Anna Ivanova.ipynb``).
#
# A name never decides alone when it could mean two students, and two names never
# silently share one student: see :func:`attribute`.

HELD = ("owner_conflict", "owner_ambiguous")     # issues of a student whose files wait
_MOODLE = re.compile(r"(?P<name>[^_/]+)_(?P<pid>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.*)",
                     re.S)
_CANVAS_SPLIT = re.compile(r"_(?=\d+_\d+_.)", re.S)
_CANVAS_IDS = re.compile(r"(?P<uid>\d+)_(?P<aid>\d+)_(?P<file>.+)", re.S)
_CANVAS_ANON = re.compile(r"(?:LATE_)?anon_[A-Za-z0-9]+_\d+_.+", re.S)
_CANVAS_NAME = re.compile(r"\w*")
_INNER_DIGITS = re.compile(r"_\d+_")
_ID_RUN = re.compile(r"[A-Za-z0-9_.-]+")
MAX_ID_CHARS = 64


@dataclass(frozen=True)
class Entry:
    """One returned thing (a flat file or a student's folder) and whom its name names."""

    name: str                      # relative to the submissions folder ("NAME/": a folder)
    path: Path | None              # the notebook to grade (None: a folder without one)
    layout: str                    # "flat" | "folders" | "nbgrader"
    candidates: tuple[str, ...]    # roster ids the name may belong to (one: its owner)
    reason: str = ""               # no candidate: why (a key of ``attribution.reason``)
    detail: str = ""               # the LMS id or name read from the file name
    issue: str | None = None       # a folder's content: "no_notebook" | "several_notebooks"
    files: tuple[str, ...] = ()
    # the name reads two ways (a Canvas name ending in digits): even a single candidate
    # may be wrong, the other reading's owner being off the roster
    uncertain: bool = False

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1 or (self.uncertain and bool(self.candidates))


@dataclass(frozen=True)
class Unowned:
    """A file no student receives: nobody's (``unmatched``) or waiting (``held``)."""

    name: str
    status: str                    # "unmatched" | "held"
    reason: str                    # a key of ``attribution.reason``
    students: tuple[str, ...] = ()  # held: every student it may belong to
    detail: str = ""


@dataclass(frozen=True)
class Discovery:
    submissions: list[Submission]
    unowned: list[Unowned]


def name_key(text: str) -> str:
    """A person's name as a comparison key: NFC, case-folded, letters and digits only.

    Both LMS strip characters from names (Canvas every non-word character, Moodle
    underscores and file-name punctuation); comparing on letters and digits alone lets
    ``ivanovaanna``, ``Ivanova Anna`` and ``Анна Иванова`` meet their roster rows. NFC
    first: a zip unpacked on macOS can hold decomposed (NFD) names.
    """
    return "".join(ch for ch in unicodedata.normalize("NFC", text).casefold() if ch.isalnum())


@dataclass(frozen=True)
class RosterIndex:
    """What a file name can be matched against: ids, LMS user ids, names."""

    ids: frozenset[str]
    by_lms_id: dict[str, tuple[str, ...]]
    by_name: dict[str, tuple[str, ...]]       # "lastfirst" and "firstlast" keys
    without_lms_id: frozenset[str]

    @classmethod
    def build(cls, students: Iterable[Any]) -> RosterIndex:
        """From roster rows (``Student``) or bare ids (a roster without names)."""
        ids: list[str] = []
        lms: dict[str, list[str]] = {}
        names: dict[str, list[str]] = {}
        bare: set[str] = set()
        for s in students:
            if isinstance(s, str):
                ids.append(s)
                bare.add(s)
                continue
            ids.append(s.student_id)
            if s.lms_user_id:
                lms.setdefault(s.lms_user_id, []).append(s.student_id)
            else:
                bare.add(s.student_id)
            for key in {name_key(s.last_name + s.first_name), name_key(s.first_name + s.last_name)}:
                if key:
                    names.setdefault(key, []).append(s.student_id)
        return cls(frozenset(ids), {k: tuple(v) for k, v in lms.items()},
                   {k: tuple(dict.fromkeys(v)) for k, v in names.items()}, frozenset(bare))


def _mentions(stem: str, ids: frozenset[str]) -> tuple[str, ...]:
    """Roster ids that ``stem`` holds as whole tokens (``s1`` is not in ``s10``); a
    mention inside a longer one (``s1`` in ``s1-a``) is not counted."""
    spans = []
    for run in _ID_RUN.finditer(stem):
        text, base = run.group(), run.start()
        cuts = [i for i, c in enumerate(text) if c in "_.-"]
        starts, ends = [0, *(i + 1 for i in cuts)], [*cuts, len(text)]
        for a in starts:
            for b in ends[bisect.bisect_right(ends, a):]:
                if b - a > MAX_ID_CHARS:      # no id is longer: the work per name is bounded
                    break
                if text[a:b] in ids:
                    spans.append((base + a, base + b, text[a:b]))
    kept = {sid for a, b, sid in spans
            if not any(a2 <= a and b <= b2 and b2 - a2 > b - a for a2, b2, _ in spans)}
    return tuple(sorted(kept))


def _canvas(name: str, roster: RosterIndex) -> Entry | None:
    """A Canvas download name, or None. Every split Canvas could have written is tried
    (a sortable name may end in ``_<digits>``); the owners of all of them are candidates."""
    if _CANVAS_ANON.fullmatch(name):
        return Entry(name, None, "flat", (), "canvas_anonymous")
    readings: list[tuple[str, ...]] = []     # the owners of each way to read the name
    read: list[str] = []
    for cut in _CANVAS_SPLIT.finditer(name):
        head = name[:cut.start()].removesuffix("_LATE")
        if _INNER_DIGITS.search(head):
            break       # Canvas's names hold no `_<digits>_`; every later head holds this one
        ids = _CANVAS_IDS.fullmatch(name, cut.end())
        # Canvas's part: a downcased name of word characters
        if ids is None or not _CANVAS_NAME.fullmatch(head) or head != head.lower():
            continue
        uid = ids["uid"]
        read.append(f"{uid} ({head})" if head else uid)
        owners = roster.by_lms_id.get(uid)
        if owners is None:      # not an id on the roster: the name, if its owner has no id
            owners = tuple(s for s in roster.by_name.get(name_key(head), ())
                           if s in roster.without_lms_id) if head else ()
        readings.append(tuple(sorted(owners)))
    if not read:
        return None
    cands = tuple(sorted({sid for r in readings for sid in r}))
    return Entry(name, None, "flat", cands, "" if cands else "canvas_unknown", ", ".join(read),
                 uncertain=len(set(readings)) > 1)


def _moodle(name: str, roster: RosterIndex) -> Entry | None:
    """A Moodle download name (file or folder), or None. Matched by full name."""
    m = _MOODLE.fullmatch(name)
    if m is None:
        return None
    cands = roster.by_name.get(name_key(m["name"]), ())
    return Entry(name, None, "flat", tuple(sorted(cands)), "" if cands else "moodle_unknown",
                 f"{m['name']} ({m['pid']})")


def owner_of(name: str, roster: RosterIndex) -> Entry:
    """Whom the file (or folder) name ``name`` may belong to, and in which form it says so."""
    stem = name.removesuffix(".ipynb")
    if stem in roster.ids:
        return Entry(name, None, "flat", (stem,))
    lms = _moodle(name, roster) or _canvas(name, roster)
    if lms is not None:
        return lms
    cands = _mentions(stem, roster.ids)
    return Entry(name, None, "flat", cands, "" if cands else "no_id")


def _folder_entry(sub: Path, assignment: str, roster: RosterIndex) -> Entry | None:
    """A student's folder (``STUDENT/[ASSIGNMENT/]``, or Moodle's per-student folder);
    None for a folder that is nobody's return."""
    nbgrader_dir = sub / assignment
    where = nbgrader_dir if nbgrader_dir.is_dir() else sub
    files = _ipynbs(where)
    path = _pick(files, assignment)
    layout = "nbgrader" if where is nbgrader_dir else "folders"
    if sub.name in roster.ids:
        owner = Entry(sub.name, None, layout, (sub.name,))
    else:
        owner = _moodle(sub.name, roster)
        if owner is not None and owner.detail and "_assignsubmission_file_" not in sub.name:
            return None                    # Moodle's online text and other plugins' folders
        if owner is None:
            if path is None and not nbgrader_dir.is_dir():
                return None                # not a student's folder
            # nbgrader's collected folder of an id the roster lacks: nbgrader's own
            # student id, graded under it and flagged unknown_student (pipeline.plan);
            # any other folder naming nobody is listed, not graded
            owner = Entry(sub.name, None, layout, (),
                          "unknown_student" if nbgrader_dir.is_dir() else "unknown_folder")
    issue: str | None = None
    listed: tuple[str, ...] = ()
    if path is None:
        issue = "no_notebook"
        listed = tuple(sorted(p.name for p in where.iterdir() if not p.name.startswith(".")))[:10]
    elif len(files) > 1:
        issue, listed = "several_notebooks", tuple(f.name for f in files)[:10]
    return Entry(sub.name + "/", path, layout, owner.candidates, owner.reason, owner.detail,
                 issue, listed)


def attribute(entries: list[Entry], roster_ids: list[str]) -> Discovery:
    """Submissions per student, from every entry's candidates, with no silent choice.

    A student receives an entry only when it is the one entry naming them and it names
    nobody else. Two entries for one student, or one entry that could be two students',
    hold every student involved (issue ``owner_conflict`` / ``owner_ambiguous``, nothing
    of theirs graded) until the instructor removes or renames the wrong file. An entry
    naming nobody on the roster is listed as unmatched, never graded as a made-up student.
    """
    claims: dict[str, list[Entry]] = {}
    unowned: list[Unowned] = []
    found: dict[str, Submission] = {}
    for e in entries:
        if e.reason == "unknown_student":
            sid = e.name.removesuffix("/")
            found[sid] = Submission(sid, e.path, e.layout if e.path else "missing", e.issue, e.files)
        elif not e.candidates:
            unowned.append(Unowned(e.name, "unmatched", e.reason, (), e.detail))
        for sid in e.candidates:
            claims.setdefault(sid, []).append(e)
    for sid, es in claims.items():
        if len(es) == 1 and not es[0].ambiguous:
            e = es[0]
            found[sid] = Submission(sid, e.path, e.layout if e.path else "missing", e.issue, e.files)
        else:
            issue = "owner_conflict" if len(es) > 1 else "owner_ambiguous"
            found[sid] = Submission(sid, None, "held", issue, tuple(e.name for e in es)[:10])
    for e in entries:
        if e.ambiguous or any(len(claims[s]) > 1 for s in e.candidates):
            reason = "ambiguous" if e.ambiguous else "several_claims"
            unowned.append(Unowned(e.name, "held", reason, e.candidates, e.detail))
    for sid in roster_ids:
        found.setdefault(sid, Submission(sid, None, "missing"))
    unowned.sort(key=lambda u: (u.status, u.name))
    return Discovery([found[k] for k in sorted(found)], unowned)


def discover_all(folder: Path, assignment: str, roster: Iterable[Any]) -> Discovery:
    """Every submission under ``folder`` (one per student, sorted by id; roster students
    with nothing returned have ``path=None``), and every file no student receives.

    ``roster``: ``Student`` rows (ids, names, LMS user ids) or bare ids.
    """
    folder = folder.resolve()
    students = list(roster)
    index = RosterIndex.build(students)
    entries: list[Entry] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        e = _folder_entry(sub, assignment, index)
        if e is not None:
            entries.append(e)
    for f in _ipynbs(folder):
        e = owner_of(f.name, index)
        entries.append(replace(e, path=f))
    ids = [s if isinstance(s, str) else s.student_id for s in students]
    return attribute(entries, ids)


def discover(folder: Path, assignment: str, roster_ids: list[str]) -> list[Submission]:
    """Every submission under ``folder`` (see :func:`discover_all`), by roster ids only."""
    return discover_all(folder, assignment, roster_ids).submissions


def is_held(sub: Submission) -> bool:
    """Whether the student's files wait for the instructor (nothing of theirs graded)."""
    return sub.issue in HELD


def unowned_csv(unowned: list[Unowned], lang: str) -> str:
    """``unmatched_files.csv``: every file no student received, and why, for the
    instructor. File names are student text: written by ``csv_table`` (no cell starts a
    formula, a CR or LF inside a name is quoted, ``csv_original`` gives the name back)."""
    rows: list[list[object]] = [["file", "status", "students", "reason"]]
    rows += [[u.name, u.status, " ".join(u.students), unowned_reason(u, lang)] for u in unowned]
    return csv_table(rows)


def unowned_json(unowned: list[Unowned]) -> str:
    """``unmatched_files.json``: the same list for tools and ``pset report``."""
    return json_text([asdict(u) for u in unowned], indent=1) + "\n"


def load_unowned(path: Path) -> list[Unowned]:
    """The list ``grade`` last wrote (empty when there is none or it is not ours)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [Unowned(str(d["name"]), str(d["status"]), str(d["reason"]),
                        tuple(str(x) for x in d.get("students", ())), str(d.get("detail", "")))
                for d in raw]
    except (OSError, ValueError, TypeError, KeyError):
        return []


def unowned_reason(u: Unowned, lang: str) -> str:
    """Why ``u`` went to nobody, as one sentence of the text tables."""
    from convpset.problems.text import render

    return render(lang, f"attribution.reason.{u.reason}", detail=u.detail,
                  students=", ".join(u.students))


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
    if json_tokens_over(data, MAX_JSON_TOKENS):
        return ReadNotebook(digest, None, None, "too_many_values")
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


def json_tokens_over(data: bytes, cap: int) -> bool:
    """Whether JSON text ``data`` holds more than ``cap`` tokens (strings, and commas,
    ``[``, ``{`` outside strings), in C-speed passes only: a cheap upper bound first, then
    an exact count that never makes more than ``cap`` matches.

    Escapes are dropped first (``\\\\`` then ``\\"``, left to right as JSON pairs them),
    so every quote left delimits a string; more than ``cap`` strings is already over.
    """
    if data.count(b",") + data.count(b"[") + data.count(b"{") + data.count(b'"') // 2 <= cap:
        return False
    plain = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    strings = plain.count(b'"') // 2
    if strings > cap:
        return True
    outside = _JSON_STRING.sub(b"", plain)
    return strings + outside.count(b",") + outside.count(b"[") + outside.count(b"{") > cap


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
