"""Benchmark: the sandbox alone, this checkout against another, side by side.

    python benchmarks/bench_sandbox.py --baseline DIR [--n 400] [--rounds 5] [--jobs 2]
    python benchmarks/bench_sandbox.py --baseline DIR --grade 400 [--rounds 5]

Runs ``--n`` small notebooks (a convolution by hand, the answers a plain notebook has)
through ``run_many`` in a fresh process per side (so each side starts its own template
from its own code), alternating baseline / this ``--rounds`` times. Prints, per side, the
median wall time per notebook and the median CPU per notebook of the whole template tree
(the zygote and every child it reaped), and the ratio this / baseline: of the medians,
and the median of each round's own ratio. On a shared
machine only runs side by side compare; the medians damp the drift.

``--grade N``: instead, the whole ``grade`` on a simulated course of N students (the mix of
benchmarks/bench_grade.py: correct, mistakes, broken, hostile), with the CPU time of the
whole process tree (``wait4``: grade, its workers, the templates and every sandbox) next
to the wall time -- CPU time moves far less than wall time when other work shares the
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CELLS = [
    "import numpy as np\n"
    "x = np.arange(36.0).reshape(6, 6)\nk = np.ones((3, 3))\n",
    "out = np.array([[(x[i:i + 3, j:j + 3] * k).sum() for j in range(4)] for i in range(4)])\n"
    "shape = [4, 4]\nbias = 0.5\nshapes = [(6, 6), (4, 4), (16,)]\n",
]
NAMES = ["out", "shape", "bias", "shapes", "missing"]

ONE_SIDE = """
import json, resource, sys, time
from convpset.autograder import sandbox as sb
from convpset.autograder.sandbox import Limits
n, jobs, cells, names = json.loads(sys.argv[1])
lim = Limits()
list(sb.run_many([(cells, names)] * 4, lim, jobs))          # warm the template
t0 = time.perf_counter()
res = list(sb.run_many([(cells, names)] * n, lim, jobs))
wall = time.perf_counter() - t0
sb.shutdown()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
ok = sum(r.status == "ok" and r.answers["out"].value is not None for r in res)
print(json.dumps({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "ok": ok}))
"""


def one_side(path: str, n: int, jobs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-c", ONE_SIDE, json.dumps([n, jobs, CELLS, NAMES])],
                         env=env, capture_output=True, text=True, check=True, cwd="/")
    return json.loads(out.stdout.strip().splitlines()[-1])


GRADE = ("from convpset.cli import grade_main; import sys; sys.argv[0] = 'grade'; "
         "grade_main()")


def grade_side(path: str, course: Path, jobs: int) -> dict:
    """Wall and CPU seconds (the whole tree) of one ``grade`` run with ``path``'s code."""
    import shutil
    import time

    out = course / "grades-bench"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": path}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", GRADE, "submitted", "--out", str(out),
                             "--no-nbgrader", "--jobs", str(jobs)], cwd=course, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    assert os.waitstatus_to_exitcode(status) == 0, status
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime}


def make_course(n: int) -> Path:
    import tempfile

    sys.path.insert(0, str(REPO))
    from convpset.notebooks.course import init_course
    from convpset.notebooks.generate import generate
    from convpset.notebooks.simulate import simulate

    tmp = Path(tempfile.mkdtemp(prefix="sbx-bench-"))
    folder = tmp / "c"
    course = init_course(folder, name="bench", students=n, seed=7)
    generate(course, "conv1", jobs=2)
    simulate(course, "conv1")
    roster = folder / "roster.csv"           # an older checkout reads `student_id` only
    text = roster.read_text(encoding="utf-8")
    if text.startswith("id,"):
        roster.write_text("student_id," + text[len("id,"):], encoding="utf-8")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--grade", type=int, default=0, help="time `grade` on a course of N")
    args = ap.parse_args()
    sides = {"baseline": str(args.baseline.resolve()), "this": str(REPO)}
    got: dict[str, list[dict]] = {k: [] for k in sides}
    course = make_course(args.grade) if args.grade else None
    n = args.grade or args.n
    for r in range(args.rounds):
        for side, path in sides.items():
            if course is not None:
                res = grade_side(path, course, args.jobs)
            else:
                res = one_side(path, n, args.jobs)
                assert res["ok"] == n, res
            got[side].append(res)
            print(f"round {r + 1} {side}: {1000 * res['wall'] / n:.2f} ms/notebook wall, "
                  f"{1000 * res['cpu'] / n:.2f} ms CPU (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    med = {side: {k: sorted(x[k] for x in v)[len(v) // 2] * 1000 / n
                  for k in ("wall", "cpu")} for side, v in got.items()}
    ratio = {k: med["this"][k] / med["baseline"][k] for k in ("wall", "cpu")}
    # each round's two runs are next to each other in time: their ratio drifts least
    paired = {k: sorted(t[k] / b[k] for b, t in zip(got["baseline"], got["this"], strict=True))
              for k in ("wall", "cpu")}
    print(json.dumps({"n": n, "grade": bool(course), "rounds": args.rounds,
                      "median_ms_per_notebook": med, "ratio_of_medians": ratio,
                      "median_of_round_ratios": {k: v[len(v) // 2] for k, v in paired.items()},
                      "round_ratios": paired}, indent=1))


if __name__ == "__main__":
    main()
