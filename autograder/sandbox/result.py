"""Parent side of the result channel: validate a child's frame, read its output file, and
classify how the run ended. Everything here treats the child's bytes as hostile: sizes
are capped before anything is allocated, JSON nesting depth cannot crash the parser, and
every string is cut and made valid UTF-8 before it leaves this module."""

from __future__ import annotations

import json
import os
import signal
import stat
import struct
from collections.abc import Sequence

import numpy as np

from convpset.autograder.sandbox import protocol as P
from convpset.autograder.sandbox.convert import clean_text
from convpset.autograder.sandbox.model import Answer, CellError, Limits, Ragged

TAIL = 2000
MAX_CELL_ERRORS = 10_000
_DTYPES = {name: np.dtype(name) for name in P.DTYPES}


class BadResult(Exception):
    pass


def _s(x, n: int) -> str:
    if not isinstance(x, str):
        raise BadResult("expected string")
    return clean_text(x, n)


def _header(buf: bytes | bytearray) -> tuple[dict, int]:
    if len(buf) < P.PREFIX_LEN or bytes(buf[:len(P.MAGIC)]) != P.MAGIC:
        raise BadResult("no result header")
    (hlen,) = struct.unpack_from(P.LEN_FMT, buf, len(P.MAGIC))
    if hlen > P.HEADER_CAP or P.PREFIX_LEN + hlen > len(buf):
        raise BadResult("bad header length")
    try:
        hdr = json.loads(bytes(buf[P.PREFIX_LEN:P.PREFIX_LEN + hlen]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BadResult(f"header not JSON: {type(e).__name__}") from None
    if not isinstance(hdr, dict) or not isinstance(hdr.get("answers"), list):
        raise BadResult("malformed header")
    return hdr, P.PREFIX_LEN + hlen


def _answer(name: str, ent, buf, off: int, limits: Limits) -> tuple[Answer, int]:
    if not isinstance(ent, dict) or ent.get("name") != name:
        raise BadResult("answer names do not match")
    present = ent.get("present")
    if not isinstance(present, bool):
        raise BadResult("bad 'present'")
    src = _s(ent.get("source_type", ""), 200)
    err = ent.get("error")
    err = None if err is None else _s(err, 500)
    value = None
    dt, shape = ent.get("dtype"), ent.get("shape")
    if dt is not None:
        if dt not in _DTYPES or not isinstance(shape, list) or len(shape) > 32:
            raise BadResult("bad dtype/shape")
        if not all(type(d) is int and 0 <= d <= limits.answer_bytes for d in shape):
            raise BadResult("bad shape")
        dtype = _DTYPES[dt]
        n = 1
        for d in shape:
            n *= d
        nb = n * dtype.itemsize
        if nb > limits.answer_bytes or off + nb > len(buf):
            raise BadResult("array data missing or too large")
        value = np.frombuffer(buf, dtype=dtype, count=n, offset=off).reshape(shape).copy()
        off += nb
    rows = None
    lengths = ent.get("rows")
    if lengths is not None:
        # checked as one array, not row by row: millions of rows fit the answer cap
        if value is None or value.ndim != 1 or not isinstance(lengths, list):
            raise BadResult("bad ragged rows")
        try:
            arr = np.asarray(lengths) if lengths else np.zeros(0, dtype=np.int64)
        except (ValueError, TypeError, OverflowError):
            raise BadResult("bad ragged rows") from None
        del ent["rows"], lengths        # the list of Python ints is the largest copy: free it
        if (arr.ndim != 1 or arr.dtype.kind not in "iu"
                or (arr.size and (arr.min() < 0 or arr.max() > value.size))
                or int(arr.sum(dtype=np.int64)) != value.size):
            raise BadResult("bad ragged rows")
        rows = Ragged(value.astype(np.float64, copy=False), arr)
        value = None
    return Answer(name=name, present=present, source_type=src, value=value, error=err,
                  rows=rows), off


def parse(buf: bytes | bytearray, names: Sequence[str], limits: Limits):
    """(answers, cell errors, memory error seen, isolation report) from one result frame;
    :class:`BadResult` for anything else."""
    hdr, off = _header(buf)
    want = list(names)
    if len(hdr["answers"]) != len(want):
        raise BadResult("wrong number of answers")
    answers: dict[str, Answer] = {}
    for name, ent in zip(want, hdr["answers"], strict=True):
        answers[name], off = _answer(name, ent, buf, off, limits)
    if off != len(buf):
        raise BadResult("trailing bytes after the answers")
    ces = hdr.get("cell_errors", [])
    if not isinstance(ces, list):
        raise BadResult("bad cell errors")
    errs = []
    for ce in ces[:MAX_CELL_ERRORS]:
        if not isinstance(ce, dict) or type(ce.get("index")) is not int:
            raise BadResult("bad cell error")
        errs.append(CellError(index=ce["index"], ename=_s(ce.get("ename", ""), 200),
                              evalue=_s(ce.get("evalue", ""), 500),
                              traceback_tail=_s(ce.get("traceback_tail", ""), 2000)))
    iso = hdr.get("isolation")
    return (answers, tuple(errs), hdr.get("memory_error") is True,
            iso if isinstance(iso, dict) else {})


def read_output(path: str, limits: Limits, uid: int | None) -> tuple[str, bool]:
    """(the last TAIL characters of the child's output, whether it flooded)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return "", False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or (uid is not None and st.st_uid != uid):
            return "", False
        size = st.st_size
        kept = min(size, limits.output_bytes)
        start = max(0, kept - TAIL * 4)
        data = os.pread(fd, kept - start, start)
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="replace")[-TAIL:]
    flood = size > limits.output_bytes
    if flood:
        text += f"\n[output truncated: more than {limits.output_bytes} bytes]"
    return text, flood


def signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify_exit(rc: int, cpu: float, maxrss_kb: int, tail: str,
                  limits: Limits) -> tuple[str, str]:
    """(status, detail) of a child that sent no result, from how it ended."""
    if rc < 0:
        sig = -rc
        near_mem = maxrss_kb * 1024 >= 0.8 * limits.memory_mb * 1024 * 1024
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.cpu_s - 0.2):
            return P.CPU_LIMIT, ""
        if near_mem or "MemoryError" in tail:
            return P.MEMORY, ""
        return P.CRASHED, signame(sig)
    if "MemoryError" in tail:
        return P.MEMORY, ""
    if rc in P.SANDBOX_EXIT_CODES:
        return P.CRASHED, P.DETAIL_SETUP_FAILED
    return P.EXITED, str(rc)
