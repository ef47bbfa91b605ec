"""No orphans (issue 12, item 4): after ``kill -9`` of ``grade`` in the middle of a batch,
every process it started -- the zygote, the torch template, the worker processes, the
sandboxed children, multiprocessing's resource tracker -- is gone within a few seconds.

Before: the template, both workers and the resource tracker lived on, re-parented to init
(still there 97 s later), and so did a sandbox child.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
SLEEPERS = 16


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:2000]
    except OSError:
        return "?"


def _descendants(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, command line) of every live descendant of ``root``."""
    children: dict[int, list[int]] = {}
    info = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                children.setdefault(st[0], []).append(int(name))
                info[int(name)] = st
    out, todo = {}, [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if info[c][1] != "Z":
                out[c] = (info[c][2], _cmdline(c))
            todo.append(c)
    return out


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == start and st[1] != "Z"


def _uid(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


def _course_with(tmp: Path, prefix: str, ids: list[str]) -> Path:
    """The sample course plus returns ``ids`` whose first answer cell starts with
    ``prefix`` (code that sleeps, or refuses to die)."""
    course = tmp / "course"
    course.mkdir()
    for name in ("pset.toml", "roster.csv"):
        shutil.copy2(EXAMPLE / name, course / name)
    shutil.copytree(EXAMPLE / "submitted", course / "submitted")
    nb = json.loads((EXAMPLE / "submitted" / "s001" / ASSIGNMENT / "conv1.ipynb").read_text())
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code" and cell.get("id", "").startswith("answer_"):
            cell["source"] = prefix + "".join(cell["source"])
            break
    for sid in ids:
        d = course / "submitted" / sid / ASSIGNMENT
        d.mkdir(parents=True)
        (d / "conv1.ipynb").write_text(json.dumps(nb))
    return course


def _course(tmp: Path) -> Path:
    # extra returns that each sleep in a cell: the batch is surely mid-way when killed
    return _course_with(tmp, "import time\ntime.sleep(4)\n", [f"z{i:03d}" for i in range(SLEEPERS)])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_kill_9_of_grade_leaves_no_process_behind(tmp_path):
    course = _course(tmp_path)
    code = "import sys; from convpset.cli import grade_main; sys.argv[0] = 'grade'; grade_main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "submitted", "--out",
                             str(tmp_path / "out"), "--jobs", "2", "--no-nbgrader"],
                            cwd=course, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen: dict[int, tuple[int, str]] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = _descendants(proc.pid)
            seen.update(now)
            sandboxes = [p for p in now if _uid(p) not in (0, os.geteuid())] if os.geteuid() == 0 \
                else [p for p in now if "zygote" not in now[p][1] and "spawn" not in now[p][1]]
            workers = [p for p, (_, cmd) in now.items() if "spawn_main" in cmd]
            zygote = [p for p, (_, cmd) in now.items() if "zygote_main" in cmd]
            if sandboxes and len(workers) >= 2 and zygote:
                break
            assert proc.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail(f"never saw workers, zygote and a sandbox: {seen}")
        before = _descendants(proc.pid)
        kinds = " | ".join(cmd for _, cmd in before.values())
        assert "resource_tracker" in kinds, kinds
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        left = dict(before)
        while left and time.monotonic() < deadline:
            left = {p: v for p, v in left.items() if _alive(p, v[0])}
            time.sleep(0.1)
        assert not left, "still running after kill -9 of grade:\n" + "\n".join(
            f"{p}: {cmd}" for p, (_, cmd) in left.items())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- issue 19.6
# A notebook that tries everything to outlive the batch: clears PR_SET_PDEATHSIG, names
# itself (the marker the test looks for), blocks every signal it can, tries to fork twice
# and to start a new session, then sleeps far longer than any test.
MARK = "cpsorphan19"
UNDYING = f"""
import ctypes, os, signal, time
_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl(1, 0, 0, 0, 0)                 # PR_SET_PDEATHSIG: none
_libc.prctl(15, b"{MARK}", 0, 0, 0)        # PR_SET_NAME: the marker
signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
for _ in range(2):                         # double fork (the sandbox refuses it)
    try:
        if os.fork():
            os._exit(0)
    except OSError:
        pass
try:
    os.setsid()
except OSError:
    pass
time.sleep(3600)
"""


def _undying_course(tmp: Path) -> Path:
    return _course_with(tmp, UNDYING, ["z900"])


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _lingering(grade_pid: int) -> dict[int, str]:
    """Every live process with the notebook's marker, or running as one of the sandbox
    uids of the grading process ``grade_pid`` (see parent._UID_BASE)."""
    base = 200_000 + (grade_pid % 100_000) * 128
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        st = _stat(pid)
        if st is None or st[1] == "Z":
            continue
        comm = _comm(pid)
        if comm == MARK or base <= _uid(pid) < base + 128:
            out[pid] = f"{comm} uid={_uid(pid)}: {_cmdline(pid)}"
    return out


def _start_grade(course: Path, out: Path, tty: int | None) -> subprocess.Popen:
    code = "import sys; from convpset.cli import grade_main; sys.argv[0] = 'grade'; grade_main()"
    args = [sys.executable, "-c", code, "submitted", "--out", str(out), "--jobs", "2",
            "--no-nbgrader", "--timeout", "600", "--cell-timeout", "300"]
    if tty is None:
        return subprocess.Popen(args, cwd=course, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    import fcntl
    import termios

    def controlling_tty() -> None:           # runs after setsid: the pty is our terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return subprocess.Popen(args, cwd=course, stdin=tty, stdout=tty, stderr=tty,
                            start_new_session=True, preexec_fn=controlling_tty)


def _drain(fd: int | None) -> None:
    import select
    while fd is not None and select.select([fd], [], [], 0)[0]:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox uids and namespaces need root")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGHUP"])
def test_notebook_that_clears_pdeathsig_dies_with_grade(tmp_path, how):
    """Breach (issue 19.6): a notebook that cleared PR_SET_PDEATHSIG, blocked its signals
    and slept was still running after ``grade`` died by SIGKILL, or by SIGHUP when the
    instructor's terminal went away. Each template now keeps its children in a PID
    namespace whose init (ours) dies with the template: the kernel kills the rest."""
    course = _undying_course(tmp_path)
    master = slave = None
    if how == "SIGHUP":
        master, slave = os.openpty()
    proc = _start_grade(course, tmp_path / "out", slave)
    if slave is not None:
        os.close(slave)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            _drain(master)
            if any(MARK in v for v in _lingering(proc.pid).values()):
                break
            assert proc.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the notebook never started sleeping")
        before = _descendants(proc.pid)
        if how == "SIGKILL":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.close(master)                 # the terminal hangs up: SIGHUP to the session
            master = None
        proc.wait(timeout=60)
        assert proc.returncode == -getattr(signal, how), proc.returncode   # died of it
        deadline = time.monotonic() + 30
        left = _lingering(proc.pid)
        stray = dict(before)
        while (left or stray) and time.monotonic() < deadline:
            time.sleep(0.2)
            left = _lingering(proc.pid)
            stray = {p: v for p, v in stray.items() if _alive(p, v[0])}
        assert not left and not stray, f"still running after {how} of grade:\n" + "\n".join(
            [f"{p}: {v}" for p, v in left.items()] + [f"{p}: {c}" for p, (_, c) in stray.items()])
    finally:
        if master is not None:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _lingering(proc.pid):     # never leave the test's own orphans behind
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
