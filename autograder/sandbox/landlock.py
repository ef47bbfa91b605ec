"""Landlock bindings (raw syscalls through ctypes): which files a sandboxed child may
read, write or execute, TCP bind/connect (ABI >= 4), and signal / abstract unix socket
scoping (ABI >= 6).

No maintained Python binding for Landlock exists that covers ABI 6 scoping, and the
interface is three syscalls with two small structs, so they are called directly.
"""

from __future__ import annotations

import ctypes
import os

_SYS_CREATE, _SYS_ADD, _SYS_RESTRICT = 444, 445, 446  # same on x86_64 and aarch64
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    v = _libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(v) if v > 0 else 0


def _handled_fs(abi: int) -> int:
    bits = (1 << 13) - 1
    if abi >= 2:
        bits |= FS_REFER
    if abi >= 3:
        bits |= FS_TRUNCATE
    if abi >= 5:
        bits |= FS_IOCTL_DEV
    return bits


def apply_landlock(read_paths, rw_paths, dev_rw, dev_r) -> dict:
    abi = landlock_abi()
    if abi <= 0:
        return {"landlock": False, "landlock_abi": 0}
    fs = _handled_fs(abi)
    attr = _RulesetAttr(fs, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    rfd = _libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if rfd < 0:
        return {"landlock": False, "landlock_abi": abi, "landlock_error": os.strerror(ctypes.get_errno())}
    ro = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
    rw = fs & ~(FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_IOCTL_DEV)
    rules = [(p, ro) for p in read_paths] + [(p, rw) for p in rw_paths]
    rules += [(p, FS_READ_FILE | FS_WRITE_FILE) for p in dev_rw] + [(p, FS_READ_FILE) for p in dev_r]
    added = []
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not os.path.isdir(path):
                access &= _FILE_ONLY
            access &= fs
            pb = _PathBeneath(access, fd)
            if _libc.syscall(_SYS_ADD, ctypes.c_int(rfd), ctypes.c_int(1), ctypes.byref(pb), ctypes.c_uint32(0)) == 0:
                added.append(path)
        finally:
            os.close(fd)
    ok = _libc.syscall(_SYS_RESTRICT, ctypes.c_int(rfd), ctypes.c_uint32(0)) == 0
    err = None if ok else os.strerror(ctypes.get_errno())
    os.close(rfd)
    out = {"landlock": ok, "landlock_abi": abi, "landlock_net_tcp": ok and abi >= 4,
           "landlock_scoped_signal_abstract_unix": ok and abi >= 6, "landlock_rules": added}
    if err:
        out["landlock_error"] = err
    return out
