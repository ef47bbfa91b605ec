"""Text and files a student controls, made safe for where they land.

Everything a student decides — a file or folder name, a roster name typed by a student
into an LMS, an exception message, a class name, a timestamp file — is *data*: it is
shown as plain text, never interpreted. One module holds the rules so that every writer
(terminal, CSV, file names, reads of student-side files) applies the same ones:

* ``terminal_text``: no control characters reach a terminal (ESC starts CSI/OSC
  sequences: OSC 52 writes the clipboard, OSC 8 disguises links, CSI clears the screen),
  and no bidirectional overrides reorder what the instructor reads.
* ``csv_text``: a text cell never starts a spreadsheet formula (OWASP, "CSV Injection":
  a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with ``'``).
* ``safe_name``: a student id becomes a file name only in a safe form (keeps the id when
  it is already safe, else an ASCII slug and a hash of the original, so two different ids
  never share a file).
* ``csv_cell`` / ``csv_table``: every CSV we write goes through one writer: text cells
  as ``csv_text`` (and reversible with ``csv_original``), numbers left as numbers.
* ``read_bounded`` / ``sha256_bounded``: a student-side file is read only when it is a
  regular file (``lstat`` first, never through a link, never a FIFO or a device), and
  never beyond a cap; the hash streams.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# C0 and C1 controls (tab and newline are handled by the caller's choice), DEL, and the
# Unicode bidirectional controls (a name that reverses itself on screen: "Trojan Source").
# U+2028/U+2029 (line and paragraph separators) break a line in many terminals, editors
# and log viewers, so a one-line value could fake a line of its own: escaped like LF.
# Lone surrogates: a file name that is not UTF-8 (os.fsdecode's surrogateescape); printed
# or written raw they raise UnicodeEncodeError, so they are shown as escapes too.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                       "\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROLS_ALL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                           "\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                     *(f"lpt{i}" for i in range(10))}


def _visible(ch: str) -> str:
    """A control character as a visible escape (``\\x1b``, ``\\u202e``)."""
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(s: object, limit: int = 500, *, newlines: bool = False) -> str:
    """``s`` as text safe to print: controls shown as escapes, at most ``limit`` chars.

    With ``newlines`` a newline (and tab) is kept; otherwise every line break is shown as
    an escape too, so one value stays on one line of a table.
    """
    text = str(s)
    if len(text) > limit:
        text = text[:limit] + "…"
    pattern = _CONTROLS if newlines else _CONTROLS_ALL
    return pattern.sub(lambda m: _visible(m.group()), text)


def csv_text(s: object) -> str:
    """A text cell that no spreadsheet evaluates (OWASP's CSV-injection rule).

    A cell starting with ``=``, ``+``, ``-``, ``@``, a tab, CR or LF (after any leading
    spaces or apostrophes) gets a leading apostrophe; Excel, LibreOffice and Google Sheets
    then show it as text (:func:`csv_cell`, for a cell that is always text). Only text
    columns go through here: a number written by us stays a number.
    """
    return str(csv_cell(str(s)))     # one rule for every text cell: csv_cell's


def is_safe_name(s: str) -> bool:
    """Whether ``s`` can be a file name as it is, on every system the course uses."""
    return (_SAFE_NAME.fullmatch(s) is not None and not s.endswith(".")
            and s.split(".")[0].lower() not in _WINDOWS_RESERVED)


def safe_name(s: str) -> str:
    """A file-name form of ``s``: ``s`` itself when safe, else a slug plus a hash.

    The hash is of the whole original text, so two ids that differ only in characters the
    slug drops still get different files; the slug keeps the name recognisable.
    """
    if is_safe_name(s):
        return s
    ascii_only = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ascii_only).strip("-_")[:40] or "id"
    digest = hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"x-{slug}-{digest}"


@dataclass(frozen=True)
class StudentFileError(Exception):
    """Why a student-side file was not read: a fixed vocabulary, rendered by the caller.

    ``reason`` is one of ``missing``, ``link``, ``not_regular`` (FIFO, device, socket,
    folder), ``too_large``, ``unreadable``.
    """

    reason: str
    size: int = 0

    def __str__(self) -> str:
        return self.reason


def _open_regular(path: Path | str, cap: int,
                  dir_fd: int | None = None) -> tuple[int, os.stat_result]:
    """An fd of ``path`` (relative to the open folder ``dir_fd`` when given) opened for
    reading when it is a regular file of at most ``cap`` bytes, with the stat of the file
    opened; never follows a final symlink, never blocks on a FIFO."""
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise StudentFileError("missing") from None
    except OSError:
        raise StudentFileError("unreadable") from None
    if stat.S_ISLNK(st.st_mode):
        raise StudentFileError("link")
    if not stat.S_ISREG(st.st_mode):
        raise StudentFileError("not_regular")
    if st.st_size > cap:
        raise StudentFileError("too_large", st.st_size)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        raise StudentFileError("unreadable") from None
    try:
        try:
            fst = os.fstat(fd)   # the file opened is the file checked (no swap in between)
        except OSError:
            raise StudentFileError("unreadable") from None
        if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise StudentFileError("not_regular")
        if fst.st_size > cap:
            raise StudentFileError("too_large", fst.st_size)
    except BaseException:
        os.close(fd)
        raise
    return fd, fst


def _read_capped(fd: int, cap: int, sink) -> None:
    """Feed ``sink`` the bytes of ``fd`` in 1 MiB chunks, at most ``cap + 1`` of them even
    if the file grows while it is read; closes ``fd``. One loop for every bounded read."""
    total = 0
    try:
        while total <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            if not chunk:
                break
            sink(chunk)
            total += len(chunk)
    except OSError:
        raise StudentFileError("unreadable") from None
    finally:
        os.close(fd)
    if total > cap:
        raise StudentFileError("too_large", total)


def read_bounded(path: Path, cap: int) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes, or ``StudentFileError``.

    Reads at most ``cap + 1`` bytes even if the file grows while it is read.
    """
    fd, _ = _open_regular(path, cap)
    chunks: list[bytes] = []
    _read_capped(fd, cap, chunks.append)
    return b"".join(chunks)


def sha256_bounded(path: Path, cap: int) -> str:
    """The SHA-256 of a regular file of at most ``cap`` bytes, streamed in 1 MiB chunks."""
    fd, _ = _open_regular(path, cap)
    h = hashlib.sha256()
    _read_capped(fd, cap, h.update)
    return h.hexdigest()


def read_bounded_at(dir_fd: int, name: str, cap: int) -> tuple[bytes, os.stat_result]:
    """``read_bounded`` of the entry ``name`` of an open folder, with its ``lstat``.

    For walking a folder a student controls (an nbgrader inbound submission): the folder
    is held open, so no component of the path can be swapped for a link between the check
    and the read, and the final name is opened without following a link. The stat lets
    the caller check the file's owner.
    """
    fd, fst = _open_regular(name, cap, dir_fd)
    chunks: list[bytes] = []
    _read_capped(fd, cap, chunks.append)
    return b"".join(chunks), fst

_MARKDOWN_PLAIN = re.compile(r"[^\W_]+(?:[ ,.'()@-]+[^\W_]+)*[.)]?")
_BACKTICKS = re.compile(r"`+")


def markdown_text(s: object, limit: int = 2000) -> str:
    """``s`` as literal text inside markdown that someone else renders to HTML (nbgrader's
    feedback page via nbconvert, Jupyter).

    Plain words (a name like ``Anna Ivanova (s001)``) stay as they are; anything else
    becomes one inline code span, fenced by more backticks than ``s`` holds in a row:
    markdown renders a code span's content as escaped text, makes no link, image or
    emphasis in it, and MathJax leaves ``<code>`` alone — so ``<img onerror=…>``,
    ``![](http://…)`` or ``$\\href{javascript:…}$`` read as those characters.
    Controls and line breaks become spaces (a code span is one line).
    """
    text = _CONTROLS_ALL.sub(" ", str(s))
    if len(text) > limit:
        text = text[:limit] + "…"
    if not text.strip() or _MARKDOWN_PLAIN.fullmatch(text):
        return text
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    return f"{fence} {text} {fence}"


# --- CSV cells: one writer for every CSV we produce ---------------------------------------
# OWASP's formula starts, plus a line feed and the full-width forms some spreadsheets
# fold to ASCII; checked after leading spaces and apostrophes, so " =1+2" and "'=1+2"
# are caught too (a sheet may trim the space; an apostrophe we would strip on reading).
_CELL_FORMULA_START = (*_FORMULA_START, "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _cell_needs_quote(text: str) -> bool:
    return text.lstrip(" '").startswith(_CELL_FORMULA_START)


def csv_cell(value: object) -> str | int | float:
    """One CSV cell, safe to open in a spreadsheet: numbers stay numbers, text never
    starts a formula.

    ``int`` and ``float`` come back unchanged (a score is never quoted or prefixed, so the
    sheet still sums it). ``None`` is an empty cell. Any other value is text: when it
    could start a formula (``=``, ``+``, ``-``, ``@``, tab, CR, LF, after any leading
    spaces or apostrophes) it gets one leading ``'``, which Excel, LibreOffice and Google
    Sheets show as text. :func:`csv_original` undoes exactly that, so the original text
    (a hostile file name, say) is recoverable from the file.
    """
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if _cell_needs_quote(text) else text


def csv_original(cell: str) -> str:
    """The text :func:`csv_cell` was given, from the cell it wrote (the inverse)."""
    if cell.startswith("'") and _cell_needs_quote(cell[1:]):
        return cell[1:]
    return cell


def _cell_text(value: object, float_format: str) -> str | int:
    cell = csv_cell(value)
    if isinstance(cell, float):
        return format(cell, float_format)
    return cell


def csv_table(rows: Iterable[Iterable[object]], *, float_format: str = "g",
              lineterminator: str = "\n") -> str:
    """Rows as CSV text, every cell through :func:`csv_cell`; floats formatted with
    ``float_format`` (``g`` by default: ``17`` not ``17.0``), never quoted or prefixed."""
    # csv quotes a field holding a character of its line terminator only: written with
    # "\r\n", a CR or LF inside a cell is always quoted (a lone CR would otherwise split
    # the row in every reader); each row's own "\r\n" is then swapped for ``lineterminator``.
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    out = []
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow([_cell_text(v, float_format) for v in row])
        out.append(buf.getvalue()[:-2] + lineterminator)
    return "".join(out)


def page_text(s: object) -> str:
    """``s`` for an HTML page, before HTML escaping: control characters and bidi controls
    shown as escapes (``\\x1b``, ``\\u202e``), tab and newline kept.

    Escaping makes markup inert but not these: a bidi override in a folder name reorders
    what the instructor reads (``x\\u202e100s`` shows as ``xs001``), and C0/C1 controls
    are invisible. Unbounded: a page's caller bounds its own text.
    """
    return _CONTROLS.sub(lambda m: _visible(m.group()), str(s))


_JSON_INERT = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                         "\ud800-\udfff]")


def json_text(value: object, **dumps_kw: object) -> str:
    """``json.dumps(value, ensure_ascii=False, **dumps_kw)`` with the characters JSON
    leaves raw but a terminal or viewer acts on — DEL, C1 controls (``\\x9b`` is CSI),
    bidi controls, U+2028/U+2029, lone surrogates — written as ``\\uXXXX``: the same JSON
    value, so a reader gets the exact text back, but ``cat results.json`` is inert (JSON
    already escapes C0 controls, ESC included)."""
    import json

    text = json.dumps(value, ensure_ascii=False, **dumps_kw)
    return _JSON_INERT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
