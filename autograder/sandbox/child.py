"""Child side of :mod:`convpset.autograder.sandbox` (the warm "zygote" and the sandboxed child).

This module is imported by a freshly exec'ed interpreter (``python -I -c ...``) that
never saw the grader's memory.  It preloads numpy, then serves fork requests arriving
on an anonymous AF_UNIX SOCK_SEQPACKET socket.  Each forked child isolates itself, runs
ONE student's cells and writes a raw-bytes result (JSON header + array buffers) to a
pipe.  Nothing here uses pickle.

The first request that asks for torch makes the zygote fork a second template from
itself that imports and warms up torch; later torch requests are forwarded to it. One
socket (and so one template tree) can therefore serve every grading process of a batch,
and torch is imported once, and only when some notebook uses it.

Wire formats (all little endian):
  request  (parent -> zygote): one seqpacket message: b"N" (numpy template) or b"T"
           (torch template) + utf-8 path of the private temp dir, with two fds
           attached: [status_socket, result_pipe_write_end]; or b"W" alone: start the
           torch template now (a batch that will need it warms it up in advance).
  status   (zygote -> parent, on status_socket): b"P" + int64 pid, later
           b"X" + int64 returncode + float64 cpu_seconds + int64 maxrss_kb.
  result   (child -> parent, on the pipe): b"AGSB" + uint64 header_len + header json
           + the array buffers concatenated in header order.
"""

from __future__ import annotations

import builtins
import ctypes
import gc
import json
import linecache
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time
import traceback

import numpy as np

_np = np
_ndarray = np.ndarray
_generic = np.generic
_asarray = np.asarray
_ascontig = np.ascontiguousarray
_dumps = json.dumps
_isinstance = isinstance
_type = type
_len = len
_str = str
_issubclass = issubclass

MAGIC = b"AGSB"
RESULT_FD = 3
MAX_NAME = 200

# ----------------------------------------------------------------------------- landlock
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


# ----------------------------------------------------------------------------- zygote
def _share_empty_netns() -> None:
    """Move the template (and so every child) into one new, empty network namespace.

    Creating and destroying a namespace per notebook cost about a tenth of a sandbox's
    time. Sharing one is safe only where Landlock (ABI >= 6) scopes abstract unix sockets
    to each child's own domain -- the one channel two concurrent sandboxes of a shared
    namespace could otherwise open to each other; elsewhere each child still makes its own.
    """
    if os.geteuid() == 0 and landlock_abi() >= 6:
        _libc.unshare(0x40000000)  # CLONE_NEWNET


def _own_netns() -> int:
    try:
        return os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return -1


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
    pid = os.fork()
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            ours.close()
            for obj in close:          # the zygote's own sockets, selector and fds
                if _isinstance(obj, int):
                    os.close(obj)
                else:
                    obj.close()
            warm_torch()
            zygote_main(theirs.detach(), is_torch_template=True)
        finally:
            os._exit(0)
    theirs.close()
    return ours


def zygote_main(ctl_fd: int, is_torch_template: bool = False) -> None:
    """Serve fork requests on ``ctl_fd`` until every parent closed it."""
    if _type(builtins.__import__) is not _ImportClock:
        # installed here, before the snapshot, so children never change builtins for it
        builtins.__import__ = _ImportClock(0.0, builtins.__import__)
    snapshot_template_modules()
    # Move every object the template holds out of the collector's reach: a garbage
    # collection in a child would otherwise write to (and so copy) every page of it.
    gc.collect()
    gc.freeze()
    if not is_torch_template:
        _share_empty_netns()
    ctl = socket.socket(fileno=ctl_fd)
    try:  # orphans of sandboxed children get re-parented to us and reaped here
        _libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
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
                    data, fds, _f, _a = socket.recv_fds(ctl, 4096, 2)
                except OSError:
                    data, fds = b"", []
                if not data:  # every parent gone
                    os._exit(0)
                if data == b"W" and not fds:      # warm up: start the torch template now
                    if not is_torch_template:
                        torch_template()
                    continue
                if _len(fds) != 2 or data[:1] not in (b"N", b"T"):
                    for fd in fds:
                        os.close(fd)
                    continue
                if data[:1] == b"T" and not is_torch_template:
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
                data = data[1:]
                st = socket.socket(fileno=fds[0])
                pid = os.fork()
                if pid == 0:
                    try:
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        signal.signal(signal.SIGINT, signal.SIG_DFL)
                        os.dup2(fds[1], RESULT_FD)
                        os.closerange(RESULT_FD + 1, 1 << 16)
                        child_main(data.decode())
                    finally:
                        os._exit(111)
                os.close(fds[1])
                try:
                    st.sendall(b"P" + struct.pack("<q", pid))
                except OSError:
                    pass
                status_socks[pid] = st
            else:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except OSError:
                    pass
                while True:
                    try:
                        pid, sts, ru = os.wait4(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    st = status_socks.pop(pid, None)
                    if st is not None:
                        rc = os.waitstatus_to_exitcode(sts)
                        try:
                            st.sendall(b"X" + struct.pack("<qdq", rc, ru.ru_utime + ru.ru_stime, ru.ru_maxrss))
                        except OSError:
                            pass
                        st.close()


# ----------------------------------------------------------------------------- child
def _vmsize() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18


def _enc(x):
    return None if x is None else x.encode()


def _mount(src, target, fstype, flags, data=None) -> None:
    enc = _enc
    if _libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {target}: {os.strerror(e)}")


def _expose_hidden(paths) -> list:
    """Make allowed read paths reachable for the unprivileged sandbox uid.

    E.g. the Python installation lives under /root (mode 0700).  In a private mount
    namespace we cover such an ancestor with an empty tmpfs (which also hides the rest
    of it) and bind-mount only the allowed paths back at their original location.
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
    if not hidden:
        return []
    if _libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    done = []
    for top in sorted(hidden, key=_len):
        subs = [s for s in hidden[top] if not any(s.startswith(o + "/") for o in hidden[top] if o != s)]
        fds = [(s, os.open(s, os.O_PATH | os.O_CLOEXEC)) for s in subs]
        _mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        for s, fd in fds:
            cur = top
            for comp in s[_len(top):].strip("/").split("/"):
                cur += "/" + comp
                if not os.path.isdir(cur):
                    os.mkdir(cur, 0o755)
                    os.chmod(cur, 0o755)
            _mount(f"/proc/self/fd/{fd}", s, None, MS_BIND | MS_REC)
            os.close(fd)
            done.append(s)
    return done


def _isolate(task: dict, tmp: str) -> dict:
    rep: dict = {}
    os.setsid()
    rep["setsid"] = True
    os.chdir(tmp)
    for k in ("HOME", "TMPDIR", "TMP", "TEMP"):
        os.environ[k] = tmp
    rep["private_tmp"] = True
    root = os.geteuid() == 0
    rep["netns"] = False
    host = task.get("host_netns")
    if host is not None and _own_netns() not in (host, -1):
        rep["netns"] = rep["netns_shared"] = True   # the template's empty namespace
    elif root:
        rep["netns"] = _libc.unshare(0x40000000) == 0  # CLONE_NEWNET
    if root and task.get("uid") is not None:
        try:
            rep["mount_ns_exposed"] = _expose_hidden(task["read_paths"])
        except OSError as e:
            rep["mount_ns_error"] = _str(e)
    rep["no_new_privs"] = _libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    try:
        rep.update(apply_landlock(task["read_paths"], [tmp], ["/dev/null"], ["/dev/urandom"]))
    except Exception as e:  # pragma: no cover - best effort
        rep.update(landlock=False, landlock_error=repr(e))
    rep["setuid"] = False
    uid = task.get("uid")
    if root and uid is not None:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            rep["setuid"] = os.getuid() == uid
            rep["uid"] = uid
        except OSError as e:
            rep["setuid_error"] = _str(e)
    lim = task["limits"]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    rl = {}

    def setrl(name, soft, hard=None):
        try:
            resource.setrlimit(getattr(resource, name), (soft, soft if hard is None else hard))
            rl[name] = soft
        except (OSError, ValueError) as e:
            rl[name] = f"failed: {e}"

    setrl("RLIMIT_CORE", 0)
    setrl("RLIMIT_CPU", int(lim["cpu_s"]), int(lim["cpu_s"]) + 1)
    setrl("RLIMIT_FSIZE", int(max(lim["file_bytes"], lim["output_bytes"])))
    setrl("RLIMIT_NPROC", int(lim["nproc"]))
    setrl("RLIMIT_AS", _vmsize() + int(lim["memory_mb"]) * 1024 * 1024)
    rep["rlimits"] = rl
    fd = os.open(os.path.join(tmp, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
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
    return rep


def _strip_magics(src: str) -> str:
    out = []
    for line in src.splitlines():
        s = line.lstrip()
        if s.startswith("%") or s.startswith("!"):
            line = line[: _len(line) - _len(s)] + "# " + s
        out.append(line)
    return "\n".join(out) + "\n"


def _safe_str(x, n: int) -> str:
    try:
        s = _str(x)
        if _type(s) is not _str:
            s = "<unprintable>"
    except BaseException:
        s = "<unprintable>"
    return s[:n]


def _cell_error(i: int, e: BaseException) -> dict:
    try:
        tb = "".join(traceback.format_exception(_type(e), e, e.__traceback__.tb_next))
    except BaseException:
        tb = "<traceback unavailable>"
    return {"index": i, "ename": _safe_str(_type(e).__name__, 200), "evalue": _safe_str(e, 500),
            "traceback_tail": tb[-2000:]}


def _type_name(v) -> str:
    t = _type(v)
    try:
        mod = _type.__dict__["__module__"].__get__(t)
        qn = _type.__dict__["__qualname__"].__get__(t)
        if _type(mod) is not _str or _type(qn) is not _str:
            return "<unknown>"
    except BaseException:
        return "<unknown>"
    if mod in ("builtins", "__main__"):
        return qn[:MAX_NAME]
    if mod.startswith("numpy"):
        mod = "numpy"
    if mod.startswith("torch") and qn in ("Tensor", "Parameter"):
        mod = "torch" if qn == "Tensor" else mod
    return (mod + "." + qn)[:MAX_NAME]


class _NotConvertible(Exception):
    pass


_SCALARS = (int, float, bool)


def _walk(v, depth: int, budget: list) -> None:
    """Check a nested list/tuple contains only plain numbers (no student code runs)."""
    t = _type(v)
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotConvertible("nested list too large")
    if t in _SCALARS:
        return
    if t is list or t is tuple:
        if depth > 32:
            raise _NotConvertible("nested list too deep")
        for x in v:
            _walk(x, depth + 1, budget)
        return
    if t is complex:
        raise _NotConvertible("complex values")
    if t is _str or t is bytes:
        raise _NotConvertible("strings in nested list")
    if v is None:
        raise _NotConvertible("None in nested list")
    if _issubclass(t, _generic):
        if _type_name(v).startswith("numpy.") and _isinstance(v, (_np.number, _np.bool_)):
            return
        raise _NotConvertible(f"element of type {_type_name(v)}")
    raise _NotConvertible(f"element of type {_type_name(v)} in nested list")


def _normalize(a):
    if _type(a) is not _ndarray:
        a = _ndarray.view(a, _ndarray)
    k = a.dtype.kind
    if k == "b":
        a = a.astype(_np.bool_)
    elif k == "i":
        a = a.astype(_np.int64)
    elif k == "u":
        if a.size and a.max() > _np.iinfo(_np.int64).max:
            raise _NotConvertible("unsigned values too large for int64")
        a = a.astype(_np.int64)
    elif k == "f":
        a = a.astype(_np.float64)
    elif k == "O":
        raise _NotConvertible("object dtype")
    elif k == "c":
        raise _NotConvertible("complex values")
    elif k in "US":
        raise _NotConvertible(f"strings (dtype {a.dtype.str})")
    else:
        raise _NotConvertible(f"unsupported dtype {a.dtype.str}")
    return _ascontig(a)


class _Rows:
    """A ragged list of number rows, e.g. layer shapes [(6, 24, 24), (256,)]."""

    def __init__(self, lengths, flat):
        self.lengths = lengths
        self.flat = flat


def _ragged_rows(v):
    """Rows of plain numbers of different lengths, or None (checked by _walk already)."""
    lengths = []
    values = []
    for row in v:
        tr = _type(row)
        if tr is not list and tr is not tuple:
            return None
        for x in row:
            if _type(x) is list or _type(x) is tuple:
                return None
            values.append(x)
        lengths.append(_len(row))
    return _Rows(lengths, _normalize(_asarray(values, dtype=_np.float64)))


def _convert(v):
    t = _type(v)
    if v is None:
        raise _NotConvertible("value is None")
    if t in _SCALARS:
        return _normalize(_asarray(v))
    if t is complex:
        raise _NotConvertible("complex values")
    if t is _str or t is bytes:
        raise _NotConvertible("a string, not numbers")
    if t is list or t is tuple:
        _walk(v, 0, [10_000_000])
        try:
            a = _asarray(v)
        except ValueError as e:
            a = None
            why = _safe_str(e, 200)
        else:
            why = ""
        if a is None or a.dtype.kind == "O":
            rows = _ragged_rows(v)
            if rows is not None:
                return rows
            raise _NotConvertible(f"object dtype: ragged nested list {why}".strip()) from None
        return _normalize(a)
    if _issubclass(t, _ndarray):
        return _normalize(_ndarray.view(v, _ndarray).copy())
    if _issubclass(t, _generic):
        if not _type_name(v).startswith("numpy."):
            raise _NotConvertible(f"numpy scalar subclass {_type_name(v)}")
        return _normalize(_asarray(v))
    torch = sys.modules.get("torch")
    tb = getattr(getattr(torch, "_C", None), "TensorBase", None) if torch is not None else None
    if _isinstance(tb, _type) and _issubclass(t, tb):
        try:
            x = tb.detach(v)
            if x.is_complex():
                raise _NotConvertible("complex values")
            x = tb.cpu(x)
            if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
                x = x.to(torch.float64)
            a = tb.numpy(x)
        except _NotConvertible:
            raise
        except Exception as e:
            raise _NotConvertible(f"tensor conversion failed: {_safe_str(e, 300)}") from None
        return _normalize(_ndarray.view(a, _ndarray).copy())
    raise _NotConvertible(f"a {_type_name(v)} object, not numbers")


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
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        return None
    return ctypes.c_uint64.from_address(id(d) + 24).value


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


def _restore_modules(snap) -> None:
    """Undo what student code did to the guarded modules before answers are converted."""
    for name, (m, d, version) in snap.items():
        try:
            md = m.__dict__
            if version is None or _dict_version(md) != version:
                for k in [k for k in md if k not in d]:
                    del md[k]
                md.update(d)
            if sys.modules.get(name) is not m:
                sys.modules[name] = m
        except BaseException:
            pass


class CellTimeout(BaseException):
    """Raised into a cell that runs past the per-cell time limit (like nbgrader's cell
    timeout): the cell fails, the next cells still run."""


def _cell_timeout(signum, frame):
    raise CellTimeout("the cell ran past its time limit (an infinite loop?)")


class _ImportClock:
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
        paused = signal.getitimer(signal.ITIMER_PROF)[0]
        signal.setitimer(signal.ITIMER_PROF, self.budget)
        t0 = time.process_time()
        self.depth += 1
        try:
            return self.real_import(name, globals, locals, fromlist, level)
        finally:
            self.depth -= 1
            self.budget -= time.process_time() - t0
            signal.setitimer(signal.ITIMER_PROF, paused)


def _run(task: dict, rep: dict) -> None:
    snap = _snapshot_modules()
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
        if _type(clock) is _ImportClock:      # installed in the template, idle until now
            clock.budget = float(task["limits"].get("import_cpu_s", 0) or 0)
    for i, src in enumerate(task["cells"]):
        fn = f"<cell {i}>"
        try:
            code_src = _strip_magics(src)
            linecache.cache[fn] = (_len(code_src), None, code_src.splitlines(True), fn)
            code = compile(code_src, fn, "exec")
            if cell_s > 0:
                signal.setitimer(signal.ITIMER_REAL, cell_s)
            if cell_cpu > 0:
                signal.setitimer(signal.ITIMER_PROF, cell_cpu)
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
                cell_errors.append({"index": i, "ename": "BaseException", "evalue": "", "traceback_tail": ""})
            e = None
    _restore_modules(snap)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    answers = []
    buffers = []
    total = 0
    cap = int(task["limits"]["answer_bytes"])
    for name in task["answer_names"]:
        ent = {"name": name, "present": False, "source_type": "", "dtype": None, "shape": None, "error": None}
        try:
            present = name in g
            if not present:
                ent["error"] = "not defined"
            else:
                v = g[name]
                ent["present"] = True
                ent["source_type"] = _type_name(v)
                a = _convert(v)
                if _type(a) is _Rows:
                    ent["rows"] = a.lengths
                    a = a.flat
                nb = a.nbytes
                if total + nb > cap:
                    raise _NotConvertible(f"answer too large ({nb} bytes)")
                total += nb
                ent["dtype"] = a.dtype.str
                ent["shape"] = [int(s) for s in a.shape]
                buffers.append(a.tobytes())
        except _NotConvertible as e:
            ent["error"] = _safe_str(e.args[0], 500)
        except MemoryError:
            memory_error = True
            ent["error"] = "out of memory while extracting the answer"
        except BaseException as e:
            ent["error"] = f"conversion failed: {_type(e).__name__}: {_safe_str(e, 300)}"
        answers.append(ent)
    g.clear()
    header = _dumps({"answers": answers, "cell_errors": cell_errors, "memory_error": memory_error,
                     "isolation": rep}).encode()
    out = MAGIC + struct.pack("<Q", _len(header)) + header
    _write_all(out)
    for b in buffers:
        _write_all(b)
    os.close(RESULT_FD)


def _write_all(b: bytes) -> None:
    mv = memoryview(b)
    while mv:
        n = os.write(RESULT_FD, mv)
        mv = mv[n:]


def child_main(tmp: str) -> None:
    """Runs in the forked child; never returns."""
    code = 112
    try:
        path = os.path.join(tmp, "task.json")
        with open(path, "rb") as f:
            task = json.loads(f.read())
        os.unlink(path)
        rep = _isolate(task, tmp)
        _run(task, rep)
        code = 0
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        try:
            # Kill every leftover process of our sandbox uid (fork bombs, daemons).
            # Linux never delivers kill(-1) to the caller itself.
            if os.getuid() != 0:
                os.kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(code)


def to_plain(v):
    """(source_type, array or None, ragged row lengths or None, error or None) for one value.

    The same conversion runs in the sandbox child and, for ``nbgrader autograde``, inside
    the notebook kernel, so that both graders judge identical data.
    """
    src = _type_name(v)
    try:
        a = _convert(v)
    except _NotConvertible as e:
        return src, None, None, _safe_str(e.args[0], 500)
    if _type(a) is _Rows:
        return src, a.flat, a.lengths, None
    return src, a, None, None
