"""Answers survive what a notebook leaves running after its cells (issue 19, point 7).

Before: the conversion ran on a process-wide CPU timer that any thread could cancel, after
a module restore that freed what the student had stashed in numpy's namespace (running
its ``__del__`` with no clock at all), with the student's threads still running. One
misbehaving thread or finalizer cost the whole notebook (the wall limit, score 0).

Now (``autograder/sandbox/child.py::_run``): the other threads are frozen, the modules are
restored without running student code, each answer converts on a tick that no thread can
cancel (a seccomp filter laid over every thread), and the child exits without running
anything of the student's. Each test states what it did on the base commit.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest

from convpset.autograder.sandbox import Limits, run_cells

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's walls need root")
# generous: the outcome is asserted, never the speed (tests/loaded.sh)
LIM = Limits(wall_s=60, cell_s=40, cpu_s=60, convert_cpu_s=0.5)

PLAIN = {f"p{i:02d}": [float(i), i + 0.5] for i in range(20)}
PLAIN_CELL = "\n".join(f"{k} = {v!r}" for k, v in PLAIN.items()) + "\n"


def _run(cells, names, limits: Limits = LIM):
    return run_cells([textwrap.dedent(c) for c in cells], names, limits)


def _assert_plain(r) -> None:
    for k, v in PLAIN.items():
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
    names = [*PLAIN, "looping"]
    r = _run([PLAIN_CELL, LOOPING_ANSWER, TIMER_CANCELLER], names)
    assert r.status == "ok", r
    _assert_plain(r)
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
    r = _run([PLAIN_CELL, cell], list(PLAIN), Limits(wall_s=30, cell_s=20, cpu_s=30))
    assert r.status == "ok", r
    _assert_plain(r)


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
    r = _run([PLAIN_CELL, cell], list(PLAIN), Limits(wall_s=30, cell_s=20, cpu_s=30))
    assert r.status == "ok", r
    _assert_plain(r)


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
    r = _run([PLAIN_CELL, SABOTEUR], [*PLAIN, "big", "other"])
    assert r.status == "ok", r
    _assert_plain(r)
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
    r = _run([cell], ["probe"])
    assert r.status == "ok", r
    assert r.isolation.get("conversion_filter") is True
    err = r.answers["probe"].error
    assert "'setitimer': (-1, 1)" in err, err          # EPERM
    assert "'sigmask': 1" in err, err
    assert "'thread': -1" in err, err
