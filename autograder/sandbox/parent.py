"""Grading-process side: the warm zygote it talks to, sandbox uids, and one notebook's run
from request to :class:`ExecResult`.

The zygote is our own tiny template process started with ``subprocess`` (``python -I``,
clean environment, cwd ``/``) rather than multiprocessing's forkserver: the 3.11
forkserver re-imports the grader's ``__main__`` in every child, ships the multiprocessing
authkey to it, listens on an unauthenticated filesystem socket and unpickles requests;
ours talks over an anonymous socketpair and never unpickles anything. It is started on
first use (from the main thread where possible, so it dies with this process) and kept
until :func:`shutdown`. A batch's worker processes share the main process's zygote
(:func:`zygote_socket` / :func:`attach_zygote`): one template tree per batch.
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

import numpy as np

import convpset
from convpset.autograder.sandbox import protocol as P
from convpset.autograder.sandbox.model import Answer, CellError, ExecResult, Limits
from convpset.autograder.sandbox.result import BadResult, classify_exit, parse, read_output

_IS_ROOT = os.geteuid() == 0
DEFAULT_LIMITS = Limits()
# how long a child that has sent its whole result may take to exit before it is killed
# (its answers count either way)
RESULT_GRACE_S = 5.0
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
               "NUMEXPR_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONHASHSEED": "0", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
        # PR_SET_PDEATHSIG follows the starting *thread*: tie the zygote to us only when
        # that thread is the main one (otherwise it exits when every socket holder is gone)
        tie = os.getpid() if threading.current_thread() is threading.main_thread() else 0
        code = (f"import sys; sys.path.insert(0, {_PKG_ROOT!r}); import numpy; "
                "from convpset.autograder.sandbox import zygote as z; "
                f"z.zygote_main({child.fileno()}, parent_pid={tie}, "
                f"read_paths={list(_read_paths())!r})")
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
            kind = P.REQ_TORCH if torch else P.REQ_NUMPY
            socket.send_fds(self.sock, [kind + tmp.encode()], fds)

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
            z.sock.send(P.REQ_WARM)
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


# ----------------------------------------------------------------------------- one run
class _Channel:
    """What arrives from one child: the status messages and the result bytes."""

    def __init__(self, limits: Limits) -> None:
        self.cap = P.PREFIX_LEN + P.HEADER_CAP + limits.answer_bytes
        self.buf = bytearray()
        self.status = b""
        self.pid: int | None = None
        self.exit_info: tuple[int, float, int] | None = None
        self.oversize = False
        self.r_open = True
        self.result_done = False     # the child closed its result pipe after writing to it

    def take_result(self, chunk: bytes) -> None:
        if len(self.buf) + len(chunk) > self.cap:
            self.oversize = True
            self.r_open = False
        else:
            self.buf += chunk

    def take_status(self, d: bytes) -> bool:
        """Returns True when the pid just became known."""
        if d == b"":
            if self.pid is None or len(self.status) < P.PID_MSG_LEN + P.EXIT_MSG_LEN:
                self.exit_info = (-signal.SIGKILL, 0.0, 0)      # the template died
            return False
        self.status += d
        new_pid = False
        if self.pid is None and len(self.status) >= P.PID_MSG_LEN and self.status[:1] == P.ST_PID:
            (self.pid,) = struct.unpack_from(P.PID_FMT, self.status, 1)
            new_pid = True
        x = P.PID_MSG_LEN
        if len(self.status) >= x + P.EXIT_MSG_LEN and self.status[x:x + 1] == P.ST_EXIT:
            self.exit_info = struct.unpack_from(P.EXIT_FMT, self.status, x + 1)
        return new_pid


def _submit(tmp: str, st_c: socket.socket, w: int, torch: bool) -> None:
    dfd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for attempt in range(2):
            z = _get_zygote()
            try:
                z.submit(tmp, [st_c.fileno(), w, dfd], torch)
                return
            except OSError:
                if attempt:
                    raise
                _drop_zygote(z)
    finally:
        os.close(dfd)


def _wait(ch: _Channel, st_p: socket.socket, r: int, t0: float, limits: Limits,
          uid: int | None) -> bool:
    """Collect the child's output until it exited; True when it ran out of wall time."""
    deadline = t0 + limits.wall_s
    timed_out = False
    st_p.setblocking(False)
    os.set_blocking(r, False)
    while ch.exit_info is None:
        now = time.monotonic()
        # before the child is forked we wait a bit longer (zygote start-up)
        limit_t = deadline if ch.pid is not None else max(deadline, t0 + 60)
        if now >= limit_t or ch.oversize:
            if ch.pid is None:
                raise RuntimeError("sandbox zygote did not start the child")
            # a child that sent its result and then hangs on its way out keeps it
            timed_out = timed_out or not (ch.oversize or ch.result_done)
            _kill_tree(ch.pid, uid)
            limit_t = now + 10
            deadline = float("inf")
        rl = [st_p] + ([r] if ch.r_open else [])
        ready, _, _ = select.select(rl, [], [], max(0.0, min(limit_t - now, 1.0)))
        if r in ready and ch.r_open:
            try:
                chunk = os.read(r, 1 << 20)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                ch.r_open = False
                if ch.buf and not ch.oversize and deadline != float("inf"):
                    ch.result_done = True        # only the child's exit is left
                    deadline = min(deadline, time.monotonic() + RESULT_GRACE_S)
            elif chunk:
                ch.take_result(chunk)
        if st_p in ready:
            try:
                d = st_p.recv(64)
            except BlockingIOError:
                continue
            # the student's time starts when their child exists, not while a cold
            # template (numpy, torch) is still importing
            if ch.take_status(d) and deadline != float("inf"):
                deadline = time.monotonic() + limits.wall_s
    while ch.r_open and not ch.oversize:       # drain what the (now dead) child wrote
        try:
            chunk = os.read(r, 1 << 20)
        except OSError:
            break
        if not chunk:
            break
        ch.take_result(chunk)
    return timed_out


def _outcome(ch: _Channel, timed_out: bool, names: list[str], limits: Limits, tail: str,
             flood: bool):
    """(status, detail, answers, cell errors, isolation) of a finished run."""
    answers = {n: Answer(n, False, "", None, "not collected") for n in names}
    if timed_out:
        return P.TIMEOUT, "", answers, (), {}
    if ch.oversize:
        return P.BAD_RESULT, P.DETAIL_TOO_LARGE, answers, (), {}
    if ch.buf:
        try:
            answers, cell_errors, mem, iso = parse(ch.buf, names, limits)
        except (BadResult, ValueError, TypeError, RecursionError, MemoryError):
            return P.BAD_RESULT, P.DETAIL_MALFORMED, answers, (), {}
        status = P.MEMORY if mem else P.OUTPUT_FLOOD if flood else P.OK
        return status, "", answers, cell_errors, iso
    rc, cpu, maxrss = ch.exit_info
    status, detail = classify_exit(rc, cpu, maxrss, tail, limits)
    return status, detail, answers, (), {}


def _run_one(cells: Sequence[str], names: Sequence[str], limits: Limits,
             preload_torch: bool) -> ExecResult:
    t0 = time.monotonic()
    cells = [str(c) for c in cells]
    names = [str(n) for n in names]
    slot = _acquire_slot()
    uid = _UID_BASE + slot if _IS_ROOT else None
    tmp = tempfile.mkdtemp(prefix="ag-sbx-")
    st_p = r = None
    try:
        task = {"cells": cells, "answer_names": names, "uid": uid,
                "read_paths": list(_read_paths()), "host_netns": _HOST_NETNS,
                "limits": {k: getattr(limits, k) for k in limits.__dataclass_fields__}}
        with open(os.path.join(tmp, "task.json"), "w") as f:
            # the C encoder (json.dump streams through Python); cells may hold lone
            # surrogates, which JSON escapes and the child reads back as they were
            f.write(json.dumps(task))
        if uid is not None:
            os.chown(tmp, uid, uid)
        os.chmod(tmp, 0o700)
        st_p, st_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        r, w = os.pipe()
        try:
            _submit(tmp, st_c, w, preload_torch)
        finally:
            st_c.close()
            os.close(w)
        ch = _Channel(limits)
        timed_out = _wait(ch, st_p, r, t0, limits, uid)
        if uid is not None:
            _sweep_uid(uid)
        elif ch.pid is not None:
            try:
                os.killpg(ch.pid, signal.SIGKILL)
            except OSError:
                pass
        tail, flood = read_output(os.path.join(tmp, "output.txt"), limits, uid)
        status, detail, answers, cell_errors, iso = _outcome(ch, timed_out, names, limits,
                                                             tail, flood)
        return ExecResult(status=status, detail=detail, answers=answers,
                          cell_errors=cell_errors, stdout_tail=tail,
                          duration_s=time.monotonic() - t0, isolation=iso)
    finally:
        if st_p is not None:
            st_p.close()
        if r is not None:
            os.close(r)
        shutil.rmtree(tmp, ignore_errors=True)
        _release_slot(slot)


def run_cells(cells: Sequence[str], answer_names: Sequence[str], limits: Limits = DEFAULT_LIMITS, *,
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
    _get_zygote()          # from this thread (usually the main one): see _Zygote
    window: collections.deque = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sandbox") as ex:
        for task in tasks:
            cells, names, *rest = task
            torch_here = bool(rest[0]) if rest else preload_torch
            window.append((ex.submit(_run_one, cells, names, limits, torch_here), names))
            while len(window) >= 2 * jobs + 2:
                yield _result_of(*window.popleft())
        while window:
            yield _result_of(*window.popleft())


def _result_of(fut: concurrent.futures.Future, names: Sequence[str]) -> ExecResult:
    """The run's result; a failure of the sandbox machinery itself (not of the student's
    code) becomes a ``grader_error`` result for that one notebook, never an exception."""
    try:
        return fut.result()
    except Exception as err:
        answers = {str(n): Answer(str(n), False, "", None, "not collected") for n in names}
        return ExecResult(status=P.GRADER_ERROR, detail=type(err).__name__, answers=answers,
                          cell_errors=(), stdout_tail="", duration_s=0.0)


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


__all__ = ["Answer", "CellError", "ExecResult", "Limits", "attach_zygote", "isolation_report",
           "prewarm_torch", "run_cells", "run_many", "shutdown", "zygote_socket"]
