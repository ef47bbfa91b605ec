"""Benchmark: the copied-answers pass (autograder/similarity.py) as the class grows.

    python benchmarks/bench_similarity.py [--sizes 100 1000 10000 100000] [--course 1000]

1. synthetic prints: N students × 15 parts (the sample assignment's part count), every
   student with their own right answers, 5% of them copying one part from a classmate,
   2 parts whose answers most variants share; times :func:`find_matches` -- it should grow
   linearly (time per student × part roughly constant);
2. a real course of ``--course`` students (the sample assignment): the per-notebook cost
   the judge pays to leave prints (a hash of every part's key, and of the wrong answers).
Results go to benchmarks/out/similarity.json. Timings, not assertions.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from convpset.autograder import similarity  # noqa: E402
from convpset.notebooks.course import init_course  # noqa: E402
from convpset.notebooks.variants import problems_for  # noqa: E402
from convpset.problems.checking import Submitted, solved  # noqa: E402

PARTS = 15


def synthetic(n: int, seed: int = 0) -> dict[str, dict]:
    rng = random.Random(seed)
    prints = {}
    for i in range(n):
        right = {f"p{j}": f"{i}-{j}" for j in range(PARTS - 2)}
        right |= {f"p{PARTS - 2}": str(i % 3), f"p{PARTS - 1}": str(i % 5)}   # shared answers
        prints[f"s{i}"] = {"right": right, "wrong": {}}
    for i in rng.sample(range(n), max(1, n // 20)):
        other, part = rng.randrange(n), f"p{rng.randrange(PARTS)}"
        if other != i:
            prints[f"s{i}"]["wrong"][part] = prints[f"s{other}"]["right"][part]
    return prints


def time_find(n: int) -> dict:
    prints = synthetic(n)
    start = time.perf_counter()
    f = similarity.find_matches(prints)
    dt = time.perf_counter() - start
    return {"students": n, "parts": PARTS, "seconds": round(dt, 4),
            "us_per_student_part": round(dt / (n * PARTS) * 1e6, 3),
            "matches": len(f.matches), "ignored_parts": len(f.ignored_parts)}


def time_prints(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        c = init_course(Path(tmp) / "c", students=n, seed=7)
        spec = c.assignment("conv1")
        probs = [problems_for(c, spec, s.student_id) for s in c.roster()]
        for ps in probs:                      # the key is computed by the judge anyway
            for p in ps:
                solved(p.fam, p.variant)
        def run(prints: bool) -> float:
            start = time.perf_counter()
            for ps in probs:
                for p in ps:
                    key = solved(p.fam, p.variant)
                    answers = {part.name: Submitted.of(key[p.base_name(part.name)])
                               for part in p.parts()}
                    res = p.judge(answers)
                    if prints:
                        similarity.problem_prints(p, answers, res)
            return time.perf_counter() - start

        run(False)                            # warm the caches both runs share
        judge_only = min(run(False) for _ in range(3))
        with_judge = min(run(True) for _ in range(3))
    return {"students": n, "judge_ms_per_notebook": round(judge_only / n * 1e3, 3),
            "prints_ms_per_notebook": round((with_judge - judge_only) / n * 1e3, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    ap.add_argument("--course", type=int, default=1000)
    args = ap.parse_args()
    out = {"find_matches": [time_find(n) for n in args.sizes],
           "judge_prints": time_prints(args.course)}
    for row in out["find_matches"]:
        print(f"find_matches  {row['students']:>7} students × {PARTS} parts: "
              f"{row['seconds']:.4f} s ({row['us_per_student_part']} µs per student·part, "
              f"{row['matches']} matches)")
    jp = out["judge_prints"]
    print(f"prints in the judge: {jp['prints_ms_per_notebook']} ms per notebook "
          f"(judging itself {jp['judge_ms_per_notebook']} ms), {jp['students']} students")
    dest = REPO / "benchmarks" / "out" / "similarity.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
