"""The channels a notebook must not reach (issue 12): host unix sockets, SysV/POSIX IPC,
other processes, the kernel's surfaces, unlimited disk; conversion on its own clock; and
answers that survive what a notebook leaves running after its cells (issue 19).

Each test states the breach it covers; the README's threat table names them.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import struct
import tempfile
import textwrap

import numpy as np
import pytest
from session_build import host_sysv_keys

from convpset.autograder.sandbox import Limits, run_cells, run_many

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and uids need root")
X86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers are x86_64")
LIM = Limits(wall_s=60, cell_s=20, cpu_s=20)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cells, names, limits: Limits = LIM):
    return run_cells([textwrap.dedent(c) for c in cells], names, limits)


def _listeners(folder: str):
    """A world-writable stream and datagram unix socket in ``folder``."""
    paths, socks = [], []
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        p = os.path.join(folder, f"host-{kind}.sock")
        s = socket.socket(socket.AF_UNIX, kind)
        s.bind(p)
        os.chmod(p, 0o777)
        if kind == socket.SOCK_STREAM:
            s.listen(4)
        s.setblocking(False)
        paths.append(p)
        socks.append(s)
    return paths, socks


def _received(socks) -> bool:
    for s in socks:
        try:
            if s.type == socket.SOCK_STREAM:
                s.accept()
            else:
                s.recv(100)
            return True
        except BlockingIOError:
            pass
    return False


@pytest.mark.parametrize("where", ["tmp", "repo"])
def test_host_pathname_unix_sockets_unreachable(where):
    """Breach: a world-writable socket in /tmp received data over stream and datagram
    sockets. Now /tmp is the sandbox's own empty tmpfs and socket() is denied (seccomp),
    which also covers sockets anywhere else on the host (``repo``)."""
    folder = tempfile.mkdtemp(dir=None if where == "tmp" else REPO, prefix="sockdir-")
    os.chmod(folder, 0o777)
    paths, socks = _listeners(folder)
    try:
        # sanity: the listeners do work for an outside client
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        probe.sendto(b"probe", paths[1])
        assert socks[1].recv(10) == b"probe"
        code = f"""
        import socket
        sent = 0
        for path, kind in zip({paths!r}, (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
            try:
                s = socket.socket(socket.AF_UNIX, kind)
                if kind == socket.SOCK_STREAM:
                    s.connect(path)
                    s.sendall(b"pwned")
                else:
                    s.sendto(b"pwned", path)
                sent += 1
            except OSError as e:
                print("blocked", type(e).__name__)
        """
        r = run([code], ["sent"])
        assert r.status == "ok", r
        assert r.answers["sent"].value == 0
        assert not _received(socks)
    finally:
        for s in socks:
            s.close()
        for p in paths:
            os.unlink(p)
        os.rmdir(folder)


IPC = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT = 0o1000
KEY = 0x5EC12
shm = libc.shmget(KEY, 64 * 1024 * 1024, IPC_CREAT | 0o666)
shm_errno = ctypes.get_errno()
msg = libc.msgget(KEY, IPC_CREAT | 0o666)
sem = libc.semget(KEY, 1, IPC_CREAT | 0o666)
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
mq = libc.mq_open(b"/pset-leak", os.O_CREAT | os.O_RDWR, 0o666, None)
results = [shm, msg, sem, mq]
"""


def test_sysv_ipc_and_message_queues_denied_and_not_shared():
    """Breach: one notebook made a 64 MB SysV segment and a message queue that a later
    student read and that outlived ``grade``. Now every SysV and mq_* call fails (seccomp)
    and each child has its own IPC namespace, so nothing reaches the host's tables."""
    before = host_sysv_keys()
    reader = "import ctypes\nlibc = ctypes.CDLL(None)\nseen = [libc.shmget(0x5EC12, 0, 0), libc.msgget(0x5EC12, 0)]\n"
    out = list(run_many([([IPC], ["results"]), ([reader], ["seen"])], LIM, jobs=1))
    assert out[0].status == "ok", out[0]
    assert out[0].answers["results"].value.tolist() == [-1, -1, -1, -1]
    assert out[1].answers["seen"].value.tolist() == [-1, -1]
    assert 0x5EC12 not in host_sysv_keys() - before
    if os.geteuid() == 0:
        assert out[0].isolation.get("ipcns") is True
        assert out[0].isolation.get("seccomp") is True


def test_other_processes_are_invisible():
    """Breach: other users' processes and their command lines were visible in /proc.
    Now /proc is a procfs with hidepid=invisible: a sandbox sees only its own uid."""
    code = """
    import os
    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
    mine = [os.getpid()]
    try:
        open('/proc/1/cmdline').read()
        init_readable = 1
    except OSError:
        init_readable = 0
    """
    r = run([code], ["pids", "mine", "init_readable"])
    assert r.status == "ok", r
    if os.geteuid() == 0:
        assert r.answers["pids"].value.tolist() == r.answers["mine"].value.tolist()
        assert r.answers["init_readable"].value == 0
        assert r.isolation.get("proc_hidepid") is True


# x86_64 numbers: the calls are made raw so that no library wrapper can hide a success
SYSCALLS = {"ptrace": 101, "process_vm_readv": 310, "keyctl": 250, "add_key": 248,
            "bpf": 321, "perf_event_open": 298, "unshare": 272, "setns": 308, "mount": 165,
            "umount2": 166, "pivot_root": 155, "userfaultfd": 323, "io_uring_setup": 425,
            "fork": 57, "vfork": 58, "execve": 59, "shmget": 29, "msgget": 68, "semget": 64,
            "socket": 41}


@X86_64
def test_syscalls_a_notebook_never_needs_are_denied():
    """seccomp, the second wall: every listed call fails with EPERM, and sockets of every
    family (netlink, packet, vsock, raw, inet) cannot even be created."""
    code = f"""
    import ctypes, socket
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    errnos = []
    for nr in {list(SYSCALLS.values())!r}:
        ctypes.set_errno(0)
        rc = libc.syscall(ctypes.c_long(nr), 0, 0, 0, 0, 0)
        errnos.append(ctypes.get_errno() if rc == -1 else 0)
    fams = []
    for fam, kind in ((16, socket.SOCK_RAW), (17, socket.SOCK_RAW), (40, socket.SOCK_STREAM),
                      (socket.AF_INET, socket.SOCK_RAW), (socket.AF_INET, socket.SOCK_DGRAM),
                      (socket.AF_UNIX, socket.SOCK_STREAM)):
        try:
            socket.socket(fam, kind).close()
            fams.append(0)
        except OSError as e:
            fams.append(e.errno)
    threads_ok = 0
    import threading
    t = threading.Thread(target=lambda: None)
    t.start(); t.join()
    threads_ok = 1
    """
    r = run([code], ["errnos", "fams", "threads_ok"])
    assert r.status == "ok", r
    assert r.isolation.get("seccomp"), r.isolation.get("seccomp_error")   # a dependency
    assert dict(zip(SYSCALLS, r.answers["errnos"].value.tolist(), strict=True)) == {
        k: 1 for k in SYSCALLS}
    assert r.answers["fams"].value.tolist() == [1] * 6
    assert r.answers["threads_ok"].value == 1          # clone with CLONE_THREAD still works


@ROOT_ONLY
def test_total_disk_use_is_capped():
    """Breach class: each file was capped (RLIMIT_FSIZE) but not their sum. The work dir is
    now the child's own tmpfs of ``disk_bytes``: writing past it fails (ENOSPC) in that
    cell, later cells still count, and nothing reached the host's disk."""
    code = """
    import errno
    n = 0
    err = 0
    try:
        for i in range(100):
            with open(f'f{i}', 'wb') as fh:
                fh.write(b'x' * 4_000_000)
            n += 1
    except OSError as e:
        err = e.errno
    """
    r = run([code, "after = 1\n"], ["n", "err", "after"], Limits(wall_s=60, cell_s=20,
                                                                 disk_bytes=20_000_000))
    assert r.status == "ok", r
    assert r.answers["n"].value < 6 and r.answers["err"].value == 28      # ENOSPC
    assert r.answers["after"].value == 1
    assert r.isolation.get("disk_cap_bytes") == 20_000_000


# ----------------------------------------------------------------------------- conversion
TORCH_LOOP = """
import torch
class T(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "detach":
            while True:
                {body}
        return super().__torch_function__(func, types, args, kwargs or {{}})
a = torch.ones(2).as_subclass(T)
b = 5
c = [1.5, 2]
"""


@pytest.mark.slow
@pytest.mark.parametrize("swallow", [False, True])
def test_runaway_conversion_fails_only_its_answer(swallow):
    """Breach: an answer whose conversion ran student code in a loop cost the whole
    notebook (wall limit, score 0). Now each answer converts on its own CPU clock; one
    that even swallows the timeout is given up by the signal handler itself."""
    body = ("try:\n                    while True:\n                        pass\n"
            "                except BaseException:\n                    pass") if swallow else "pass"
    r = run([TORCH_LOOP.format(body=body)], ["b", "a", "c"],
            Limits(wall_s=120, cell_s=60, cpu_s=60, convert_cpu_s=0.5))
    assert r.status == "ok", r
    assert r.answers["a"].value is None and "CPU" in r.answers["a"].error
    assert r.answers["b"].value == 5
    assert r.answers["c"].value.tolist() == [1.5, 2.0]


def test_profile_and_trace_hooks_are_cleared_before_conversion():
    """Breach: a sys.setprofile hook spinning inside the converter. Hooks are cleared
    before conversion, so all answers count."""
    code = """
    import sys, threading
    def hook(frame, event, arg):
        if 'convert' in frame.f_code.co_filename or 'child' in frame.f_code.co_filename:
            while True:
                pass
    x = [1, 2, 3]
    sys.setprofile(hook)
    sys.settrace(hook)
    threading.setprofile(hook)
    """
    r = run([code], ["x"], Limits(wall_s=60, cell_s=20, cpu_s=20, convert_cpu_s=5))
    assert r.status == "ok", r
    assert r.answers["x"].value.tolist() == [1, 2, 3]


def test_numpy_scalar_subclass_is_not_trusted():
    """A subclass of a numpy scalar that forges ``__module__`` is a format error; its
    ``__array__`` is never called."""
    code = """
    import numpy as np
    class F(np.float64):
        __module__ = 'numpy'
        def __array__(self, *a, **k):
            while True:
                pass
    f = F(1.0)
    g = [F(1.0), 2.0]
    """
    r = run([code], ["f", "g"], Limits(wall_s=60, cell_s=20, cpu_s=20, convert_cpu_s=30))
    assert r.status == "ok", r
    assert r.answers["f"].value is None and "numpy scalar subclass" in r.answers["f"].error
    assert r.answers["g"].value is None


# ----------------------------------------------------------------------------- hostile text
def test_lone_surrogates_from_student_code_come_back_as_valid_utf8():
    """Breach: an exception message or a class ``__qualname__`` holding a lone surrogate
    crashed the journal write. Every string from the child is valid UTF-8 now."""
    code = """
    class K:
        pass
    K.__qualname__ = 'bad\\ud800name'
    k = K()
    ok = 1
    raise ValueError('boom \\udcff end')
    """
    r = run([code], ["k", "ok"])
    assert r.status == "ok", r
    texts = [r.answers["k"].source_type, r.answers["k"].error or "", r.cell_errors[0].evalue,
             r.cell_errors[0].traceback_tail, r.stdout_tail]
    for t in texts:
        t.encode("utf-8")          # raises on a lone surrogate
    assert "boom" in r.cell_errors[0].evalue and r.answers["ok"].value == 1


def test_forged_deeply_nested_result_is_bad_result():
    """Breach: a forged result frame with a field nested 50,000 deep, then ``os._exit(0)``,
    crashed the parser (RecursionError). Now it is this notebook's ``bad_result``."""
    deep = "[" * 50_000 + "]" * 50_000
    header = '{"answers": [{"name": "a", "present": true, "source_type": "x", "error": ' + deep + "}]}"
    hb = header.encode()
    frame = b"AGSB" + struct.pack("<Q", len(hb)) + hb
    code = f"import os\nos.write(3, {frame!r})\nos._exit(0)\n"
    r = run_cells([code], ["a"], LIM)
    assert r.status == "bad_result" and r.detail == "malformed", r


def test_task_file_round_trips_surrogates_in_cells():
    """Cells may carry lone surrogates (a notebook's JSON escapes them); they reach the
    child unchanged and the result is still clean."""
    r = run_cells(["s = '\\ud800'\nn = len(s)\n"], ["n"], LIM)
    assert r.status == "ok" and r.answers["n"].value == 1
    json.dumps(r.isolation)


@ROOT_ONLY
def test_isolation_record_lists_the_new_walls():
    """The child records each wall it raised; as root all of them are up."""
    r = run_cells(["x = 1\n"], ["x"], LIM)
    for k in ("ipcns", "mountns", "proc_hidepid", "seccomp", "dies_with_template", "landlock",
              "pidns", "pidns_proc"):
        assert r.isolation.get(k) is True, (k, r.isolation)
    assert set(r.isolation["empty_scratch_dirs"]) >= {"/tmp", "/dev/shm"}


# ----------------------------------------------------------------------------- after the cells
# Answers survive what a notebook leaves running after its cells (issue 19, point 7).
# Before: the conversion ran on a process-wide CPU timer that any thread could cancel,
# after a module restore that freed what the student had stashed in numpy's namespace
# (running its ``__del__`` with no clock at all), with the student's threads still
# running: one misbehaving thread or finalizer cost the whole notebook (wall limit, 0).
# Now (child.py ``_run``): the other threads are frozen, the modules restored without
# running student code, each answer converts on a tick no thread can cancel (a seccomp
# filter over every thread), and the child exits running nothing of the student's.
# Each test says what it did on the base commit.
# generous: the outcome is asserted, never the speed (tests/loaded.sh)
AFTER_LIM = Limits(wall_s=60, cell_s=40, cpu_s=60, convert_cpu_s=0.5)

PLAIN_ANSWERS = {f"p{i:02d}": [float(i), i + 0.5] for i in range(20)}
PLAIN_CELL = "\n".join(f"{k} = {v!r}" for k, v in PLAIN_ANSWERS.items()) + "\n"


def _run_after(cells, names, limits: Limits = AFTER_LIM):
    return run_cells([textwrap.dedent(c) for c in cells], names, limits)


def _assert_plain_answers(r) -> None:
    for k, v in PLAIN_ANSWERS.items():
        assert r.answers[k].error is None, (k, r.answers[k])
        assert r.answers[k].value.tolist() == v, k


# a torch tensor subclass whose conversion loops (student code reached through the value)
LOOPING_ANSWER = """
import torch
class T(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "detach":
            while True:
                pass
        return super().__torch_function__(func, types, args, kwargs or {})
looping = torch.ones(2).as_subclass(T)
"""

TIMER_CANCELLER = """
import ctypes, signal, threading
_libc = ctypes.CDLL(None)
_zero = (ctypes.c_long * 4)()
def cancel_every_timer():
    while True:
        for which in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            try:
                signal.setitimer(which, 0)
            except OSError:
                pass
            _libc.setitimer(which, _zero, None)
threading.Thread(target=cancel_every_timer, daemon=True).start()
"""


@pytest.mark.slow
def test_thread_cancelling_the_conversion_clock_costs_only_the_looping_answer():
    """Base: the thread kept cancelling ITIMER_PROF, the looping conversion never timed
    out, the notebook hit its wall limit and all 21 answers were lost (status timeout).
    Now the 20 plain answers count and only the looping one is a format error."""
    names = [*PLAIN_ANSWERS, "looping"]
    r = _run_after([PLAIN_CELL, LOOPING_ANSWER, TIMER_CANCELLER], names)
    assert r.status == "ok", r
    _assert_plain_answers(r)
    assert r.answers["looping"].value is None
    assert "CPU" in r.answers["looping"].error


@pytest.mark.slow
def test_finalizer_stashed_in_numpy_never_runs():
    """Base: restoring numpy's namespace after the cells dropped the stashed objects and
    ran their ``__del__``, which blocked every signal and spun: wall limit, score 0. Now
    the restore keeps them alive and the child exits without collecting them."""
    cell = """
    import numpy as np, signal, weakref
    class Spin:
        def __del__(self):
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            while True:
                pass
    np._stash = Spin()              # a new name: deleted by the restore
    np.mean = Spin()                # an existing one: overwritten by the restore
    np.linalg.stash = Spin()        # a submodule (not restored, never freed either)
    holder = Spin()
    weakref.finalize(holder, lambda: [None for _ in iter(int, 1)])
    """
    r = _run_after([PLAIN_CELL, cell], list(PLAIN_ANSWERS), Limits(wall_s=30, cell_s=20, cpu_s=30))
    assert r.status == "ok", r
    _assert_plain_answers(r)


def test_atexit_hooks_never_run():
    """The child ends with ``os._exit`` after sending the answers: an exit hook that spins
    (atexit, threading's own exit hooks, weakref.finalize at exit) changes nothing. This
    held on the base commit too; it guards the order now written down in ``_run``."""
    cell = """
    import atexit, threading, weakref, signal
    def spin():
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            pass
    atexit.register(spin)
    threading._register_atexit(spin)
    class Holder: pass
    h = Holder()
    weakref.finalize(h, spin).atexit = True
    """
    r = _run_after([PLAIN_CELL, cell], list(PLAIN_ANSWERS), Limits(wall_s=30, cell_s=20, cpu_s=30))
    assert r.status == "ok", r
    _assert_plain_answers(r)


BIG = 300_000
SABOTEUR = f"""
import sys, threading
big = list(range({BIG}))
other = [1.0, 2.0]
def saboteur():
    main = threading.main_thread().ident
    g = globals()
    while True:
        f = sys._current_frames().get(main)
        names = set()
        while f is not None:
            names.add(f.f_code.co_name)
            f = f.f_back
        if names & {{"_one", "collect", "convert", "_walk"}}:   # the answers are being read
            big.append("x")
            g["other"] = "garbage"
threading.Thread(target=saboteur, daemon=True).start()
"""


@pytest.mark.slow
def test_thread_mutating_answers_is_frozen_before_conversion():
    """Base: a thread that waited for the conversion to start appended a string to one
    answer and replaced another while they were read: both became format errors. Now
    every other thread is frozen before the first answer is read."""
    r = _run_after([PLAIN_CELL, SABOTEUR], [*PLAIN_ANSWERS, "big", "other"])
    assert r.status == "ok", r
    _assert_plain_answers(r)
    assert r.answers["big"].error is None, r.answers["big"]
    np.testing.assert_array_equal(r.answers["big"].value, np.arange(BIG))
    assert r.answers["other"].value.tolist() == [1.0, 2.0]
    assert r.isolation.get("threads_frozen", 0) >= 1


@ROOT_ONLY
def test_no_thread_can_touch_the_conversion_clock():
    """The filter laid over all threads before conversion: setitimer, signal handlers of
    the clock's signals, blocking signals and new threads are refused. Checked from code
    that runs during conversion (the ``__torch_function__`` of an answer), which is where
    a notebook's code can still run then."""
    cell = """
    import ctypes, errno, signal, threading, torch
    _libc = ctypes.CDLL(None, use_errno=True)
    seen = {}
    class T(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") == "detach" and not seen:
                zero = (ctypes.c_long * 4)()
                seen["setitimer"] = _libc.setitimer(0, zero, None), ctypes.get_errno()
                try:
                    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
                    seen["sigmask"] = 0
                except OSError as e:
                    seen["sigmask"] = e.errno
                try:
                    threading.Thread(target=lambda: None).start()
                    seen["thread"] = 0
                except RuntimeError:
                    seen["thread"] = -1
                raise ValueError(repr(seen))
            return super().__torch_function__(func, types, args, kwargs or {})
    probe = torch.ones(1).as_subclass(T)
    """
    r = _run_after([cell], ["probe"])
    assert r.status == "ok", r
    assert r.isolation.get("conversion_filter") is True
    err = r.answers["probe"].error
    assert "'setitimer': (-1, 1)" in err, err          # EPERM
    assert "'sigmask': 1" in err, err
    assert "'thread': -1" in err, err


def _grade_course(course, out) -> dict[str, dict[str, float]]:
    """Per-part scores of every student ``grade`` graded (the CLI, as an instructor runs it)."""
    import subprocess
    import sys

    code = "import sys; from convpset.cli import grade_main; sys.argv[0] = 'grade'; grade_main()"
    subprocess.run([sys.executable, "-c", code, "submitted", "--out", str(out), "--jobs", "2",
                    "--no-nbgrader"], cwd=course, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    scores = {}
    for line in (out / "journal.jsonl").read_text().splitlines():
        r = json.loads(line)
        scores[r["student_id"]] = {p["part"]: round(p["score"], 4)
                                   for prob in r["problems"] for p in prob["parts"]}
    return scores


@pytest.mark.slow
def test_whole_notebooks_keep_their_marks_after_the_cells(tmp_path):
    """The issue's two notebooks, graded by ``grade``. Base: a correct notebook with a
    ``__del__`` stashed in numpy scored 0; one with a timer-cancelling thread and one
    answer whose conversion loops lost every answer. Now the first keeps all its marks
    and the second loses only the looping answer's part."""
    import shutil
    from pathlib import Path

    example = Path(REPO) / "examples" / "course"
    course = tmp_path / "course"
    course.mkdir()
    for name in ("pset.toml", "roster.csv"):
        shutil.copy2(example / name, course / name)
    shutil.copytree(example / "submitted", course / "submitted")
    before = _grade_course(course, tmp_path / "before")
    stash = textwrap.dedent("""
    import numpy as np, signal
    class Spin:
        def __del__(self):
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            while True:
                pass
    np._stash = Spin()
    np.mean = Spin()
    """)
    looping = LOOPING_ANSWER.replace("looping = torch.ones(2)", "y_1 = torch.ones(1, 2, 2)")
    extra = {"s001": stash, "s002": looping + TIMER_CANCELLER}
    for sid, src in extra.items():
        path = course / "submitted" / sid / "conv1" / "conv1.ipynb"
        nb = json.loads(path.read_text())
        nb["cells"].append({"cell_type": "code", "id": "extra", "metadata": {},
                            "execution_count": None, "outputs": [], "source": src})
        path.write_text(json.dumps(nb))
    after = _grade_course(course, tmp_path / "after")
    assert after["s001"] == before["s001"]
    assert sum(before["s001"].values()) > 0
    assert before["s002"]["y_1"] > 0 and after["s002"]["y_1"] == 0   # the loop ran
    assert {p: v for p, v in after["s002"].items() if p != "y_1"} == \
        {p: v for p, v in before["s002"].items() if p != "y_1"}
