"""Run untrusted student notebook cells in a sandbox and hand back plain data.

Design (see also :mod:`convpset.autograder._sandbox_child`):

* Warm template: instead of ``multiprocessing``'s forkserver we start our own tiny
  "zygote" with ``subprocess`` (``python -I -c ...``, clean environment, cwd ``/``).
  It preloads numpy and forks one child per notebook; for the first notebook that
  imports torch it forks a torch template from itself (see ``_sandbox_child``), so
  torch is imported once and only when used.  Reasons: the 3.11 forkserver re-imports
  the grader's ``__main__`` in every child, ships the multiprocessing authkey to it,
  listens on an unauthenticated filesystem socket and unpickles requests; our zygote
  talks over an anonymous socketpair and never unpickles anything.  It is started on
  first use and kept until :func:`shutdown`.  A batch's worker processes share the
  main process's zygote (:func:`zygote_socket` / :func:`attach_zygote`): one template
  tree per batch instead of one per worker.
* Each child gets only its own cells (a JSON file in its private temp dir, deleted by
  the child before student code runs), isolates itself (setsid, private cwd/HOME/TMPDIR,
  network namespace, no_new_privs + Landlock, unprivileged uid, rlimits, stdout/stderr
  to a file) and sends back a JSON header plus raw array bytes over a pipe.  The parent
  validates everything and rebuilds arrays with ``np.frombuffer(...).copy()``.
* Isolation order in the child: setsid; chdir to the private temp dir (HOME/TMPDIR);
  [root] unshare(CLONE_NEWNET); [root] private mount namespace that re-exposes allowed
  read paths hidden behind a 0700 ancestor (the Python install lives in /root here): an
  empty tmpfs covers the ancestor and only the allowed dirs are bind-mounted back;
  PR_SET_NO_NEW_PRIVS + Landlock (fs rights of the running ABI, TCP bind/connect denied
  on ABI>=4, signal/abstract-unix scoping on ABI>=6); [root] setgroups/setgid/setuid to
  a per-slot uid (``_UID_BASE + slot``, spread by our pid so parallel graders never share
  uids); rlimits; stdout/stderr -> ``output.txt``.  After the cells the child SIGKILLs
  every other process of its uid (``kill(-1)``); the parent additionally sweeps /proc for
  that uid after every notebook.  :func:`isolation_report` shows what was applied.
* ``ExecResult`` has one extra field beyond the agreed API: ``isolation`` (dict, not
  part of equality/repr) with the child's record of the isolation steps it applied.
* Not limited: total disk usage in the temp dir (each file <= the FSIZE limit, but many
  files are possible until wall_s ends); UDP sockets when no network namespace exists.
* Output vs. files: RLIMIT_FSIZE is a per-file limit, so one limit
  ``max(file_bytes, output_bytes)`` applies to every file including the captured
  output; output beyond ``output_bytes`` is ignored by the parent and flagged as
  "output_flood" (writes beyond the rlimit fail with OSError inside the student code).
* ``sys.exit`` / ``SystemExit`` / ``KeyboardInterrupt`` in a cell are recorded as a
  :class:`CellError` and execution CONTINUES with the next cell (unlike nbgrader).
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import functools
import json
import os
import select
import shutil
import signal
import site
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

import convpset

__all__ = ["Limits", "Answer", "CellError", "ExecResult", "run_cells", "run_many", "shutdown",
           "isolation_report"]


@dataclass(frozen=True)
class Limits:
    wall_s: float = 20.0
    cell_s: float = 5.0       # wall seconds per cell (SIGALRM): a sleeping cell fails alone
    cell_cpu_s: float = 1.0   # CPU seconds per cell (SIGPROF): a looping cell fails alone,
                              # and a loaded machine cannot make a quick cell time out
    import_cpu_s: float = 5.0  # CPU seconds per notebook for first-time imports, kept off
                               # the cells' clocks (matplotlib alone takes ~1 s)
    cpu_s: int = 10
    memory_mb: int = 512
    output_bytes: int = 1_000_000
    file_bytes: int = 10_000_000
    nproc: int = 16
    answer_bytes: int = 20_000_000


@dataclass(frozen=True)
class Answer:
    name: str
    present: bool
    source_type: str
    value: np.ndarray | None
    error: str | None
    rows: tuple[np.ndarray, ...] | None = None   # ragged lists, e.g. [(6, 24, 24), (256,)]


@dataclass(frozen=True)
class CellError:
    index: int
    ename: str
    evalue: str
    traceback_tail: str


@dataclass(frozen=True)
class ExecResult:
    status: str
    message: str
    answers: dict[str, Answer]
    cell_errors: tuple[CellError, ...]
    stdout_tail: str
    duration_s: float
    isolation: dict = field(default_factory=dict, repr=False, compare=False)


_MAGIC = b"AGSB"
_HEADER_CAP = 8_000_000
_TAIL = 2000
_DTYPES = {"|b1": np.dtype(np.bool_), "<i8": np.dtype("<i8"), "<f8": np.dtype("<f8")}
_IS_ROOT = os.geteuid() == 0
# Sandbox uids: one per concurrent slot, spread by our pid so that two grader processes
# on one machine (e.g. pytest-xdist) never share (and never sweep) each other's uids.
_UID_BASE = 200_000 + (os.getpid() % 100_000) * 128
_MAX_SLOTS = 128
# the folder that holds the convpset package (site-packages, or the checkout)
_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(convpset.__file__)))
try:   # the grader's network namespace: a sandbox must be in another one
    _HOST_NETNS: int | None = os.stat("/proc/self/ns/net").st_ino
except OSError:
    _HOST_NETNS = None


@functools.lru_cache(maxsize=1)
def _read_paths() -> list[str]:
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             "/usr", "/lib", "/lib64", "/bin", "/etc", "/proc", "/sys/devices/system/cpu"}
    try:
        sp = site.getsitepackages()
    except Exception:
        sp = []
    for p in sp + [os.path.dirname(np.__file__)]:
        paths.add(p)
        paths.add(os.path.realpath(p))
    for p in list(paths):
        paths.add(os.path.realpath(p))
    return sorted(p for p in paths if os.path.exists(p))


# ----------------------------------------------------------------------------- zygote
class _Zygote:
    """The warm template process (numpy; torch on demand), owned by this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # glibc.malloc.hugetlb=1: malloc asks for transparent huge pages. The torch
        # template's heap then needs far fewer page-table entries to fork (a torch notebook
        # costs ~25% less), and a notebook that allocates until its memory limit faults in
        # 2 MB pages instead of 4 kB ones (~2.5x cheaper). Ignored where unsupported.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
        code = (f"import sys; sys.path.insert(0, {_PKG_ROOT!r}); import numpy; "
                "from convpset.autograder import _sandbox_child as c; "
                f"c.zygote_main({child.fileno()})")
        self.proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-I", "-c", code], pass_fds=[child.fileno()], env=env, cwd="/",
            stdin=subprocess.DEVNULL)
        child.close()
        self.sock = parent

    @classmethod
    def attached(cls, sock: socket.socket) -> _Zygote:
        """A zygote started by another process (the batch's main process)."""
        z = cls.__new__(cls)
        z.lock, z.proc, z.sock = threading.Lock(), None, sock
        return z

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def submit(self, tmp: str, fds: list[int], torch: bool) -> None:
        with self.lock:
            socket.send_fds(self.sock, [(b"T" if torch else b"N") + tmp.encode()], fds)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_zygote: _Zygote | None = None
_zlock = threading.Lock()


def _get_zygote() -> _Zygote:
    global _zygote
    with _zlock:
        z = _zygote
        if z is None or not z.alive():
            if z is not None:
                z.close()
            z = _zygote = _Zygote()
        return z


def _drop_zygote(z: _Zygote) -> None:
    """Forget a zygote that stopped answering (the next request starts our own)."""
    global _zygote
    with _zlock:
        if _zygote is z:
            _zygote = None
    z.close()


def zygote_socket() -> socket.socket:
    """This process's zygote socket, to hand to worker processes (picklable for spawn)."""
    return _get_zygote().sock


def prewarm_torch() -> None:
    """Have the zygote start its torch template now, in the background (a batch whose
    notebooks use torch would otherwise all wait for the first one's import)."""
    z = _get_zygote()
    try:
        with z.lock:
            z.sock.send(b"W")
    except OSError:     # best effort: a dead zygote is replaced on the first real request
        pass


def attach_zygote(sock: socket.socket) -> None:
    """Use a zygote started by another process (called in a batch worker's initializer).

    If it ever stops answering, this process falls back to starting its own.
    """
    global _zygote
    with _zlock:
        _zygote = _Zygote.attached(sock)


def shutdown() -> None:
    """Stop the warm zygote process (registered with atexit)."""
    global _zygote
    with _zlock:
        if _zygote is not None:
            _zygote.close()
        _zygote = None


atexit.register(shutdown)

# ----------------------------------------------------------------------------- slots
_slot_lock = threading.Lock()
_slots_used: set[int] = set()


def _acquire_slot() -> int:
    with _slot_lock:
        for i in range(_MAX_SLOTS):
            if i not in _slots_used:
                _slots_used.add(i)
                return i
    raise RuntimeError("too many concurrent sandboxes")


def _release_slot(i: int) -> None:
    with _slot_lock:
        _slots_used.discard(i)


def _sweep_uid(uid: int) -> None:
    """SIGKILL every process running as the sandbox uid (stray forks, daemons)."""
    for _ in range(3):
        found = False
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        for n in names:
            if not n.isdigit():
                continue
            try:
                if os.stat("/proc/" + n).st_uid == uid:
                    os.kill(int(n), signal.SIGKILL)
                    found = True
            except OSError:
                pass
        if not found:
            return
        time.sleep(0.005)


def _kill_tree(pid: int, uid: int | None) -> None:
    for f in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            f()
        except OSError:
            pass
    if uid is not None:
        _sweep_uid(uid)


# ----------------------------------------------------------------------------- parsing
class _BadResult(Exception):
    pass


def _s(x, n: int) -> str:
    if not isinstance(x, str):
        raise _BadResult("expected string")
    return x[:n]


def _parse(buf: bytes | bytearray, names: Sequence[str], limits: Limits):
    if len(buf) < 12 or bytes(buf[:4]) != _MAGIC:
        raise _BadResult("no result header")
    (hlen,) = struct.unpack_from("<Q", buf, 4)
    if hlen > _HEADER_CAP or 12 + hlen > len(buf):
        raise _BadResult("bad header length")
    try:
        hdr = json.loads(bytes(buf[12:12 + hlen]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise _BadResult(f"header not JSON: {e}") from None
    if not isinstance(hdr, dict) or not isinstance(hdr.get("answers"), list):
        raise _BadResult("malformed header")
    off = 12 + hlen
    answers: dict[str, Answer] = {}
    want = list(names)
    if len(hdr["answers"]) != len(want):
        raise _BadResult("wrong number of answers")
    for name, ent in zip(want, hdr["answers"], strict=False):
        if not isinstance(ent, dict) or ent.get("name") != name:
            raise _BadResult("answer names do not match")
        present = ent.get("present")
        if not isinstance(present, bool):
            raise _BadResult("bad 'present'")
        src = _s(ent.get("source_type", ""), 200)
        err = ent.get("error")
        err = None if err is None else _s(err, 500)
        value = None
        dt, shape = ent.get("dtype"), ent.get("shape")
        if dt is not None:
            if dt not in _DTYPES or not isinstance(shape, list) or len(shape) > 32:
                raise _BadResult("bad dtype/shape")
            if not all(type(d) is int and 0 <= d for d in shape):
                raise _BadResult("bad shape")
            dtype = _DTYPES[dt]
            n = 1
            for d in shape:
                n *= d
            nb = n * dtype.itemsize
            if nb > limits.answer_bytes or off + nb > len(buf):
                raise _BadResult("array data missing or too large")
            value = np.frombuffer(buf, dtype=dtype, count=n, offset=off).reshape(shape).copy()
            off += nb
        rows = None
        lengths = ent.get("rows")
        if lengths is not None:
            if (value is None or value.ndim != 1 or not isinstance(lengths, list)
                    or not all(type(k) is int and k >= 0 for k in lengths)
                    or sum(lengths) != value.size):
                raise _BadResult("bad ragged rows")
            cuts = np.cumsum([0, *lengths])
            rows = tuple(value[a:b].astype(np.float64) for a, b in zip(cuts[:-1], cuts[1:], strict=True))
            value = None
        answers[name] = Answer(name=name, present=present, source_type=src, value=value, error=err,
                               rows=rows)
    if off != len(buf):
        raise _BadResult("trailing bytes after the answers")
    errs = []
    ces = hdr.get("cell_errors", [])
    if not isinstance(ces, list):
        raise _BadResult("bad cell errors")
    for ce in ces[:10_000]:
        if not isinstance(ce, dict) or type(ce.get("index")) is not int:
            raise _BadResult("bad cell error")
        errs.append(CellError(index=ce["index"], ename=_s(ce.get("ename", ""), 200),
                              evalue=_s(ce.get("evalue", ""), 500),
                              traceback_tail=_s(ce.get("traceback_tail", ""), 2000)))
    iso = hdr.get("isolation")
    return answers, tuple(errs), bool(hdr.get("memory_error") is True), iso if isinstance(iso, dict) else {}


def _read_output(path: str, limits: Limits, uid: int | None) -> tuple[str, bool]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return "", False
    try:
        st = os.fstat(fd)
        import stat as _stat
        if not _stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or (uid is not None and st.st_uid != uid):
            return "", False
        size = st.st_size
        kept = min(size, limits.output_bytes)
        start = max(0, kept - _TAIL * 4)
        data = os.pread(fd, kept - start, start)
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="replace")[-_TAIL:]
    flood = size > limits.output_bytes
    if flood:
        text += f"\n[output truncated: more than {limits.output_bytes} bytes]"
    return text, flood


# ----------------------------------------------------------------------------- messages
def _message(status: str, limits: Limits, rc: int | None = None, detail: str = "") -> str:
    m = {
        "ok": "Your code ran to completion.",
        "timeout": f"Your code ran longer than {limits.wall_s:g} s (infinite loop?); "
                   "answers defined before that point were not collected.",
        "cpu_limit": f"Your code used more than {limits.cpu_s} s of CPU time and was stopped; "
                     "answers were not collected.",
        "memory": f"Your code tried to use more than {limits.memory_mb} MB of memory; "
                  "answers that could still be read were collected.",
        "exited": f"Your code ended the Python process itself (os._exit or similar, exit code {rc}); "
                  "answers could not be collected.",
        "crashed": f"The Python process running your code crashed ({detail}); answers could not be collected.",
        "output_flood": f"Your code printed more than {limits.output_bytes} bytes; the rest of the output "
                        "was discarded (answers were still collected).",
        "bad_result": f"The result sent back by your code's process was malformed or too large ({detail}); "
                      "answers could not be collected.",
    }
    return m[status]


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


# ----------------------------------------------------------------------------- core
def _run_one(cells: Sequence[str], names: Sequence[str], limits: Limits, preload_torch: bool) -> ExecResult:
    t0 = time.monotonic()
    cells = [str(c) for c in cells]
    names = [str(n) for n in names]
    slot = _acquire_slot()
    uid = _UID_BASE + slot if _IS_ROOT else None
    tmp = tempfile.mkdtemp(prefix="ag-sbx-")
    st_p = r = None
    pid = None
    try:
        task = {"cells": cells, "answer_names": names, "uid": uid, "read_paths": list(_read_paths()),
                "host_netns": _HOST_NETNS,
                "limits": {k: getattr(limits, k) for k in limits.__dataclass_fields__}}
        with open(os.path.join(tmp, "task.json"), "w") as f:
            f.write(json.dumps(task))   # the C encoder (json.dump streams through Python)
        if uid is not None:
            os.chown(tmp, uid, uid)
        os.chmod(tmp, 0o700)
        st_p, st_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        r, w = os.pipe()
        try:
            for attempt in range(2):
                z = _get_zygote()
                try:
                    z.submit(tmp, [st_c.fileno(), w], preload_torch)
                    break
                except OSError:
                    if attempt:
                        raise
                    _drop_zygote(z)
        finally:
            st_c.close()
            os.close(w)
        deadline = t0 + limits.wall_s
        cap = 12 + _HEADER_CAP + limits.answer_bytes
        buf = bytearray()
        status_buf = b""
        exit_info = None
        timed_out = oversize = False
        r_open = True
        st_p.setblocking(False)
        os.set_blocking(r, False)
        while exit_info is None:
            now = time.monotonic()
            # before the child is forked we wait a bit longer (zygote start-up)
            limit_t = deadline if pid is not None else max(deadline, t0 + 60)
            if now >= limit_t or oversize:
                if pid is None:
                    raise RuntimeError("sandbox zygote did not start the child")
                timed_out = not oversize
                _kill_tree(pid, uid)
                limit_t = now + 10
                deadline = float("inf")
                oversize = False
            rl = [st_p] + ([r] if r_open else [])
            ready, _, _ = select.select(rl, [], [], max(0.0, min(limit_t - now, 1.0)))
            if r in ready and r_open:
                try:
                    chunk = os.read(r, 1 << 20)
                except BlockingIOError:
                    chunk = None
                if chunk == b"":
                    r_open = False
                elif chunk:
                    if len(buf) + len(chunk) > cap:
                        oversize = True
                        r_open = False
                    else:
                        buf += chunk
            if st_p in ready:
                try:
                    d = st_p.recv(64)
                except BlockingIOError:
                    d = None
                if d == b"":
                    if pid is None or len(status_buf) < 9 + 25:
                        # zygote died: treat as crash
                        exit_info = (-signal.SIGKILL, 0.0, 0)
                elif d:
                    status_buf += d
                    if pid is None and len(status_buf) >= 9 and status_buf[:1] == b"P":
                        (pid,) = struct.unpack_from("<q", status_buf, 1)
                        # the student's time starts when their child exists, not while a
                        # cold template (numpy, torch) is still importing
                        if deadline != float("inf"):
                            deadline = time.monotonic() + limits.wall_s
                    if len(status_buf) >= 9 + 25 and status_buf[9:10] == b"X":
                        exit_info = struct.unpack_from("<qdq", status_buf, 10)
        # drain what the (now dead) child wrote
        while r_open and not oversize:
            try:
                chunk = os.read(r, 1 << 20)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            if len(buf) + len(chunk) > cap:
                oversize = True
                break
            buf += chunk
        rc, cpu, maxrss = exit_info
        if uid is not None:
            _sweep_uid(uid)
        elif pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        tail, flood = _read_output(os.path.join(tmp, "output.txt"), limits, uid)
        answers = {n: Answer(n, False, "", None, "not collected") for n in names}
        cell_errors: tuple[CellError, ...] = ()
        iso: dict = {}
        if timed_out:
            status, msg = "timeout", _message("timeout", limits)
        elif oversize:
            status, msg = "bad_result", _message("bad_result", limits, detail="result too large")
        else:
            parsed = None
            err = ""
            if buf:
                try:
                    parsed = _parse(buf, names, limits)
                except _BadResult as e:
                    err = str(e)
            if parsed is not None:
                answers, cell_errors, mem, iso = parsed
                if mem:
                    status = "memory"
                elif flood:
                    status = "output_flood"
                else:
                    status = "ok"
                msg = _message(status, limits)
            elif buf:
                status, msg = "bad_result", _message("bad_result", limits, detail=err)
            elif rc < 0:
                sig = -rc
                near_mem = maxrss * 1024 >= 0.8 * limits.memory_mb * 1024 * 1024
                if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.cpu_s - 0.2):
                    status, msg = "cpu_limit", _message("cpu_limit", limits)
                elif near_mem or "MemoryError" in tail:
                    status, msg = "memory", _message("memory", limits)
                else:
                    status, msg = "crashed", _message("crashed", limits, detail=f"killed by {_signame(sig)}")
            elif "MemoryError" in tail:
                status, msg = "memory", _message("memory", limits)
            elif rc in (111, 112):
                status, msg = "crashed", _message("crashed", limits, detail="sandbox set-up or result step failed")
            else:
                status, msg = "exited", _message("exited", limits, rc=rc)
        return ExecResult(status=status, message=msg, answers=answers, cell_errors=cell_errors,
                          stdout_tail=tail, duration_s=time.monotonic() - t0, isolation=iso)
    finally:
        if st_p is not None:
            st_p.close()
        if r is not None:
            os.close(r)
        shutil.rmtree(tmp, ignore_errors=True)
        _release_slot(slot)


def run_cells(cells: Sequence[str], answer_names: Sequence[str], limits: Limits = Limits(), *,
              preload_torch: bool = False) -> ExecResult:
    """Run ``cells`` in one fresh sandboxed process and return the named answers."""
    return _run_one(cells, answer_names, limits, preload_torch)


def run_many(tasks: Iterable[tuple[Sequence[str], Sequence[str]] | tuple[Sequence[str], Sequence[str], bool]],
             limits: Limits, jobs: int, *, preload_torch: bool = False) -> Iterator[ExecResult]:
    """Yield one ExecResult per task, in task order, running up to ``jobs`` sandboxes at once.

    A task is ``(cells, answer_names)`` or ``(cells, answer_names, uses_torch)``: a notebook
    that uses torch runs in a child of the warm template that has torch imported; the
    others never pay for it.
    """
    jobs = max(1, int(jobs))
    window: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sandbox") as ex:
        for task in tasks:
            cells, names, *rest = task
            torch_here = bool(rest[0]) if rest else preload_torch
            window.append(ex.submit(_run_one, cells, names, limits, torch_here))
            while len(window) >= 2 * jobs + 2:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def isolation_report() -> dict:
    """Describe the isolation that is actually active here (runs one probe sandbox)."""
    res = run_cells([], [], Limits(wall_s=30))
    rep = {
        "euid": os.geteuid(),
        "warm_template": "own zygote (subprocess, python -I) preloading numpy; fork per notebook",
        "sandbox_uid_range": [_UID_BASE, _UID_BASE + _MAX_SLOTS - 1] if _IS_ROOT else None,
        "probe_status": res.status,
    }
    rep.update(res.isolation)
    return rep


def landlock_available() -> bool:
    """True when the running kernel supports Landlock (any ABI version)."""
    from convpset.autograder import _sandbox_child

    return _sandbox_child.landlock_abi() > 0
