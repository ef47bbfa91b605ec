"""Namespaces and mounts for one sandboxed child (root only), and tying a process's life
to its parent's.

What a child's mount namespace shows (:func:`template_mounts` once per template,
:func:`child_mounts` per child):

* the allowed read paths hidden behind a 0700 ancestor (the Python install lives in /root
  here) are re-exposed: an empty tmpfs covers the ancestor, only those dirs are bound back;
* ``/tmp``, ``/var/tmp``, ``/run`` and ``/dev/shm`` are empty root-owned tmpfs: no host
  socket, FIFO or file in them is reachable;
* the child's work dir is its own tmpfs of ``disk_bytes``: the cap on everything it writes;
* ``/proc`` is a fresh procfs with ``hidepid=invisible``: each sandbox has its own uid, so it
  sees only its own processes, not the grader's or other students' (and their command
  lines).

Lifetime (:func:`start_pid_namespace`, once per template): every child a template forks
lives in one PID namespace of that template, whose pid 1 is our own small reaper, tied to
the template. When the template dies -- with ``grade``, by SIGKILL or SIGHUP -- the reaper
dies, and the kernel SIGKILLs everything left in the namespace. A student cannot undo
that (clearing PR_SET_PDEATHSIG, blocking signals or a new session change nothing; they
never run as pid 1 and cannot signal it: another uid, seccomp, Landlock). The template
itself stays in the host's namespace, so the pids it reports are the grader's pids.
"""

from __future__ import annotations

import ctypes
import os
import signal

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                       ctypes.c_ulong]

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
COVERED = ("/tmp", "/var/tmp", "/run", "/dev/shm")


def unshare(flags: int) -> None:
    if libc.unshare(flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"unshare({flags:#x}): {os.strerror(e)}")


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies; exit now if that already happened.

    Must be called again after a uid change (the kernel clears the setting then).
    """
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)


def setns(fd: int, nstype: int) -> None:
    if libc.setns(fd, nstype) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns({nstype:#x}): {os.strerror(e)}")


# this template's PID namespace for its children (set by start_pid_namespace; inherited by
# fork, and so reset there by a template forked from another one)
PIDNS: dict = {}


def _reaper_main(alive_r: int, ready_w: int, proc_at: str | None) -> None:
    """Pid 1 of a template's PID namespace: reap orphans until the template is gone.

    Tied to the template twice: PR_SET_PDEATHSIG, and the end of the ``alive`` pipe whose
    only writer is the template (EOF: it died, even in the instant before the death signal
    was set). When this process exits, the kernel kills every process in the namespace.
    """
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    ok = b"0"
    if proc_at is not None:
        # a procfs of *this* namespace (only a process inside it can mount one): children
        # bind it over /proc, so the pids they see there are the ones getpid() returns
        try:
            mount("proc", proc_at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
            ok = b"1"
        except OSError:
            pass
    os.write(ready_w, ok)
    os.close(ready_w)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    keep = os.dup2(alive_r, 3) if alive_r != 3 else 3
    os.closerange(0, 3)
    os.closerange(4, 1 << 16)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *a: None)
    import select
    while True:
        ready = select.select([keep, wake_r], [], [])[0]
        if keep in ready:                       # EOF (or data: never written) - go
            os._exit(0)
        os.read(wake_r, 4096)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break


def start_pid_namespace(mount_proc: bool) -> dict:
    """In a template (root): the children it forks from now on live in a new PID
    namespace whose init is :func:`_reaper_main`. ``mount_proc``: this template has a
    private mount namespace where the init may mount that namespace's procfs (for
    :func:`child_mounts`). Returns what to record in the isolation report. The template keeps a handle on its own namespace to fork templates into it
    (:func:`fork_in_host_pidns`)."""
    for fd in PIDNS.pop("fds", ()):             # a forked template: not ours
        os.close(fd)
    PIDNS.clear()
    try:
        host = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        return {"pidns": False, "pidns_error": str(e)}
    try:
        unshare(CLONE_NEWPID)
    except OSError as e:
        os.close(host)
        return {"pidns": False, "pidns_error": str(e)}
    proc_at = None
    if mount_proc:
        proc_at = f"/run/convpset-proc-{os.getpid()}"
        try:
            os.mkdir(proc_at, 0o555)
        except OSError:
            proc_at = None
    alive_r, alive_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(alive_w)
            os.close(ready_r)
            _reaper_main(alive_r, ready_w, proc_at)
        finally:
            os._exit(0)
    os.close(alive_r)
    os.close(ready_w)
    proc_ok = os.read(ready_r, 1) == b"1"           # EOF: the reaper died at once
    os.close(ready_r)
    inner = os.open("/proc/self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
    PIDNS.update(reaper=pid, template=os.getpid(), host_fd=host, inner_fd=inner,
                 fds=(host, inner, alive_w), proc=proc_at if proc_ok else None)
    return {"pidns": True, "pidns_proc": proc_ok}


def template_fds() -> tuple[int, ...]:
    """The fds of this template's PID namespace a process forked from it must close."""
    return tuple(PIDNS.get("fds", ()))


def ppid_seen_by_children(template_pid: int) -> int:
    """What ``getppid()`` returns in a child of this template: 0 inside its PID namespace
    (the parent lives outside it), the template's pid otherwise."""
    return 0 if PIDNS.get("reaper") else template_pid


def fork_in_host_pidns() -> int:
    """``os.fork()``, with the child in this template's own PID namespace rather than in
    the one of its children (a template forked from a template must report host pids)."""
    if not PIDNS.get("reaper"):
        return os.fork()
    setns(PIDNS["host_fd"], CLONE_NEWPID)
    try:
        pid = os.fork()
    finally:
        if os.getpid() == PIDNS.get("template"):   # the template: its children go back in
            setns(PIDNS["inner_fd"], CLONE_NEWPID)
    return pid


def own_netns() -> int:
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return -1


def _enc(x):
    return None if x is None else x.encode()


def mount(src, target, fstype, flags, data=None) -> None:
    if libc.mount(_enc(src), _enc(target), _enc(fstype), flags, _enc(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {target}: {os.strerror(e)}")


def _expose_hidden(paths) -> list:
    """Make allowed read paths reachable for the unprivileged sandbox uid.

    In the private mount namespace we cover a 0700 ancestor with an empty tmpfs (which
    also hides the rest of it) and bind-mount only the allowed paths back in place.
    """
    hidden: dict[str, list] = {}
    for p in paths:
        if not os.path.isdir(p):
            continue
        cur = ""
        for comp in p.strip("/").split("/")[:-1]:
            cur += "/" + comp
            if not os.stat(cur).st_mode & 0o001:
                hidden.setdefault(cur, []).append(p)
                break
    done = []
    for top in sorted(hidden, key=len):
        fds = [(s, os.open(s, os.O_PATH | os.O_CLOEXEC)) for s in _outermost(hidden[top])]
        mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        for s, fd in fds:
            _bind_back(s, fd, top)
            done.append(s)
    return done


def _outermost(paths: list[str]) -> list[str]:
    """The paths that are not below another one of them."""
    return [p for p in paths if not any(p.startswith(o + "/") for o in paths if o != p)]


def _bind_back(path: str, fd: int, top: str) -> None:
    """Bind the directory open as ``fd`` at ``path`` again, under a tmpfs mounted at
    ``top`` that now hides it (the missing directories in between are made 0755)."""
    cur = top
    for comp in path[len(top):].strip("/").split("/"):
        cur += "/" + comp
        if not os.path.isdir(cur):
            os.mkdir(cur, 0o755)
            os.chmod(cur, 0o755)
    mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    os.close(fd)


# where every child's own tmpfs is mounted (a mount point in the template's empty /tmp)
WORK = "/tmp/work"
# what the template set up for its children (set in the template, inherited by fork)
TEMPLATE: dict = {}


def template_mounts(read_paths) -> dict:
    """Once, in the template (root): its own mount and IPC namespaces, shared by every child
    it forks. Hidden read paths re-exposed, empty root-owned tmpfs over the shared scratch
    dirs (with the children's work mount point), and a procfs with ``hidepid=invisible``.

    Done here rather than per child because every new superblock costs its teardown on
    the child's exit path; a child only copies this namespace and mounts its own work dir.
    The IPC namespace lives as long as the template (the batch); seccomp denies every IPC
    call in the children anyway.
    """
    rep: dict = {}
    try:
        unshare(CLONE_NEWNS | CLONE_NEWIPC)
        rep["ipcns"] = True
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        rep["mount_ns_exposed"] = _expose_hidden(read_paths)
        covered = []
        for d in COVERED:
            if os.path.isdir(d) and not os.path.islink(d):
                # read paths inside (a checkout or venv under /tmp) are bound back in place
                inside = _outermost([p for p in read_paths if p.startswith(d + "/")
                                     and os.path.isdir(p)])
                fds = [(p, os.open(p, os.O_PATH | os.O_CLOEXEC)) for p in inside]
                mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=64k")
                for p, fd in fds:
                    _bind_back(p, fd, d)
                covered.append(d)
        rep["empty_scratch_dirs"] = covered
        os.makedirs(WORK, mode=0o755, exist_ok=True)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
        rep["proc_hidepid"] = True
        rep["template_mounts"] = True
    except OSError as e:
        rep["template_mounts"] = False
        rep["template_mounts_error"] = str(e)
    TEMPLATE.clear()
    TEMPLATE.update(rep)
    return rep


def child_mounts(uid: int, disk_bytes: int) -> dict:
    """In the child (root, before the uid change): a copy of the template's mount
    namespace, with the child's own tmpfs of ``disk_bytes`` at WORK: the cap on everything
    it writes, gone with it."""
    unshare(CLONE_NEWNS)
    if PIDNS.get("proc"):       # the template's PID namespace's own procfs (hidepid too)
        mount(PIDNS["proc"], "/proc", None, MS_BIND)
    mount("tmpfs", WORK, "tmpfs", MS_NOSUID | MS_NODEV,
          f"mode=700,uid={uid},gid={uid},size={max(1, disk_bytes // 1024)}k,nr_inodes=10000")
    return {"mountns": True, "disk_cap_bytes": disk_bytes}
