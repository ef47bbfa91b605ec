"""The wire formats between the grading process, the zygote and a sandboxed child.

One module so that both sides read the same names instead of bare numbers. Nothing here
imports numpy or runs student code; the child and the parent both import it.

All integers little endian.

request  (parent -> zygote), one SOCK_SEQPACKET message:
    ``REQ_NUMPY`` or ``REQ_TORCH`` + utf-8 path of the child's private temp dir, with three
    fds attached: ``[status_socket, result_pipe_write_end, temp_dir_fd]`` (the template's
    own mount namespace may not show the path); or ``REQ_WARM`` alone: start the torch
    template now (a batch that will need it warms it up in advance).
status   (zygote -> parent, on status_socket):
    ``ST_PID`` + int64 pid, later ``ST_EXIT`` + int64 returncode + float64 cpu_seconds
    + int64 maxrss_kb.
result   (child -> parent, on the pipe, fd ``RESULT_FD`` in the child):
    ``MAGIC`` + uint64 header_len + header JSON + the array buffers in header order.
"""

from __future__ import annotations

import struct

# ----------------------------------------------------------------------------- requests
REQ_NUMPY = b"N"
REQ_TORCH = b"T"
REQ_WARM = b"W"
REQ_FDS = 3                      # [status socket, result pipe write end, temp dir]

# ----------------------------------------------------------------------------- status
ST_PID = b"P"
ST_EXIT = b"X"
PID_FMT = "<q"
EXIT_FMT = "<qdq"                # returncode, cpu seconds, maxrss (kB)
PID_MSG_LEN = 1 + struct.calcsize(PID_FMT)
EXIT_MSG_LEN = 1 + struct.calcsize(EXIT_FMT)


def pid_message(pid: int) -> bytes:
    return ST_PID + struct.pack(PID_FMT, pid)


def exit_message(rc: int, cpu_s: float, maxrss_kb: int) -> bytes:
    return ST_EXIT + struct.pack(EXIT_FMT, rc, cpu_s, maxrss_kb)


# ----------------------------------------------------------------------------- result
MAGIC = b"AGSB"
LEN_FMT = "<Q"
PREFIX_LEN = len(MAGIC) + struct.calcsize(LEN_FMT)
RESULT_FD = 3
DIR_FD = 4                       # the temp dir, in the child until it has read its task
HEADER_CAP = 8_000_000           # bytes of header JSON the parent accepts
DTYPES = ("|b1", "<i8", "<f8")   # the only array dtypes on the wire


def result_prefix(header: bytes) -> bytes:
    return MAGIC + struct.pack(LEN_FMT, len(header)) + header


# ----------------------------------------------------------------------------- exit codes
EXIT_OK = 0
EXIT_FORK_RETURNED = 111         # child_main returned instead of exiting (never expected)
EXIT_SETUP_FAILED = 112          # reading the task, isolating or writing the result failed
SANDBOX_EXIT_CODES = (EXIT_FORK_RETURNED, EXIT_SETUP_FAILED)

# ----------------------------------------------------------------------------- outcomes
# ExecResult.status values; each has an ``exec.<status>`` text in problems/text/*.toml.
OK = "ok"
TIMEOUT = "timeout"
CPU_LIMIT = "cpu_limit"
MEMORY = "memory"
EXITED = "exited"
CRASHED = "crashed"
OUTPUT_FLOOD = "output_flood"
BAD_RESULT = "bad_result"
GRADER_ERROR = "grader_error"   # the sandbox machinery failed (parent side), not the code
STATUSES = (OK, TIMEOUT, CPU_LIMIT, MEMORY, EXITED, CRASHED, OUTPUT_FLOOD, BAD_RESULT)

# ExecResult.detail values: machine words, never sentences (the text tables phrase them).
DETAIL_SETUP_FAILED = "setup_failed"     # crashed: the sandbox itself failed
DETAIL_TOO_LARGE = "too_large"           # bad_result: more bytes than the caps allow
DETAIL_MALFORMED = "malformed"           # bad_result: frame did not parse
# crashed by a signal: the signal's name (e.g. "SIGSEGV"); exited: the exit code as text
