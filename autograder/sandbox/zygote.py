"""The warm template ("zygote"): a fresh ``python -I`` that preloads numpy and forks one
sandboxed child per notebook; torch on demand in a second template forked from it.

Imported by a freshly exec'ed interpreter that never saw the grader's memory. It serves
fork requests (:mod:`.protocol`) on an anonymous AF_UNIX SOCK_SEQPACKET socket and never
unpickles anything. The first request that asks for torch makes the zygote fork a torch
template from itself; later torch requests are forwarded to it. One socket (and so one
template tree) serves every grading process of a batch.

Lifetime: the zygote exits when every holder of its socket closed it, and dies with the
process that started it (PR_SET_PDEATHSIG); the torch template dies with the zygote. Each
template forks its children into its own PID namespace, whose init dies with the template
(:func:`.namespaces.start_pid_namespace`): the kernel then kills every process in it, so
``grade`` dying by SIGKILL or SIGHUP leaves nothing, whatever the notebook did to its own
death signal.
"""

from __future__ import annotations

import builtins
import gc
import os
import selectors
import signal
import socket

from convpset.autograder.sandbox import child, namespaces, protocol
from convpset.autograder.sandbox.landlock import landlock_abi
from convpset.autograder.sandbox.namespaces import (
    CLONE_NEWNET,
    die_with_parent,
    template_mounts,
    unshare,
)


def _share_empty_netns() -> None:
    """Move the template (and so every child) into one new, empty network namespace.

    Creating and destroying a namespace per notebook cost about a tenth of a sandbox's
    time. Sharing one is safe only where Landlock (ABI >= 6) scopes abstract unix sockets
    to each child's own domain and seccomp denies socket() -- the channels two concurrent
    sandboxes of a shared namespace could otherwise open to each other; elsewhere each
    child still makes its own.
    """
    if os.geteuid() == 0 and landlock_abi() >= 6:
        unshare(CLONE_NEWNET)


def warm_torch() -> None:
    """Import torch and run the first call of the kernels students use (conv, pooling,
    autograd), so that each forked child does not pay their initialization again."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    k = torch.zeros(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    (F.conv2d(x, k).sum() + F.max_pool2d(x, 2).sum() + F.avg_pool2d(x, 2).sum()).backward()


def _fork_torch_template(close: list) -> socket.socket:
    """Fork a child of this zygote that imports torch and then serves torch requests."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote_pid = os.getpid()
    pid = namespaces.fork_in_host_pidns()     # a template reports host pids
    if pid == 0:
        try:
            die_with_parent(zygote_pid)
            signal.set_wakeup_fd(-1)
            ours.close()
            for obj in close:          # the zygote's own sockets, selector and fds
                if isinstance(obj, int):
                    os.close(obj)
                else:
                    obj.close()
            warm_torch()
            zygote_main(theirs.detach(), is_torch_template=True)
        finally:
            os._exit(0)
    theirs.close()
    return ours


def _fork_child(data: bytes, fds: list[int]) -> int:
    """Fork one sandboxed child for the request; returns its pid (in the template)."""
    seen_ppid = namespaces.ppid_seen_by_children(os.getpid())
    pid = os.fork()
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.dup2(fds[1], protocol.RESULT_FD)
            os.dup2(fds[2], protocol.DIR_FD)
            os.closerange(protocol.DIR_FD + 1, 1 << 16)
            child.child_main(data.decode(), seen_ppid)
        finally:
            os._exit(protocol.EXIT_FORK_RETURNED)
    os.close(fds[1])
    os.close(fds[2])
    return pid


def zygote_main(ctl_fd: int, is_torch_template: bool = False, parent_pid: int = 0,
                read_paths: list[str] | None = None) -> None:
    """Serve fork requests on ``ctl_fd`` until every parent closed it.

    ``parent_pid``: the grading process that started us (0: do not tie our life to it,
    e.g. when it was started from a thread that may end before the batch does).
    ``read_paths``: what children may read (to re-expose in the template's mount namespace).
    """
    if parent_pid:
        die_with_parent(parent_pid)
    if not is_torch_template and os.geteuid() == 0 and read_paths is not None:
        template_mounts(read_paths)
    if type(builtins.__import__) is not child.ImportClock:
        # installed here, before the snapshot, so children never change builtins for it
        builtins.__import__ = child.ImportClock(0.0, builtins.__import__)
    child.snapshot_template_modules()
    # Move every object the template holds out of the collector's reach: a garbage
    # collection in a child would otherwise write to (and so copy) every page of it.
    gc.collect()
    gc.freeze()
    if not is_torch_template:
        _share_empty_netns()
    if os.geteuid() == 0:
        # after gc.freeze: the reaper shares the template's pages and touches few of them
        namespaces.TEMPLATE.update(namespaces.start_pid_namespace(
            bool(namespaces.TEMPLATE.get("template_mounts"))))
    ctl = socket.socket(fileno=ctl_fd)
    try:  # orphans of sandboxed children get re-parented to us and reaped here
        child.libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *a: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    status_socks: dict[int, socket.socket] = {}
    torch_sock: socket.socket | None = None
    sel = selectors.DefaultSelector()
    sel.register(ctl, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)

    def torch_template() -> socket.socket:
        nonlocal torch_sock
        if torch_sock is None:
            torch_sock = _fork_torch_template([ctl, sel, wake_r, wake_w, *status_socks.values()])
        return torch_sock

    while True:
        for key, _ in sel.select():
            if key.fileobj is ctl:
                try:
                    data, fds, _f, _a = socket.recv_fds(ctl, 4096, protocol.REQ_FDS)
                except OSError:
                    data, fds = b"", []
                if not data:  # every parent gone
                    os._exit(0)
                if data == protocol.REQ_WARM and not fds:   # start the torch template now
                    if not is_torch_template:
                        torch_template()
                    continue
                kind = data[:1]
                if len(fds) != protocol.REQ_FDS or kind not in (protocol.REQ_NUMPY,
                                                                protocol.REQ_TORCH):
                    for fd in fds:
                        os.close(fd)
                    continue
                if kind == protocol.REQ_TORCH and not is_torch_template:
                    for _attempt in range(2):
                        try:
                            socket.send_fds(torch_template(), [data], fds)
                            break
                        except OSError:   # the torch template died: start a new one
                            if torch_sock is not None:
                                torch_sock.close()
                            torch_sock = None
                    for fd in fds:
                        os.close(fd)
                    continue
                st = socket.socket(fileno=fds[0])
                pid = _fork_child(data[1:], fds)
                try:
                    st.sendall(protocol.pid_message(pid))
                except OSError:
                    pass
                status_socks[pid] = st
            else:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except OSError:
                    pass
                _reap(status_socks)


def _reap(status_socks: dict[int, socket.socket]) -> None:
    """Collect every exited child; report each sandbox's exit to its parent."""
    while True:
        try:
            pid, sts, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == namespaces.PIDNS.get("reaper"):
            # our children's namespace is gone (and them with it): no child can be
            # forked any more, so this template ends; the grader starts a new one
            os._exit(1)
        st = status_socks.pop(pid, None)
        if st is not None:
            rc = os.waitstatus_to_exitcode(sts)
            try:
                st.sendall(protocol.exit_message(rc, ru.ru_utime + ru.ru_stime, ru.ru_maxrss))
            except OSError:
                pass
            st.close()
