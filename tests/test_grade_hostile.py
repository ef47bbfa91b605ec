"""Hostile and broken submissions graded in ONE batch together with correct work.

Every hostile notebook is built from a real personal notebook (``build_notebook`` in
"personal" mode) with correct answers filled in and the answer cells then damaged or
extended. The batch must complete, every hostile student gets a clear flag or note,
the correct students keep exactly full marks, and nothing outside the out folder changes
(the course folder, a decoy folder of another student and a decoy secret file).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from session_build import build_once, host_sysv_keys, tree_state  # noqa: E402

from convpset.autograder.batch import BatchOptions, grade_folder  # noqa: E402
from convpset.autograder.sandbox import Limits  # noqa: E402
from convpset.notebooks.build import answer_cell_id, build_notebook, dumps  # noqa: E402
from convpset.notebooks.course import load_course  # noqa: E402
from convpset.notebooks.simulate import _literal_lines, _values  # noqa: E402
from convpset.notebooks.variants import STAMP_KEY, problems_for  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
FULL = 21.0
# wall_s generous (the sandbox charges its zygote start-up to a process's first
# notebook, seconds on a loaded machine); loops are stopped by cell_s, spinning by cpu_s.
LIMITS = Limits(wall_s=30, cell_s=2, cpu_s=5)
CORRECT = ["s001", "s015", "s029"]      # "correct" returns of the sample course
SECRET = "example-course-secret-00000001"
DECOY_SECRET = "DECOY-TOP-SECRET-7f3a9c"


# ----------------------------------------------------------------------------- notebook factory
class Factory:
    def __init__(self, course_root: Path):
        self.course = load_course(course_root)
        self.spec = self.course.assignment(ASSIGNMENT)

    def problems(self, sid: str):
        return problems_for(self.course, self.spec, sid)

    def correct_lines(self, sid: str, number: int) -> list[str]:
        p = self.problems(sid)[number - 1]
        return _literal_lines(p, _values(p, "correct"))

    def notebook(self, sid: str, body: Callable[[int, list[str]], str | None] | None = None):
        """sid's personal notebook with correct answers; ``body(number, lines)`` may
        return a replacement source for an answer cell."""
        probs = self.problems(sid)
        nb = build_notebook(self.course, ASSIGNMENT, self.spec.title, probs, sid, sid.upper(),
                            "en", "personal")
        for cell in nb.cells:
            for p in probs:
                if cell.get("id") == answer_cell_id(p.number):
                    lines = self.correct_lines(sid, p.number)
                    src = body(p.number, lines) if body else None
                    cell.source = "\n".join(lines) if src is None else src
        return nb


def with_code(number: int, code: str, before: bool = False):
    """Correct answers everywhere; ``code`` appended to (or put before) problem ``number``."""
    def body(n, lines):
        if n != number:
            return None
        return "\n".join([code, *lines] if before else [*lines, code])
    return body


# ----------------------------------------------------------------------------- the cases
# sid → (how to make the file, what to check)
CASES: dict[str, dict] = {}


def case(sid: str, check: Callable, make: Callable):
    CASES[sid] = {"check": check, "make": make}


def flags(r):
    return set(r["flags"])


def notes_text(r) -> str:
    ns = [n["en"] for n in r["notes"]] + [n["en"] for p in r["problems"] for n in p["notes"]]
    return "\n".join(ns)


def part(r, name):
    return next(x for p in r["problems"] for x in p["parts"] if x["part"] == name)


def problem_score(r, number):
    p = next(p for p in r["problems"] if p["number"] == number)
    return round(sum(x["score"] for x in p["parts"]), 2)


def full_except_timeouts(r):
    assert r["score"] == FULL, (r["score"], r["flags"])


def nb_text(f: Factory, sid: str, body=None) -> bytes:
    return dumps(f.notebook(sid, body)).encode()


# 1. infinite loop after the answers of problem 3
case("h01", lambda r: ("cell_timeout" in flags(r) and r["score"] == FULL
                       and "CellTimeout" in notes_text(r)),
     lambda f, ctx: nb_text(f, "h01", with_code(3, "while True:\n    pass")))
# 2. sleeping forever
case("h02", lambda r: "cell_timeout" in flags(r) and r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h02", with_code(2, "import time\ntime.sleep(10**6)")))
# 3. os._exit(0): the process ends, nothing can be collected
case("h03", lambda r: ("exited" in flags(r) and r["score"] == 0
                       and "ended the Python process" in notes_text(r)),
     lambda f, ctx: nb_text(f, "h03", with_code(3, "import os\nos._exit(0)")))


# 4. sys.exit(1) in the middle of problem 2: later cells still count
def _sysexit(n, lines):
    if n == 2:
        return "\n".join([lines[0], "import sys", "sys.exit(1)", *lines[1:]])
    return None


case("h04", lambda r: ("cell_error" in flags(r) and "SystemExit" in notes_text(r)
                       and all(problem_score(r, k) == problem_score_full(k) for k in (1, 3, 4, 5))
                       and part(r, "total_2")["status"] == "missing"),
     lambda f, ctx: nb_text(f, "h04", _sysexit))
# 5. 100 MB of print
case("h05", lambda r: "output_flood" in flags(r) and r["score"] == FULL
     and "[output truncated" in r["stdout_tail"],
     lambda f, ctx: nb_text(f, "h05", with_code(
         3, "for _ in range(100):\n    print('x' * 1_000_000)")))
# 6. os.write(1, ...) flood
case("h06", lambda r: "output_flood" in flags(r) and r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h06", with_code(
         3, "import os\nfor _ in range(100):\n    os.write(1, b'y' * 1_000_000)")))
# 7. one huge allocation
case("h07", lambda r: "memory" in flags(r) and r["score"] == FULL
     and "memory" in notes_text(r).lower(),
     lambda f, ctx: nb_text(f, "h07", with_code(3, "_hog = bytearray(10**11)")))
# 8. a growing list: stopped by the memory limit, or (on a loaded machine, where page
# faults eat CPU time) by the cell's CPU limit; either way only that cell fails
case("h08", lambda r: bool(flags(r) & {"memory", "cell_timeout"}) and r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h08", with_code(
         3, "_hog = []\nwhile True:\n    _hog.append(bytearray(10**7))")))
# 9. fork bomb (guarded: never forks when running as root, i.e. outside the sandbox uid)
FORK = """import os, time
if os.getuid() != 0:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(1000)
            os._exit(0)"""
case("h09", lambda r: ("cell_error" in flags(r) and r["score"] == FULL
                       and any(e in notes_text(r) for e in
                               ("PermissionError", "BlockingIOError", "Resource"))),
     lambda f, ctx: nb_text(f, "h09", with_code(3, FORK)))
# 10. threads spinning (the last problem, after its answers)
THREADS = """import threading
def _spin():
    while True:
        pass
_ts = [threading.Thread(target=_spin, daemon=True) for _ in range(4)]
for _t in _ts:
    _t.start()
for _t in _ts:
    _t.join()"""
case("h10", lambda r: (flags(r) & {"cell_timeout", "cpu_limit", "timeout"})
     and ("cpu_limit" in flags(r) or r["score"] == FULL),
     lambda f, ctx: nb_text(f, "h10", with_code(5, THREADS)))
# 11. monkeypatching numpy after the answers
case("h11", lambda r: r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h11", with_code(
         5, "import numpy\nnp.array = lambda *a, **k: 0\nnumpy.asarray = lambda *a, **k: 0\n"
            "numpy.ndarray.tobytes = lambda self: b''\nnumpy.frombuffer = None")))
# 12. monkeypatching builtins
case("h12", lambda r: r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h12", with_code(
         5, "import builtins\nbuiltins.isinstance = lambda *a: True\n"
            "builtins.len = lambda x: 0\nbuiltins.str = lambda *a: 'x'\n"
            "builtins.type = lambda *a: int")))
# 13. monkeypatching json and struct
case("h13", lambda r: r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h13", with_code(
         5, "import json, struct\njson.dumps = lambda *a, **k: '{\"answers\": []}'\n"
            "struct.pack = lambda *a: b'\\0' * 8")))


# 14. an object whose __eq__ is always True
def _liar(n, lines):
    if n == 1:
        return "\n".join([*lines, "class Liar:", "    def __eq__(self, other):",
                          "        return True", "    __hash__ = object.__hash__", "W_1 = Liar()"])
    return None


case("h14", lambda r: (part(r, "W_1")["status"] == "format_error" and part(r, "W_1")["score"] == 0
                       and "Liar" in part(r, "W_1")["message"]["en"]
                       and "shape" in part(r, "W_1")["message"]["en"]
                       and r["score"] == FULL - 3),
     lambda f, ctx: nb_text(f, "h14", _liar))


# 15. an ndarray subclass lying through __eq__/__array__/tolist
def _subclass(n, lines):
    if n == 1:
        return "\n".join([*lines, "class Evil(np.ndarray):",
                          "    def __eq__(self, other): return np.ones(np.shape(other), bool)",
                          "    def __array__(self, *a, **k): return np.asarray(W_true)",
                          "    def tolist(self): return W_true.tolist()",
                          "W_true = W_1",
                          "W_1 = np.full(W_true.shape, 12345.0).view(Evil)"])
    return None


case("h15", lambda r: part(r, "W_1")["status"] != "correct" and part(r, "W_1")["score"] < 3,
     lambda f, ctx: nb_text(f, "h15", _subclass))


# 16. writing into another student's folder, the course folder, a decoy folder
def _writes(ctx):
    targets = [ctx["course"] / "submitted" / "s001" / ASSIGNMENT / "conv1.ipynb",
               ctx["course"] / "pset.toml", ctx["course"] / "roster.csv",
               ctx["decoy"] / "s999" / ASSIGNMENT / "conv1.ipynb",
               ctx["course"] / "submitted" / "new_file.ipynb", ctx["decoy"] / "planted.txt"]
    code = ["for _p in %r:" % [str(t) for t in targets],
            "    try:",
            "        with open(_p, 'w') as _fh:",
            "            _fh.write('pwned')",
            "        print('WROTE', _p)",
            "    except OSError as _e:",
            "        print('blocked', type(_e).__name__)",
            "import os",
            f"os.unlink({str(targets[0])!r})"]
    return "\n".join(code)


case("h16", lambda r: ("WROTE" not in r["stdout_tail"] and "blocked" in r["stdout_tail"]
                       and "cell_error" in flags(r) and r["score"] == FULL),
     lambda f, ctx: nb_text(f, "h16", with_code(3, _writes(ctx))))


# 17. reading pset.toml / the decoy secret by absolute path
def _reads(ctx):
    targets = [ctx["course"] / "pset.toml", ctx["secret_file"],
               "/proc/1/environ", "/proc/%d/cwd/pset.toml", "/proc/self/../1/cwd/pset.toml"]
    code = ["import os",
            "for _p in %r:" % [str(t) for t in targets],
            "    _p = _p.replace('%d', str(os.getppid()))",
            "    try:",
            "        print('READ', open(_p).read()[:2000])",
            "    except OSError as _e:",
            "        print('blocked', type(_e).__name__)"]
    return "\n".join(code)


case("h17", lambda r: (SECRET not in r["stdout_tail"] and DECOY_SECRET not in r["stdout_tail"]
                       and "blocked" in r["stdout_tail"] and r["score"] == FULL),
     lambda f, ctx: nb_text(f, "h17", with_code(3, _reads(ctx))))
# 18. connecting to a socket on the grading machine
case("h18", lambda r: ("cell_error" in flags(r) and r["score"] == FULL
                       and any(e in notes_text(r) for e in
                               ("PermissionError", "ConnectionRefusedError", "OSError",
                                "Network is unreachable", "TimeoutError"))),
     lambda f, ctx: nb_text(f, "h18", with_code(
         3, "import socket\n"
            f"_s = socket.create_connection(('127.0.0.1', {ctx['port']}), timeout=1)\n"
            "_s.sendall(b'pwned')")))
# 19. malformed JSON
case("h19", lambda r: "unreadable" in flags(r) and "JSON" in notes_text(r) and r["score"] == 0,
     lambda f, ctx: nb_text(f, "h19")[:-300])


# 20. an nbformat 3 notebook
def _v3(f, ctx):
    nb = json.loads(nb_text(f, "h20"))
    cells = [{"cell_type": c["cell_type"], "input" if c["cell_type"] == "code" else "source":
              c["source"], "metadata": c["metadata"], "language": "python", "outputs": []}
             for c in nb["cells"]]
    return json.dumps({"metadata": nb["metadata"], "nbformat": 3, "nbformat_minor": 0,
                       "worksheets": [{"cells": cells, "metadata": {}}]}).encode()


case("h20", lambda r: "unreadable" in flags(r) and "nbformat" in notes_text(r) and r["score"] == 0,
     _v3)
# 21. a binary file renamed .ipynb
case("h21", lambda r: "unreadable" in flags(r) and "binary" in notes_text(r),
     lambda f, ctx: bytes(range(256)) * 64)
# 22. an empty file
case("h22", lambda r: "unreadable" in flags(r) and "empty" in notes_text(r),
     lambda f, ctx: b"")


# 23. the answer cell of problem 4 deleted
def _deleted(f, ctx):
    nb = f.notebook("h23")
    nb.cells = [c for c in nb.cells if c.get("id") != answer_cell_id(4)]
    return dumps(nb).encode()


case("h23", lambda r: ("missing_cells" in flags(r) and problem_score(r, 4) == 0
                       and r["score"] == FULL - 5 and "answer cell of problem 4" in notes_text(r)),
     _deleted)


# 24. cells reordered: problems in reverse order, answer cells above their data cells
def _reordered(f, ctx):
    nb = f.notebook("h24")
    head, rest = nb.cells[:2], nb.cells[2:]
    groups: dict[int, list] = {}
    for c in rest:
        n = c.metadata.get("pset_problem")
        groups.setdefault(n, []).append(c)
    cells = list(head)
    for n in sorted(groups, key=lambda k: -(k or 0)):
        g = groups[n]
        ans = [c for c in g if c.get("id", "").startswith("answer_")]
        cells += ans + [c for c in g if c not in ans]
    nb.cells = cells
    return dumps(nb).encode()


case("h24", lambda r: r["score"] == FULL, _reordered)


# 25. NaN / inf answers
def _nan(n, lines):
    if n == 4:
        return "\n".join([*lines, "dK_4 = dK_4 * np.nan", "db_4 = np.array([np.inf])"])
    return None


case("h25", lambda r: (all(part(r, x)["status"] == "format_error"
                           and "NaN or infinity" in part(r, x)["message"]["en"]
                           for x in ("dK_4", "db_4"))
                       and r["score"] == FULL - 3),
     lambda f, ctx: nb_text(f, "h25", _nan))


# 26. wrong dtype (strings, complex) and wrong shape
def _dtype(n, lines):
    if n == 5:
        return "\n".join([*lines, "Y_5 = Y_5.astype(str)", "dX_5 = dX_5 + 1j"])
    if n == 1:
        return "\n".join([*lines, "W_1 = W_1[:2]"])
    if n == 2:
        return "\n".join([*lines, "total_2 = 'forty-two'"])
    return None


def _check_dtype(r):
    y, dx, w, t = part(r, "Y_5"), part(r, "dX_5"), part(r, "W_1"), part(r, "total_2")
    assert y["status"] == "format_error" and "string" in y["message"]["en"], y
    assert "array of shape" in y["message"]["en"], y
    assert dx["status"] == "format_error" and "complex" in dx["message"]["en"], dx
    assert t["status"] == "format_error" and "integer" in t["message"]["en"], t
    assert w["status"] in ("wrong", "format_error") and w["score"] == 0, w
    assert "shape" in w["message"]["en"] and "expected" in w["message"]["en"], w
    return True


case("h26", _check_dtype, lambda f, ctx: nb_text(f, "h26", _dtype))
# 27. another student's notebook (correct for them), handed in as one's own
case("h27", lambda r: "stamp:other_student" in flags(r) and r["score"] < FULL,
     lambda f, ctx: nb_text(f, "s015"))


# 28. a tampered stamp
def _tampered(f, ctx):
    nb = f.notebook("h28")
    nb.metadata[STAMP_KEY] = copy.deepcopy(nb.metadata[STAMP_KEY])
    nb.metadata[STAMP_KEY]["problems"][0]["digest"] = "0" * 64
    return dumps(nb).encode()


case("h28", lambda r: "stamp:tampered" in flags(r) and r["notes"], _tampered)


# 29. an answer cell that raises before defining its last answer
def _raises(n, lines):
    if n == 2:
        return "\n".join([*lines[:-1], "raise ValueError('I give up')", lines[-1]])
    return None


case("h29", lambda r: ("cell_error" in flags(r) and "I give up" in notes_text(r)
                       and part(r, "dense_params_2")["status"] == "missing"
                       and r["score"] == FULL - 1),
     lambda f, ctx: nb_text(f, "h29", _raises))
# 30. a loop that swallows the cell timeout: stopped by the CPU limit
CPU_HOG = """while True:
    try:
        while True:
            pass
    except BaseException:
        pass"""
# A hog that swallows CellTimeout: either a refired timeout lands inside its handler and
# the cell fails alone (the answers count), or it outlives every refire and the process's
# CPU/wall limit ends the run (nothing to collect). Which happens depends on the load; both
# must leave a named trace.
case("h30", lambda r: (("cell_timeout" in flags(r) and r["score"] == FULL
                        and "CellTimeout" in notes_text(r))
                       or ((flags(r) & {"cpu_limit", "timeout"}) and r["score"] == 0
                           and ("CPU" in notes_text(r) or "longer than" in notes_text(r)))),
     lambda f, ctx: nb_text(f, "h30", with_code(3, CPU_HOG)))




# ----------------------------------------------------------------------------- issue 12's breaches
# 31. JSON nested 100,000 deep inside the notebook's metadata (RecursionError while reading)
def _deep_metadata(f, ctx):
    nb = json.loads(nb_text(f, "h31"))
    nb["metadata"]["deep"] = "@@DEEP@@"
    return json.dumps(nb).replace('"@@DEEP@@"', "[" * 100_000 + "]" * 100_000).encode()


case("h31", lambda r: "unreadable" in flags(r) and "nested too deeply" in notes_text(r)
     and r["score"] == 0, _deep_metadata)
# 32. a forged result nested 50,000 deep on the result channel, then os._exit(0)
FORGED = ("import os, struct\n_h = ('{\"answers\": [' + '[' * 50000 + ']' * 50000 + ']}').encode()\n"
          "os.write(3, b'AGSB' + struct.pack('<Q', len(_h)) + _h)\nos._exit(0)")
case("h32", lambda r: "bad_result" in flags(r) and r["score"] == 0,
     lambda f, ctx: nb_text(f, "h32", with_code(5, FORGED)))
# 33. an exception whose message holds a lone surrogate
case("h33", lambda r: "cell_error" in flags(r) and "boom" in notes_text(r) and r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h33", with_code(3, "raise ValueError('boom \\ud800')")))


# 34. an answer whose class __qualname__ holds a lone surrogate
def _qualname(n, lines):
    if n == 1:
        return "\n".join([*lines, "class K:", "    pass", "K.__qualname__ = 'K\\udcff'",
                          "W_1 = K()"])
    return None


case("h34", lambda r: part(r, "W_1")["status"] == "format_error" and r["score"] == FULL - 3,
     lambda f, ctx: nb_text(f, "h34", _qualname))
# 35. SysV shared memory + message queue + POSIX queue, for a later student to read
IPC = """import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
_r = [_libc.shmget(0x5EC13, 64 * 1024 * 1024, 0o1666), _libc.msgget(0x5EC13, 0o1666),
      _libc.shmget(0x5EC13, 0, 0)]
print('ipc', _r)"""
case("h35", lambda r: "ipc [-1, -1, -1]" in r["stdout_tail"] and r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h35", with_code(3, IPC)))


# 36. connecting to world-writable pathname unix sockets of the host (stream and datagram)
def _unix(ctx):
    return "\n".join([
        "import socket",
        f"for _p, _k in zip({ctx['unix_paths']!r}, (socket.SOCK_STREAM, socket.SOCK_DGRAM)):",
        "    try:",
        "        _s = socket.socket(socket.AF_UNIX, _k)",
        "        _s.connect(_p)",
        "        _s.send(b'pwned')",
        "        print('SENT', _p)",
        "    except OSError as _e:",
        "        print('blocked', type(_e).__name__)"])


case("h36", lambda r: "SENT" not in r["stdout_tail"] and "blocked" in r["stdout_tail"]
     and r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h36", with_code(3, _unix(ctx))))
# 37. snooping on other processes and their command lines in /proc
PROC = """import os
_others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]
print('others', len(_others))"""
case("h37", lambda r: ("others 0" in r["stdout_tail"] or os.geteuid() != 0) and r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h37", with_code(3, PROC)))
# 38. a profile hook that spins once the grader converts the answers
HOOK = """import sys
def _hook(frame, event, arg):
    if 'sandbox' in frame.f_code.co_filename:
        while True:
            pass
sys.setprofile(_hook)"""
case("h38", lambda r: r["score"] == FULL,
     lambda f, ctx: nb_text(f, "h38", with_code(5, HOOK)))


def problem_score_full(number: int) -> float:
    return {1: 4.0, 2: 4.0, 3: 4.0, 4: 5.0, 5: 4.0}[number]


# ----------------------------------------------------------------------------- the batch
def _build_and_grade(base: Path) -> dict:
    course = base / "course"
    course.mkdir(parents=True)
    shutil.copy2(EXAMPLE / "pset.toml", course / "pset.toml")
    ids = sorted(CORRECT + list(CASES))
    (course / "roster.csv").write_text(
        "student_id,first_name,last_name,email\n"
        + "".join(f"{s},First{s},Last{s},{s}@example.edu\n" for s in ids))
    sub = course / "submitted"
    for s in CORRECT:
        (sub / s / ASSIGNMENT).mkdir(parents=True)
        shutil.copy2(EXAMPLE / "submitted" / s / ASSIGNMENT / "conv1.ipynb",
                     sub / s / ASSIGNMENT / "conv1.ipynb")
    decoy = base / "decoy_other_course"
    (decoy / "s999" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy2(EXAMPLE / "submitted" / "s002" / ASSIGNMENT / "conv1.ipynb",
                 decoy / "s999" / ASSIGNMENT / "conv1.ipynb")
    secret_file = base / "decoy_secret.txt"
    secret_file.write_text(DECOY_SECRET + "\n")
    os.chmod(secret_file, 0o644)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    unix = _unix_listeners(Path(tempfile.mkdtemp(prefix="hostile-sock-")))
    ipc_before = host_sysv_keys()
    ctx = {"course": course, "decoy": decoy, "secret_file": secret_file,
           "port": listener.getsockname()[1], "unix_paths": [str(p) for p, _ in unix]}
    f = Factory(course)
    for sid, c in CASES.items():
        (sub / sid / ASSIGNMENT).mkdir(parents=True)
        (sub / sid / ASSIGNMENT / "conv1.ipynb").write_bytes(c["make"](f, ctx))
    out = course / "graded"
    before = {"course": tree_state(course), "decoy": tree_state(decoy),
              "secret": secret_file.read_bytes().hex()}
    report = grade_folder(sub, load_course(course), ASSIGNMENT,
                          BatchOptions(out=out, jobs=2, limits=LIMITS))
    after = {"course": tree_state(course, exclude=out), "decoy": tree_state(decoy),
             "secret": secret_file.read_bytes().hex()}
    try:
        conn, _ = listener.accept()
        conn.close()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    unix_received = _any_received(unix)
    new_ipc = sorted(host_sysv_keys() - ipc_before)
    return {"before": before, "after": after, "graded": report.graded,
            "seconds": report.seconds, "connected": connected, "ids": ids,
            "unix_received": unix_received, "new_ipc_keys": new_ipc}


def _unix_listeners(folder: Path) -> list[tuple[Path, socket.socket]]:
    """World-writable stream and datagram sockets on the host, as a daemon would have."""
    os.chmod(folder, 0o777)
    out = []
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        p = folder / f"daemon-{int(kind)}.sock"
        s = socket.socket(socket.AF_UNIX, kind)
        s.bind(str(p))
        os.chmod(p, 0o777)
        if kind == socket.SOCK_STREAM:
            s.listen(8)
        s.setblocking(False)
        out.append((p, s))
    return out


def _any_received(unix: list[tuple[Path, socket.socket]]) -> bool:
    got = False
    for p, s in unix:
        try:
            if s.type == socket.SOCK_STREAM:
                s.accept()
            else:
                s.recv(64)
            got = True
        except BlockingIOError:
            pass
        s.close()
        p.unlink()
    return got


@pytest.fixture(scope="session")
def batch(tmp_path_factory):
    """Build and grade the hostile batch once per session, shared by xdist workers."""
    d = build_once(tmp_path_factory, "grade_hostile", "state.json",
                   lambda d: json.dumps(_build_and_grade(d)))
    state = json.loads((d / "state.json").read_text())
    out = d / "course" / "graded"
    journal = {}
    for line in (out / "journal.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        journal[r["student_id"]] = r
    return {"state": state, "out": out, "journal": journal}


def test_enough_cases():
    assert len(CASES) >= 20


def test_batch_completes(batch):
    st = batch["state"]
    assert st["graded"] == len(st["ids"])
    assert set(batch["journal"]) == set(st["ids"])
    rows = (batch["out"] / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(st["ids"])
    for sid in st["ids"]:
        assert (batch["out"] / "feedback" / f"{sid}.html").exists()


@pytest.mark.parametrize("sid", CORRECT)
def test_correct_students_keep_full_marks(batch, sid):
    r = batch["journal"][sid]
    assert r["score"] == FULL and r["flags"] == [] and r["exec_status"] == "ok", r["flags"]


@pytest.mark.parametrize("sid", sorted(CASES))
def test_hostile_case(batch, sid):
    r = batch["journal"][sid]
    assert r["flags"] or r["notes"] or r["score"] == FULL or any(
        x["status"] != "correct" for p in r["problems"] for x in p["parts"]), "no trace at all"
    ok = CASES[sid]["check"](r)
    assert ok, json.dumps({k: r[k] for k in ("score", "flags", "notes", "exec_status",
                                               "stdout_tail")}, ensure_ascii=False)[:3000]


def test_nothing_outside_out_changed(batch):
    st = batch["state"]
    assert st["before"]["decoy"] == st["after"]["decoy"]
    assert st["before"]["secret"] == st["after"]["secret"]
    assert st["before"]["course"] == st["after"]["course"]


def test_no_network_connection_reached_the_host(batch):
    assert batch["state"]["connected"] is False


def test_no_host_unix_socket_reached(batch):
    """h36's target: world-writable stream and datagram sockets of the host."""
    assert batch["state"]["unix_received"] is False


def test_no_ipc_object_outlives_the_batch(batch):
    """h35 tried to leave a SysV segment and a queue behind for a later student."""
    assert 0x5EC13 not in batch["state"]["new_ipc_keys"]


def test_secrets_never_in_outputs(batch):
    for f in batch["out"].rglob("*"):
        if f.is_file():
            text = f.read_bytes().decode("utf-8", errors="replace")
            assert SECRET not in text, f
            assert DECOY_SECRET not in text, f
