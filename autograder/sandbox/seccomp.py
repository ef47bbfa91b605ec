"""The seccomp filter: a second wall, behind namespaces and Landlock, for the system calls
a notebook never needs.

Built with libseccomp through ``pyseccomp`` (a maintained ctypes binding with the same API
as libseccomp's own Python bindings) instead of hand-written BPF: libseccomp resolves
syscall numbers per architecture and kills calls made through a foreign ABI (x32, i386
``int 0x80``) that a hand-written filter easily forgets.

Default: allow. Denied with EPERM:

* other processes: ptrace, process_vm_readv/writev, kcmp, pidfd_getfd;
* process creation: fork, vfork, clone without CLONE_THREAD, execve, execveat (threads
  still work: clone with CLONE_THREAD). ``clone3`` fails with ENOSYS, so glibc falls back
  to ``clone``, whose flags a filter can inspect. Kills fork bombs and daemons at the root;
* IPC: every SysV call (shm*, msg*, sem*) and POSIX message queues (mq_*);
* sockets: ``socket()`` for every family -- no TCP/UDP, raw, packet, netlink, vsock, and no
  pathname or abstract unix socket anywhere on the host; io_uring (it bypasses seccomp);
* the kernel's own surfaces: keyctl/add_key/request_key, bpf, perf_event_open,
  userfaultfd, mount and the new mount API, umount2, pivot_root, chroot, unshare, setns,
  module loading, kexec, open_by_handle_at, personality, acct, swapon/off, reboot.
"""

from __future__ import annotations

import ctypes
import errno
import os

CLONE_THREAD = 0x00010000

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "fork", "vfork", "execve", "execveat",
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    "socket", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "name_to_handle_at", "open_by_handle_at", "personality", "acct", "swapon", "swapoff",
    "reboot", "syslog", "quotactl", "iopl", "ioperm",
)


PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def build() -> bytes | None:
    """The filter as a BPF program, compiled by libseccomp once in the template; each
    child only hands these bytes to the kernel (0.02 ms instead of 0.8 ms for
    ``seccomp_load``, which compiles again every time).

    None where libseccomp or the binding is missing (the isolation report then says so).
    """
    try:
        import pyseccomp as sc
    except (ImportError, OSError):
        return None
    f = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, RuntimeError, ValueError):   # unknown on this architecture
            pass
    f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as fh:
        f.export_bpf(fh)
        fh.seek(0)
        return fh.read()


# After the cells, for every thread of the child at once (TSYNC): nobody -- a thread the
# student left running, or code reached through an answer -- may touch the clocks the
# conversion runs on (the timers, their signals' handlers, blocking signals), load another
# filter, or start a thread.
CLOCK_SIGNALS = (14, 26, 27, 24)              # SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU
FROZEN_CLOCKS = ("setitimer", "alarm", "timer_create", "timer_settime", "timer_delete",
                 "seccomp")
PR_SET_SECCOMP_ARG = 22
SIG_BLOCK, SIG_SETMASK = 0, 2
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1


class ConversionFilter:
    """The filter laid over all of the child's threads before answers are converted.

    Built in the template -- the BPF program, its ``sock_fprog`` and the ``seccomp``
    system call's number and libc entry are all bound here -- so that loading it in the
    child calls nothing a notebook could have replaced.
    """

    def __init__(self, prog: bytes, nr: int) -> None:
        self._buf = ctypes.create_string_buffer(prog, len(prog))
        self._fprog = _SockFprog(len(prog) // 8, ctypes.cast(self._buf, ctypes.c_void_p))
        self._addr = ctypes.addressof(self._fprog)
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_void_p]
        self._nr = nr

    def load_for_all_threads(self) -> bool:
        """True when every thread now runs under it; False when the kernel refused (a
        thread carries a filter of its own)."""
        return self._syscall(self._nr, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC,
                             self._addr) == 0


def build_conversion() -> ConversionFilter | None:
    """:class:`ConversionFilter`, or None where libseccomp or the binding is missing."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError):
        return None
    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in FROZEN_CLOCKS:
        try:
            f.add_rule(deny, name)
        except (OSError, RuntimeError, ValueError):
            pass
    for sig in CLOCK_SIGNALS:
        f.add_rule(deny, "rt_sigaction", sc.Arg(0, sc.EQ, sig))
    for how in (SIG_BLOCK, SIG_SETMASK):
        f.add_rule(deny, "rt_sigprocmask", sc.Arg(0, sc.EQ, how))
    f.add_rule(deny, "prctl", sc.Arg(0, sc.EQ, PR_SET_SECCOMP_ARG))
    f.add_rule(deny, "clone")                  # no new thread either
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as fh:
        f.export_bpf(fh)
        fh.seek(0)
        prog = fh.read()
    if not prog or len(prog) % 8:
        return None
    return ConversionFilter(prog, sc.resolve_syscall(sc.Arch.NATIVE, "seccomp"))


def apply(prog: bytes | None) -> dict:
    """Load the filter into this (single-threaded) process; needs no_new_privs or root."""
    if not prog or len(prog) % 8:
        return {"seccomp": False, "seccomp_error": "libseccomp/pyseccomp not available"}
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        return {"seccomp": False, "seccomp_error": os.strerror(ctypes.get_errno())}
    return {"seccomp": True, "seccomp_denied": len(DENIED) + 2}
