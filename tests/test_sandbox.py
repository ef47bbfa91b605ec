"""Tests for autograder.sandbox (hostile student code must never hurt the grader)."""

from __future__ import annotations

import json
import os
import resource
import socket
import struct
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# The repo root may not be on sys.path when run as plain ``pytest`` (no rootdir config).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from convpset.autograder import sandbox as sb  # noqa: E402
from convpset.autograder.sandbox import Limits, run_cells, run_many  # noqa: E402
from convpset.autograder.sandbox.result import BadResult, parse  # noqa: E402

FAST = Limits(wall_s=10, cpu_s=5, memory_mb=512)


def run(code: str | list[str], names, limits: Limits = FAST, **kw):
    cells = [textwrap.dedent(code)] if isinstance(code, str) else [textwrap.dedent(c) for c in code]
    return run_cells(cells, names, limits, **kw)


@pytest.fixture(scope="module")
def report():
    return sb.isolation_report()


def test_isolation_report(report):
    assert report["probe_status"] == "ok"
    assert report["setsid"] and report["private_tmp"] and report["output_redirected"]
    assert report["no_new_privs"]
    assert report["rlimits"]["RLIMIT_CPU"] == 10 and report["rlimits"]["RLIMIT_NPROC"] == 16
    if sb.landlock_available():
        assert report["landlock"] is True
    if os.geteuid() == 0:
        assert report["setuid"] is True and report["netns"] is True


def test_normal_answers():
    r = run(
        """
        import numpy as np
        import torch
        arr = np.arange(6).reshape(2, 3)
        t = torch.ones(2, 2, requires_grad=True) * 2
        nested = [[1, 2], [3, 4.5]]
        i = 7
        f = 2.5
        s = np.float64(1.25)
        b = True
        barr = np.array([True, False])
        none = None
        print("hello")
        """,
        ["arr", "t", "nested", "i", "f", "s", "b", "barr", "none", "missing"],
        # a cold `import torch` (no preloaded template here) can take several CPU seconds
        # on a loaded CI machine: lift the per-cell limits, this test is about conversion
        Limits(wall_s=60, cell_s=60, cell_cpu_s=30, cpu_s=40, memory_mb=2048),
    )
    assert r.status == "ok" and not r.cell_errors, r
    a = r.answers
    assert a["arr"].source_type == "numpy.ndarray" and a["arr"].value.dtype == np.int64
    np.testing.assert_array_equal(a["arr"].value, np.arange(6).reshape(2, 3))
    assert a["t"].source_type == "torch.Tensor" and a["t"].value.dtype == np.float64
    np.testing.assert_array_equal(a["t"].value, np.full((2, 2), 2.0))
    assert a["nested"].source_type == "list"
    np.testing.assert_array_equal(a["nested"].value, [[1, 2], [3, 4.5]])
    assert a["i"].source_type == "int" and a["i"].value.dtype == np.int64 and a["i"].value == 7
    assert a["f"].source_type == "float" and a["f"].value == 2.5
    assert a["s"].source_type == "numpy.float64" and a["s"].value == 1.25
    assert a["b"].source_type == "bool" and a["b"].value.dtype == np.bool_ and a["b"].value
    assert a["barr"].value.dtype == np.bool_
    assert a["none"].present and a["none"].source_type == "NoneType" and a["none"].value is None
    assert "None" in a["none"].error
    assert not a["missing"].present and a["missing"].value is None
    assert "hello" in r.stdout_tail
    for ans in a.values():
        assert ans.value is None or type(ans.value) is np.ndarray


def test_preloaded_torch():
    r = run("import torch\nt = torch.arange(4)\n", ["t"], preload_torch=True)
    assert r.status == "ok", r
    assert r.answers["t"].value.dtype == np.int64
    np.testing.assert_array_equal(r.answers["t"].value, [0, 1, 2, 3])


def test_raising_cell_then_answer_and_syntax_error():
    r = run(["x = 1\n", "raise ValueError('boom')\n", "def f(:\n", "%matplotlib inline\n!ls\ny = x + 1\n"],
            ["x", "y"])
    assert r.status == "ok"
    assert r.answers["x"].value == 1 and r.answers["y"].value == 2
    assert [(e.index, e.ename) for e in r.cell_errors] == [(1, "ValueError"), (2, "SyntaxError")]
    assert r.cell_errors[0].evalue == "boom"
    assert "boom" in r.cell_errors[0].traceback_tail


def test_sys_exit_and_keyboard_interrupt_continue():
    r = run(["a = 1\n", "import sys\nsys.exit(0)\n", "b = 2\n", "raise KeyboardInterrupt\n",
             "class E(BaseException): pass\nraise E('x')\n", "c = 3\n"], ["a", "b", "c"])
    assert r.status == "ok"
    assert [r.answers[n].value for n in "abc"] == [1, 2, 3]
    assert [e.ename for e in r.cell_errors] == ["SystemExit", "KeyboardInterrupt", "E"]
    assert [e.index for e in r.cell_errors] == [1, 3, 4]


def test_os_exit():
    r = run(["a = 1\n", "import os\nos._exit(3)\n"], ["a"])
    assert r.status == "exited"
    assert r.detail == "3"
    assert r.answers["a"].value is None


def test_timeout():
    r = run("import time\nwhile True:\n    time.sleep(0.1)\n", ["a"], Limits(wall_s=1.5))
    assert r.status == "timeout"
    assert r.duration_s > 1.4


def test_cpu_limit():
    # wall limit far beyond the CPU limit: on a loaded machine 1 s of CPU can take long
    r = run("while True:\n    pass\n", ["a"], Limits(wall_s=120, cell_s=120, cell_cpu_s=5, cpu_s=1))
    assert r.status == "cpu_limit", r


def test_cell_cpu_limit_stops_only_the_looping_cell():
    r = run(["a = 1\n", "while True:\n    pass\n", "b = a + 1\n"], ["a", "b"],
            Limits(wall_s=20, cell_s=10, cell_cpu_s=0.5, cpu_s=10))
    assert r.status == "ok", r
    assert [(e.index, e.ename) for e in r.cell_errors] == [(1, "CellTimeout")]
    assert r.answers["b"].value == 2


# A module whose first import burns ~0.8 s of CPU, like matplotlib or scipy do.
SLOW_MODULE = (
    "import sys, os, time\n"
    "sys.path.insert(0, os.getcwd())\n"
    "with open('slow_lib.py', 'w') as f:\n"
    "    f.write('import time\\nt = time.process_time()\\n'\n"
    "            'while time.process_time() - t < 0.8:\\n    pass\\nVALUE = 7\\n')\n"
)


@pytest.mark.parametrize("import_budget, ok", [(5.0, True), (0.0, False), (0.3, False)])
def test_first_imports_run_on_their_own_cpu_budget(import_budget, ok):
    """Importing a heavy library must not eat a cell's short CPU limit; the import has
    its own per-notebook budget, and a module that never finishes importing is stopped."""
    lim = Limits(wall_s=20, cell_s=10, cell_cpu_s=0.4, import_cpu_s=import_budget, cpu_s=10)
    r = run([SLOW_MODULE, "import slow_lib\nx = slow_lib.VALUE\n", "y = 1\n",
             "import slow_lib\nw = 2\n"], ["x", "y", "w"], lim)
    assert r.status == "ok", r
    assert r.answers["y"].value == 1
    if ok:
        assert r.answers["x"].value == 7 and not r.cell_errors, r.cell_errors
        assert r.answers["w"].value == 2      # an already-imported module costs nothing
    else:
        assert not r.answers["x"].present
        assert [e.ename for e in r.cell_errors][0] == "CellTimeout"


def test_import_clock_restores_the_cell_clock():
    """After a paused import the cell's own remaining CPU time applies again."""
    lim = Limits(wall_s=20, cell_s=10, cell_cpu_s=0.5, import_cpu_s=5, cpu_s=10)
    r = run(["import json, decimal\nwhile True:\n    pass\n", "z = 3\n"], ["z"], lim)
    assert [e.ename for e in r.cell_errors] == ["CellTimeout"] and r.answers["z"].value == 3


def test_cpu_limit_sigxcpu_ignored():
    r = run("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n", ["a"],
            Limits(wall_s=120, cell_s=120, cell_cpu_s=5, cpu_s=1))
    assert r.status == "cpu_limit", r


@pytest.mark.parametrize("how", ["print", "oswrite"])
def test_output_flood(how):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = "print('x' * 1_000_000)" if how == "print" else "os.write(1, b'y' * 1_000_000)"
    r = run(["import os\nfor _ in range(100):\n    " + line + "\n", "ans = 42\n"], ["ans"])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.status == "output_flood"
    assert r.answers["ans"].value == 42
    assert r.cell_errors and r.cell_errors[0].ename == "OSError"
    assert len(r.stdout_tail) < 2200
    assert after - before < 50_000  # KiB: the parent never loaded the flood


def test_memory_bytearray():
    r = run(["a = 5\n", "x = bytearray(10**11)\n", "b = 6\n"], ["a", "b"], Limits(wall_s=10, memory_mb=256))
    assert r.status == "memory"
    assert r.cell_errors[0].ename == "MemoryError"
    assert r.answers["a"].value == 5 and r.answers["b"].value == 6


def test_memory_growing_list():
    r = run(["a = 5\n", "l = []\nwhile True:\n    l.append(bytearray(10**6))\n"], ["a"],
            Limits(wall_s=15, memory_mb=256))
    assert r.status in ("memory", "crashed"), r
    if r.status == "memory" and r.cell_errors:
        assert r.cell_errors[0].ename == "MemoryError"


def test_fork_bomb_contained_and_batch_continues():
    """seccomp denies process creation (fork, vfork, clone without CLONE_THREAD, exec):
    a fork bomb or a daemon fails in its own cell; nothing is left running."""
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    daemon = ("import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n        os.setsid()\n"
              "        time.sleep(1000)\n")
    shell = "import subprocess\nsubprocess.run(['sleep', '1000'])\n"
    tasks = [([bomb, "after = 1\n"], ["after"]), (["ans = 1\n", daemon, shell], ["ans"]),
             (["ans = 2\n"], ["ans"])]
    res = list(run_many(tasks, Limits(wall_s=30, cell_s=5, cpu_s=10), jobs=2))
    assert res[0].status in ("ok", "timeout", "cpu_limit")
    assert res[1].status == "ok" and res[1].answers["ans"].value == 1
    assert res[2].status == "ok" and res[2].answers["ans"].value == 2
    if res[1].isolation.get("seccomp"):
        assert res[0].answers["after"].value == 1, res[0]   # the bomb cost one cell only
        assert [e.ename for e in res[1].cell_errors] == ["PermissionError", "PermissionError"]
    if os.geteuid() == 0:  # nothing left running under the sandbox uids
        left = [p for p in os.listdir("/proc") if p.isdigit() and _uid(p) >= sb._UID_BASE
                and _uid(p) < sb._UID_BASE + sb._MAX_SLOTS]
        assert left == []


def _uid(p):
    try:
        return os.stat("/proc/" + p).st_uid
    except OSError:
        return -1


def test_thread_limit():
    r = run("import threading, time\nn = 0\ntry:\n    for _ in range(100):\n"
            "        threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n        n += 1\n"
            "except RuntimeError:\n    pass\n", ["n"])
    assert r.status == "ok"
    if os.geteuid() == 0:
        assert r.answers["n"].value < 16


def test_monkeypatching_does_not_break_extraction():
    r = run(
        """
        import numpy as np, builtins
        a = np.arange(3.0)
        b = [[1, 2], [3, 4]]
        c = 5
        np.asarray = lambda *x, **k: 0
        np.array = None
        np.ascontiguousarray = None
        builtins.isinstance = lambda *x: True
        builtins.len = lambda x: 0
        builtins.type = lambda *x: int
        """,
        ["a", "b", "c"],
    )
    assert r.status == "ok", r
    np.testing.assert_array_equal(r.answers["a"].value, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(r.answers["b"].value, [[1, 2], [3, 4]])
    assert r.answers["c"].value == 5


def test_patched_modules_are_restored_in_the_child():
    """The template's snapshot of numpy/builtins is reused only while a namespace is
    unchanged (its PEP 509 version tag); a patched one is put back before conversion."""
    r = run(["import numpy as np, json\nnp.mean = None\njson.dumps = None\n",
             "import numpy as np\nrestored_later = 1\n"], ["restored_later"])
    assert r.status == "ok" and r.answers["restored_later"].value == 1


def test_dict_version_tag_tracks_changes():
    from convpset.autograder.sandbox.child import _dict_version

    d = {"a": 1}
    v = _dict_version(d)
    if sys.version_info[:2] in ((3, 11), (3, 12)):
        assert v is not None and _dict_version(d) == v       # reading changes nothing
        d["a"] = 2
        assert _dict_version(d) != v
        v2 = _dict_version(d)
        del d["a"]
        assert _dict_version(d) != v2
    else:
        assert v is None


def test_weird_objects():
    r = run(
        """
        import numpy as np
        class MyWeird:
            def __eq__(self, other):
                return True
            def __array__(self, *a, **k):
                while True:
                    pass
        class Sub(np.ndarray):
            def __getitem__(self, i):
                raise RuntimeError
        w = MyWeird()
        sub = np.arange(4).view(Sub)
        obj = np.array([1, "a"], dtype=object)
        strs = np.array(["a", "b"])
        s = "hello"
        cplx = 1 + 2j
        carr = np.array([1j])
        ragged = [[1, 2], [3]]
        deep_ragged = [[1, [2]], [3]]
        inlist = [1, w]
        nones = [1, None]
        """,
        ["w", "sub", "obj", "strs", "s", "cplx", "carr", "ragged", "deep_ragged", "inlist", "nones"],
    )
    assert r.status == "ok", r
    a = r.answers
    assert a["w"].source_type == "MyWeird" and a["w"].value is None and "MyWeird" in a["w"].error
    assert a["sub"].source_type == "Sub" and type(a["sub"].value) is np.ndarray
    np.testing.assert_array_equal(a["sub"].value, np.arange(4))
    assert "object dtype" in a["obj"].error
    assert "string" in a["strs"].error and "string" in a["s"].error
    assert "complex" in a["cplx"].error and "complex" in a["carr"].error
    # rows of numbers of different lengths (layer shapes) come back as rows ...
    assert a["ragged"].error is None and a["ragged"].value is None
    assert [r.tolist() for r in a["ragged"].rows] == [[1.0, 2.0], [3.0]]
    # ... anything more irregular is a format error
    assert "ragged" in a["deep_ragged"].error
    assert "MyWeird" in a["inlist"].error and "None" in a["nones"].error
    for n in ["w", "obj", "strs", "s", "cplx", "carr", "deep_ragged", "inlist", "nones"]:
        assert a[n].present and a[n].value is None


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=["tmp", "repo"])
def other_student(request):
    """A world-readable/writable folder outside the sandbox: in /tmp (which a sandbox sees
    as its own empty tmpfs) and beside the code (Landlock must still block it)."""
    d = tempfile.mkdtemp(prefix="other-student-", dir=None if request.param == "tmp" else REPO)
    os.chmod(d, 0o777)
    nb = os.path.join(d, "nb.ipynb")
    secret = os.path.join(d, "secret.txt")
    for p, text in ((nb, "original notebook"), (secret, "TOP-SECRET-KEY")):
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o666)
    yield d, nb, secret
    import shutil
    shutil.rmtree(d)


def test_cannot_write_or_delete_outside(other_student):
    d, nb, _ = other_student
    r = run([f"open({nb!r}, 'w').write('hacked')\n", f"import os\nos.remove({nb!r})\n",
             f"open({os.path.join(d, 'new.txt')!r}, 'w')\n", "open('mine.txt', 'w').write('ok')\nok = 1\n"],
            ["ok"])
    assert r.answers["ok"].value == 1  # own temp dir is writable
    assert [e.index for e in r.cell_errors] == [0, 1, 2]
    hidden = d.startswith("/tmp/") and r.isolation.get("empty_scratch_dirs")
    assert all(e.ename == ("FileNotFoundError" if hidden else "PermissionError")
               for e in r.cell_errors), r.cell_errors
    assert open(nb).read() == "original notebook"
    assert sorted(os.listdir(d)) == ["nb.ipynb", "secret.txt"]


def test_cannot_read_secret(other_student, tmp_path):
    _, _, secret = other_student
    r = run([f"leak = open({secret!r}).read()\nprint(leak)\n", "import os\nlisting = os.listdir('/work')\n",
             "import glob\nn = len(glob.glob('/tmp/*'))\n"], ["leak", "n"])
    assert not r.answers["leak"].present
    assert r.cell_errors[0].ename in ("PermissionError", "FileNotFoundError")
    assert "TOP-SECRET" not in r.stdout_tail
    assert r.cell_errors[1].ename == "PermissionError"
    assert r.answers["n"].value == 0


def test_no_network():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        r = run(f"import socket\nok = 0\ns = socket.socket()\ns.settimeout(2)\n"
                f"s.connect(('127.0.0.1', {port}))\nok = 1\n", ["ok"])
    finally:
        srv.close()
    assert r.answers["ok"].value == 0
    assert r.cell_errors and r.cell_errors[0].ename in ("PermissionError", "OSError", "ConnectionRefusedError")


def test_concurrent_sandboxes_cannot_talk_over_abstract_unix_sockets():
    """Sandboxes may share the template's empty network namespace (where abstract unix
    sockets live); Landlock scoping must still keep two running notebooks apart."""
    listener = ("import socket, time\ngot = 0\ns = socket.socket(socket.AF_UNIX)\n"
                "s.bind('\\0pset-collude')\ns.listen(1)\ns.settimeout(4)\n"
                "try:\n    c, _ = s.accept()\n    got = 1\nexcept OSError:\n    pass\n")
    talker = ("import socket, time\ntime.sleep(1)\nsent = 0\nc = socket.socket(socket.AF_UNIX)\n"
              "c.connect('\\0pset-collude')\nsent = 1\n")
    res = list(run_many([([listener], ["got"]), ([talker], ["sent"])],
                        Limits(wall_s=15, cell_s=8, cpu_s=5), jobs=2))
    rep = res[0].isolation
    if not (rep.get("netns_shared") or rep.get("landlock_scoped_signal_abstract_unix")):
        # no shared namespace and no scoping: each child has its own namespace (root) ...
        assert os.geteuid() != 0 or rep.get("netns") is True
    assert res[1].answers["sent"].value == 0, res[1]
    assert res[0].answers["got"].value == 0
    assert res[1].cell_errors and res[1].cell_errors[0].ename in ("PermissionError", "ConnectionRefusedError",
                                                                  "FileNotFoundError", "OSError")


def test_output_is_captured_unbuffered_and_never_fails_to_encode():
    """print() of text the terminal could not encode must not raise in student code, and
    output written just before a crash is kept (line buffering)."""
    r = run(["print('lone surrogate: \\ud800', 'кириллица')\nok = 1\n",
             "import sys\nprint('before exit')\nsys.stderr.write('to stderr\\n')\nimport os\nos._exit(4)\n"],
            ["ok"])
    assert r.status == "exited"
    assert "кириллица" in r.stdout_tail and "\\ud800" in r.stdout_tail
    assert "before exit" in r.stdout_tail and "to stderr" in r.stdout_tail


def test_garbage_on_result_fd_is_bad_result():
    r = run("import os\nos.write(3, b'\\x00' * 100)\nans = 1\n", ["ans"])
    assert r.status == "bad_result"
    assert r.answers["ans"].value is None


def test_run_many_no_cross_contamination():
    good = (["import numpy as np\nans = np.asarray([1, 2, 3]) * 2\nleak = globals().get('LEAK', 0) + getattr(__import__('builtins'), 'LEAK', 0)\n"],
            ["ans", "leak"])
    evil = (["import numpy as np, builtins\nLEAK = 99\nbuiltins.LEAK = 99\nnp.asarray = lambda *a, **k: 'x'\n"
             "import os\nos.environ['LEAK'] = '1'\nans = 1\n"], ["ans"])
    exiter = (["import os\nos._exit(1)\n"], ["ans"])
    sleeper = (["import time\ntime.sleep(100)\n"], ["ans"])
    killer = (["import os, signal\nfor p in (os.getppid(), 1):\n    try:\n        os.kill(p, signal.SIGKILL)\n"
               "    except OSError:\n        pass\nos.killpg(0, signal.SIGKILL)\n"], ["ans"])
    tasks = [good, evil, good, exiter, good, sleeper, good, killer, good, evil, good]
    out = list(run_many(iter(tasks), Limits(wall_s=4), jobs=2))   # generous: a loaded machine
    assert len(out) == len(tasks)
    for task, r in zip(tasks, out, strict=True):
        if task is good:
            assert r.status == "ok", r
            np.testing.assert_array_equal(r.answers["ans"].value, [2, 4, 6])
            assert r.answers["leak"].value == 0
        elif task is evil:
            assert r.status == "ok" and r.answers["ans"].value == 1
    assert out[3].status == "exited" and out[5].status == "timeout" and out[7].status == "crashed"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_rejects_garbage(data):
    for buf in (data, b"AGSB" + data, b"AGSB" + struct.pack("<Q", len(data)) + data):
        try:
            parse(buf, ["a", "b"], Limits())
        except BadResult:
            pass


def test_parse_validates_shapes():
    def msg(hdr, payload=b""):
        h = json.dumps(hdr).encode()
        return b"AGSB" + struct.pack("<Q", len(h)) + h + payload

    ent = {"name": "a", "present": True, "source_type": "x", "dtype": "<f8", "shape": [2], "error": None}
    ok = parse(msg({"answers": [ent]}, np.array([1.0, 2.0]).tobytes()), ["a"], Limits())
    np.testing.assert_array_equal(ok[0]["a"].value, [1.0, 2.0])
    assert ok[0]["a"].value.flags.writeable and ok[0]["a"].value.flags.owndata
    bad = [dict(ent, dtype="|O"), dict(ent, shape=[3]), dict(ent, shape=[-1]), dict(ent, name="b"),
           dict(ent, shape=[10**12, 10**12])]
    for b in bad:
        with pytest.raises(BadResult):
            parse(msg({"answers": [b]}, np.array([1.0, 2.0]).tobytes()), ["a"], Limits())
    with pytest.raises(BadResult):  # trailing bytes
        parse(msg({"answers": [ent]}, b"\0" * 24), ["a"], Limits())
