"""The sandboxed child: isolate, run one student's cells, convert the answers, send them.

Forked from a warm template (:mod:`.zygote`) for each notebook. Isolation order:
setsid; the output file opened on the host; [root] new network (unless the template's
empty one is shared), IPC and mount namespaces with the private mounts of
:mod:`.namespaces`; chdir into the private work dir; PR_SET_NO_NEW_PRIVS; Landlock;
[root] setgroups/setgid/setuid to the sandbox uid; PR_SET_PDEATHSIG (again: the uid
change clears it); rlimits; the seccomp filter; stdout/stderr to the output file.

After the cells (:func:`_run`): trace/profile hooks cleared, the other threads frozen,
the guarded modules restored without running student code, every answer converted on its
own clock that no thread can cancel (:class:`_Collector`), the result written to
``RESULT_FD`` (:mod:`.protocol`), every other process of the sandbox uid killed, and the
child gone with ``os._exit`` (no finalizer or atexit hook of the student's ever runs).
"""

from __future__ import annotations

import _thread
import builtins
import ctypes
import gc
import json
import linecache
import os
import signal
import sys
import threading
import time
import traceback

from convpset.autograder.sandbox import landlock, namespaces, protocol, rlimits, seccomp
from convpset.autograder.sandbox.convert import (
    NotConvertible,
    Rows,
    convert,
    safe_str,
    type_name,
)

_dumps = json.dumps
_isinstance = isinstance
_type = type
_len = len
_str = str
_settrace, _setprofile = sys.settrace, sys.setprofile
_th_settrace, _th_setprofile = threading.settrace, threading.setprofile
_gc_callbacks = gc.callbacks
_setitimer = signal.setitimer
_signal = signal.signal
_pthread_sigmask, _SIG_SETMASK, _SIG_IGN = signal.pthread_sigmask, signal.SIG_SETMASK, signal.SIG_IGN
_ITIMER_REAL, _ITIMER_VIRTUAL, _ITIMER_PROF = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL,
                                               signal.ITIMER_PROF)
_SIGALRM, _SIGPROF, _SIGVTALRM, _SIGXCPU = (signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM,
                                            signal.SIGXCPU)
_RESULT_FD = protocol.RESULT_FD
_list, _id, _int = list, id, int
_thread_time, _monotonic, _sleep = time.thread_time, time.monotonic, time.sleep
_current_frames, _get_ident = sys._current_frames, _thread.get_ident
_os_write, _os_close, _os_kill, _os_exit, _getuid = os.write, os.close, os.kill, os._exit, os.getuid
_module_dict = type(sys).__dict__["__dict__"].__get__   # a module's own dict, whatever its class
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
_c_uint64_at = ctypes.c_uint64.from_address
_HAS_DICT_VERSION = sys.version_info[:2] in ((3, 11), (3, 12))
libc = namespaces.libc
# compiled once, here in the template; every child only loads it
SECCOMP_PROGRAM = seccomp.build()
CONVERSION_FILTER = seccomp.build_conversion()
FREEZE_WAIT_S = 0.25         # how long the other threads get to reach the freeze
CONVERT_WALL_FACTOR = 3.0    # an answer's wall budget: this many times its CPU budget
ESCALATE_AFTER = 20          # timer firings swallowed by one answer's code before we give up
REFIRE_S = 0.05
# A cell's timers keep firing until the cell ends: CPython swallows an exception raised
# inside an at-fork handler (os.fork's Python callbacks) or a finalizer, so one firing
# may not stop a loop that spends its time there (a fork bomb under seccomp does).
CELL_REFIRE_CPU_S = 0.1
CELL_REFIRE_WALL_S = 0.5


# the child's own output streams (a notebook may replace sys.stdout): flushed at the end
_STREAMS: list = []


# ----------------------------------------------------------------------------- isolation
def _netns(root: bool, task: dict, rep: dict) -> None:
    host = task.get("host_netns")
    shared = host is not None and namespaces.own_netns() not in (host, -1)
    rep["netns"] = rep["netns_shared"] = shared          # the template's empty namespace
    if root and not shared:
        try:
            namespaces.unshare(namespaces.CLONE_NEWNET)
            rep["netns"] = True
        except OSError as e:
            rep["netns_error"] = _str(e)


def _isolate(task: dict, tmp: str, template_ppid: int) -> tuple[dict, str]:
    """Isolate this child; (the isolation record, the work dir it now runs in)."""
    rep: dict = {"ipcns": False}
    rep.update(namespaces.TEMPLATE)
    os.setsid()
    rep["setsid"] = True
    root = os.geteuid() == 0
    uid = task.get("uid")
    lim = task["limits"]
    # on the host's file system, through the dir fd (the template's own mount namespace
    # hides the path): the parent reads it after the child is gone
    out_fd = os.open("output.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC
                     | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=protocol.DIR_FD)
    if root and uid is not None:
        os.fchown(out_fd, uid, uid)
    _netns(root, task, rep)
    work = tmp
    if root and uid is not None and namespaces.TEMPLATE.get("template_mounts"):
        try:
            rep.update(namespaces.child_mounts(uid, int(lim["disk_bytes"])))
            work = namespaces.WORK
        except OSError as e:
            rep["mount_ns_error"] = _str(e)
    if work == tmp:
        os.fchdir(protocol.DIR_FD)
    os.close(protocol.DIR_FD)
    os.chdir(work)
    for k in ("HOME", "TMPDIR", "TMP", "TEMP"):
        os.environ[k] = work
    rep["private_tmp"] = True
    rep["no_new_privs"] = libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    try:
        rep.update(landlock.apply_landlock(task["read_paths"], [work], ["/dev/null"],
                                           ["/dev/urandom"]))
    except Exception as e:  # pragma: no cover - best effort
        rep.update(landlock=False, landlock_error=repr(e))
    rep["setuid"] = False
    if root and uid is not None:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            rep["setuid"] = os.getuid() == uid
            rep["uid"] = uid
        except OSError as e:
            rep["setuid_error"] = _str(e)
    namespaces.die_with_parent(template_ppid)
    rep["dies_with_template"] = True
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    rep["rlimits"] = rlimits.apply(lim)
    rep.update(seccomp.apply(SECCOMP_PROGRAM))
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        # Reconfigure the inherited stream rather than replace it: replacing changes the
        # sys namespace, which would then have to be copied (page by page) in every child.
        stream = getattr(sys, name)
        try:
            ok = (stream.fileno() == fd and stream.encoding.lower().replace("-", "") == "utf8")
            if ok:
                stream.reconfigure(errors="backslashreplace", line_buffering=True)
        except Exception:
            ok = False
        if not ok:
            setattr(sys, name, open(fd, "w", encoding="utf-8", errors="backslashreplace",
                                    buffering=1, closefd=False))
    rep["output_redirected"] = True
    _STREAMS[:] = [sys.stdout, sys.stderr]
    return rep, work


# ----------------------------------------------------------------------------- cells
def _strip_magics(src: str) -> str:
    out = []
    for line in src.splitlines():
        s = line.lstrip()
        if s.startswith("%") or s.startswith("!"):
            line = line[: _len(line) - _len(s)] + "# " + s
        out.append(line)
    return "\n".join(out) + "\n"


def _cell_error(i: int, e: BaseException) -> dict:
    try:
        tb = "".join(traceback.format_exception(_type(e), e, e.__traceback__.tb_next))
    except BaseException:
        tb = "<traceback unavailable>"
    return {"index": i, "ename": safe_str(_type(e).__name__, 200), "evalue": safe_str(e, 500),
            "traceback_tail": tb[-2000:]}


_GUARDED = ("builtins", "numpy", "json", "json.encoder", "struct", "os", "sys", "traceback",
            "linecache")
_TEMPLATE_SNAPSHOT: dict = {}


def _dict_version(d: dict) -> int | None:
    """The PEP 509 version tag of a dict: CPython bumps it on every change of that dict.

    Read straight from the object (CPython 3.11/3.12 layout: after the object header and
    ``ma_used``), without creating references: touching the reference counts of every
    function in numpy's namespace would copy hundreds of the template's memory pages into
    each child, which was a third of a child's page faults. None elsewhere (then the
    modules are copied and restored unconditionally).
    """
    if not _HAS_DICT_VERSION:
        return None
    return _c_uint64_at(_id(d) + 24).value


def snapshot_template_modules() -> None:
    """In the template, once: copies of the guarded modules' namespaces, shared with every
    child by fork."""
    _TEMPLATE_SNAPSHOT.clear()
    for name in _GUARDED:
        m = sys.modules.get(name)
        if m is not None:
            _TEMPLATE_SNAPSHOT[name] = (m, dict(m.__dict__), _dict_version(m.__dict__))


def _snapshot_modules():
    """The guarded namespaces as they are now: the template's copy where a namespace is
    unchanged since the template took it (the usual case), a fresh copy otherwise."""
    mods = {}
    for name in _GUARDED:
        m = sys.modules.get(name)
        if m is None:
            continue
        version = _dict_version(m.__dict__)
        base = _TEMPLATE_SNAPSHOT.get(name)
        if version is not None and base is not None and base[0] is m and base[2] == version:
            mods[name] = base
        else:
            mods[name] = (m, dict(m.__dict__), version)
    return mods


# what a restore took out of the guarded modules: kept alive until the child exits, so
# that no finalizer (``__del__``, a weakref callback) of the student's runs on the way
_GRAVE: list = []


def _restore_modules(snap) -> None:
    """Undo what student code did to the guarded modules' namespaces, running none of its
    code: the old contents are moved to ``_GRAVE`` (a reference held, nothing freed),
    then the namespace is cleared -- no key is hashed or compared -- and refilled from the
    snapshot. Only our own names are looked up, all bound before the cells ran."""
    for _name, (m, d, version) in snap.items():
        try:
            md = _module_dict(m)
            if version is None or _dict_version(md) != version:
                _GRAVE.append(_list(md.items()))
                md.clear()
                md.update(d)
        except BaseException:
            pass


class CellTimeout(BaseException):
    """Raised into a cell that runs past the per-cell time limit (like nbgrader's cell
    timeout): the cell fails, the next cells still run."""


def _cell_timeout(signum, frame):
    raise CellTimeout("the cell ran past its time limit (an infinite loop?)")


class ImportClock:
    """Keeps first-time imports of libraries off a cell's CPU clock.

    The per-cell CPU limit is short so that an infinite loop costs little, but importing
    matplotlib or scipy alone takes about a second of CPU. While a module that is not
    loaded yet is being imported, the cell's timer is paused and the import runs on its
    own budget (``import_cpu_s`` per notebook) instead; when that budget is spent, the
    import times out like a cell. Wall-clock and whole-notebook limits still apply.
    """

    def __init__(self, budget: float, real_import) -> None:
        self.budget = budget
        self.real_import = real_import
        self.depth = 0

    def __call__(self, name, globals=None, locals=None, fromlist=(), level=0):
        if self.depth or level or name in sys.modules or self.budget <= 0:
            return self.real_import(name, globals, locals, fromlist, level)
        paused = signal.getitimer(signal.ITIMER_PROF)
        signal.setitimer(signal.ITIMER_PROF, self.budget, CELL_REFIRE_CPU_S)
        t0 = time.process_time()
        self.depth += 1
        try:
            return self.real_import(name, globals, locals, fromlist, level)
        finally:
            self.depth -= 1
            self.budget -= time.process_time() - t0
            signal.setitimer(signal.ITIMER_PROF, *paused)



_import_clock: list = []     # the template's ImportClock, as found before the first cell


def _run_cells(task: dict) -> tuple[dict, list, bool]:
    """Execute the cells in one namespace; (namespace, cell errors, memory error seen)."""
    g = {"__name__": "__main__", "__builtins__": builtins}
    cell_errors = []
    memory_error = False
    sys.setrecursionlimit(3000)
    cell_s = float(task["limits"].get("cell_s", 0) or 0)
    cell_cpu = float(task["limits"].get("cell_cpu_s", 0) or 0)
    if cell_s > 0:
        signal.signal(signal.SIGALRM, _cell_timeout)
    if cell_cpu > 0:
        signal.signal(signal.SIGPROF, _cell_timeout)
        clock = builtins.__import__
        if _type(clock) is ImportClock:      # installed in the template, idle until now
            clock.budget = float(task["limits"].get("import_cpu_s", 0) or 0)
            _import_clock.append(clock)
    for i, src in enumerate(task["cells"]):
        fn = f"<cell {i}>"
        try:
            code_src = _strip_magics(src)
            linecache.cache[fn] = (_len(code_src), None, code_src.splitlines(True), fn)
            code = compile(code_src, fn, "exec")
            if cell_s > 0:
                signal.setitimer(signal.ITIMER_REAL, cell_s, CELL_REFIRE_WALL_S)
            if cell_cpu > 0:
                signal.setitimer(signal.ITIMER_PROF, cell_cpu, CELL_REFIRE_CPU_S)
            try:
                exec(code, g)
            finally:
                if cell_s > 0:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if cell_cpu > 0:
                    signal.setitimer(signal.ITIMER_PROF, 0)
        except BaseException as e:  # SystemExit / KeyboardInterrupt included: record, continue
            if _isinstance(e, MemoryError):
                memory_error = True
            try:
                cell_errors.append(_cell_error(i, e))
            except BaseException:
                cell_errors.append({"index": i, "ename": "BaseException", "evalue": "",
                                    "traceback_tail": ""})
            e = None
    return g, cell_errors, memory_error


# ----------------------------------------------------------------------------- answers
class ConversionTimeout(BaseException):
    """Raised into an answer's conversion that runs past its CPU budget (student code
    reached through the value: a looping ``__array__``, a hook, a finalizer)."""


def _quiet_student_hooks() -> None:
    """No student code may run during conversion on its own account: trace and profile
    hooks, gc callbacks and collections, and pending timers are switched off (and their
    signals ignored until the conversion's own clock starts)."""
    for off in (lambda: _settrace(None), lambda: _setprofile(None),
                lambda: _th_settrace(None), lambda: _th_setprofile(None),
                lambda: _gc_callbacks.clear(), gc.disable,
                lambda: _signal(_SIGALRM, _SIG_IGN), lambda: _signal(_SIGPROF, _SIG_IGN),
                lambda: _signal(_SIGVTALRM, _SIG_IGN),
                lambda: _setitimer(_ITIMER_REAL, 0), lambda: _setitimer(_ITIMER_PROF, 0),
                lambda: _setitimer(_ITIMER_VIRTUAL, 0),
                lambda: _pthread_sigmask(_SIG_SETMASK, ()),
                lambda: sys.setrecursionlimit(3000)):
        try:
            off()
        except BaseException:
            pass


_never = _thread.allocate_lock()
_never.acquire()
_frozen: list = []


class _Frozen(BaseException):
    """Raised into every other thread after the cells (PyThreadState_SetAsyncExc). The
    interpreter makes the exception object in that thread before any ``except`` of the
    student's can see it, so the thread stops here, for good, holding nothing: waiting
    on a lock releases the GIL."""

    def __new__(cls, *args):
        _frozen.append(_get_ident())
        _never.acquire()
        return BaseException.__new__(cls)         # never reached


def _freeze_other_threads(rep: dict) -> None:
    """Stop every thread the notebook left running before its answers are read: each
    one freezes the next time it runs Python code. A thread that is in C code past
    ``FREEZE_WAIT_S`` freezes when it comes back; until then it can run, but not touch the
    conversion's clocks (:class:`.seccomp.ConversionFilter`)."""
    me = _get_ident()
    others = [t for t in _current_frames() if t != me]
    for t in others:
        _set_async_exc(t, _Frozen)
    deadline = _monotonic() + FREEZE_WAIT_S
    while others and _monotonic() < deadline:
        others = [t for t in others if t not in _frozen]
        if others:
            _sleep(0.002)
    rep["threads_frozen"] = _len(_frozen)
    rep["threads_not_frozen"] = _len(others)


class _Collector:
    """Converts the answers one by one, each on its own clock.

    The clock is a periodic SIGALRM tick set before the conversion filter makes every
    timer and its handler unchangeable; each tick compares the main thread's own CPU time
    (a busy student thread does not count) and the wall time spent on the current answer
    with ``cpu_s`` and ``CONVERT_WALL_FACTOR * cpu_s``. A conversion past either gets
    :class:`ConversionTimeout` raised into it: that answer becomes a format error and the
    next one is converted. If the code swallows the exception and keeps running, the ticks
    keep coming; after ``ESCALATE_AFTER`` of them the signal handler itself finishes the
    job (the other answers, the result) and exits, so one answer can never cost the others.
    """

    def __init__(self, task: dict, g: dict, memory_error: bool, cell_errors: list, rep: dict):
        self.names = list(task["answer_names"])
        self.g = g
        self.cap = int(task["limits"]["answer_bytes"])
        self.cpu_s = float(task["limits"].get("convert_cpu_s", 2.0) or 2.0)
        self.memory_error = memory_error
        self.cell_errors = cell_errors
        self.rep = rep
        self.answers: list = []
        self.buffers: list = []
        self.total = 0
        self.armed = False
        self.fired = 0
        self.wall_s = max(1.0, CONVERT_WALL_FACTOR * self.cpu_s)
        self.t_cpu = self.t_wall = 0.0

    def _out_of_cpu(self, signum, frame):
        """SIGXCPU: the notebook's CPU limit is near (a student thread may have kept the
        answer timer from firing). Send what is converted; the rest is not collected."""
        self.armed = False            # (the timers cannot be changed any more: the filter)
        for i in range(_len(self.answers), _len(self.names)):
            self.answers.append(self._failed(i, "not converted: the notebook's CPU time ran out"))
        self.send()
        _os_exit(0)

    def _alarm(self, signum, frame):
        if not self.armed:
            return
        if (_thread_time() - self.t_cpu < self.cpu_s
                and _monotonic() - self.t_wall < self.wall_s):
            return
        self.fired += 1
        if self.fired > ESCALATE_AFTER:
            self.armed = False
            i = _len(self.answers)
            self.answers.append(self._failed(i, "conversion_timeout"))
            self.collect(i + 1)
            self.send()
            _os_exit(0)
        raise ConversionTimeout

    def _failed(self, i: int, why: str) -> dict:
        name = self.names[i]
        present = name in self.g
        src = ""
        if present:
            try:
                src = type_name(self.g[name])
            except BaseException:
                src = "<unknown>"
        msg = (f"converting the value took more than {self.cpu_s:g} s of CPU time "
               f"(or {self.wall_s:g} s in all)" if why == "conversion_timeout" else why)
        return {"name": name, "present": present, "source_type": src, "dtype": None,
                "shape": None, "error": msg}

    def _one(self, name: str) -> tuple[dict, bytes | None]:
        ent = {"name": name, "present": False, "source_type": "", "dtype": None, "shape": None,
               "error": None}
        buf = None
        try:
            if name not in self.g:
                ent["error"] = "not defined"
                return ent, None
            v = self.g[name]
            ent["present"] = True
            ent["source_type"] = type_name(v)
            a = convert(v)
            if _type(a) is Rows:
                ent["rows"] = a.lengths
                a = a.flat
            nb = a.nbytes
            if self.total + nb > self.cap:
                raise NotConvertible(f"answer too large ({nb} bytes)")
            ent["dtype"] = a.dtype.str
            ent["shape"] = [_int(s) for s in a.shape]
            buf = a.tobytes()
        except NotConvertible as e:
            ent["error"] = safe_str(e.args[0], 500)
        except MemoryError:
            self.memory_error = True
            ent["error"] = "out of memory while extracting the answer"
        except ConversionTimeout:
            raise
        except BaseException as e:
            ent["error"] = f"conversion failed: {safe_str(_type(e).__name__, 100)}: {safe_str(e, 300)}"
        return ent, buf

    def collect(self, start: int = 0) -> None:
        for i in range(start, _len(self.names)):
            ent, buf = None, None
            self.fired = 0
            try:
                self.t_cpu, self.t_wall = _thread_time(), _monotonic()
                self.armed = True
                ent, buf = self._one(self.names[i])
                self.armed = False
            except ConversionTimeout:
                self.armed = False
                ent, buf = self._failed(i, "conversion_timeout"), None
            if buf is not None:
                self.total += _len(buf)
                self.buffers.append(buf)
            self.answers.append(ent)

    def send(self) -> None:
        header = _dumps({"answers": self.answers, "cell_errors": self.cell_errors,
                         "memory_error": self.memory_error, "isolation": self.rep}).encode()
        _write_all(protocol.result_prefix(header))
        for b in self.buffers:
            _write_all(b)
        _os_close(_RESULT_FD)


def _run(task: dict, rep: dict) -> None:
    """The cells, then the answers, before anything else of the student's can run.

    After the cells, in this order: hooks and timers off; every other thread frozen; the
    guarded modules restored without running student code; the conversion clock started
    and, with the conversion filter, made unchangeable for every thread; the answers
    converted and sent. Then the child exits at once (``os._exit``): no module teardown,
    finalizer or atexit hook ever runs, so none can cost an answer.
    """
    snap = _snapshot_modules()
    g, cell_errors, memory_error = _run_cells(task)
    _quiet_student_hooks()
    for clock in _import_clock:
        clock.budget = 0.0                  # imports from now on leave the timers alone
    _freeze_other_threads(rep)
    _restore_modules(snap)
    col = _Collector(task, g, memory_error, cell_errors, rep)
    _signal(_SIGPROF, _SIG_IGN)
    _signal(_SIGVTALRM, _SIG_IGN)
    _signal(_SIGALRM, col._alarm)
    _signal(_SIGXCPU, col._out_of_cpu)
    _setitimer(_ITIMER_PROF, 0)
    _setitimer(_ITIMER_VIRTUAL, 0)
    _setitimer(_ITIMER_REAL, REFIRE_S, REFIRE_S)
    rep["conversion_filter"] = (CONVERSION_FILTER is not None
                                and CONVERSION_FILTER.load_for_all_threads())
    col.collect()
    col.send()
    for stream in _STREAMS:                 # what the cells printed, after the answers
        try:
            stream.flush()
        except BaseException:
            pass


def _write_all(b: bytes) -> None:
    mv = memoryview(b)
    while mv:
        n = _os_write(_RESULT_FD, mv)
        mv = mv[n:]


def child_main(tmp: str, template_ppid: int) -> None:
    """Runs in the forked child; never returns. ``template_ppid``: what ``getppid()``
    returns while the template lives (0 inside its PID namespace)."""
    code = protocol.EXIT_SETUP_FAILED
    try:
        fd = os.open("task.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=protocol.DIR_FD)
        with open(fd, "rb") as f:
            task = json.loads(f.read())
        os.unlink("task.json", dir_fd=protocol.DIR_FD)
        rep, _work = _isolate(task, tmp, template_ppid)
        _run(task, rep)
        code = protocol.EXIT_OK
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        try:
            # Kill every leftover process of our sandbox uid (threads' helpers, anything
            # that got past the filter). Linux never delivers kill(-1) to the caller itself.
            if _getuid() != 0:
                _os_kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        _os_exit(code)
