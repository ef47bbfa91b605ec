"""Resource limits of a sandboxed child (set last, after the namespaces and the uid)."""

from __future__ import annotations

import resource


def _vmsize() -> int:
    """Bytes of address space already mapped (the template's numpy/torch): RLIMIT_AS is
    set this much above it, so the memory limit is what the student's code may add."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply(lim: dict) -> dict:
    """Set the rlimits from a task's limits; returns what was set (or why not)."""
    rl: dict = {}

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
    return rl
