"""Benchmark: our `grade` against real `nbgrader autograde` on the same submissions.

    python benchmarks/bench_grade.py [--n-nbgrader 40] [--n-large 1000] [--jobs 2]
    python benchmarks/bench_grade.py --skip-nbgrader --baseline ../base-checkout --rounds 3

1. builds a course of N_large simulated students (the sample course's mix: correct,
   mistakes, broken, hostile) and times the generation of their personal notebooks;
2. runs `nbgrader generate_assignment` + `nbgrader autograde` on the first N_nbgrader
   submissions (wall time, a fresh Jupyter kernel per notebook as nbgrader does) and our
   `grade` on the same folder;
3. checks that both give identical scores for every student and every part;
4. prints notebooks/s of both, the ratio, `grade` alone at N_large, and the peak RSS of
   the `grade` process at two sizes (it must not grow with the number of notebooks).
5. with ``--baseline DIR`` (another checkout, e.g. ``git worktree add DIR main``): times
   ``grade`` on the same N_large notebooks with that checkout's code and with this one,
   alternating, ``--rounds`` times each, and checks both give the same scores -- a
   before/after comparison on a shared machine, where only runs side by side compare.
Results go to benchmarks/out/results.json. Run on an idle machine: both sides are timed
in the same run on the same machine, so the ratio is what matters.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from convpset.notebooks.course import init_course  # noqa: E402
from convpset.notebooks.generate import generate  # noqa: E402
from convpset.notebooks.simulate import simulate  # noqa: E402

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def run(cmd: list[str], cwd: Path, ok_codes: tuple[int, ...] = (0,),
        env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command (RSS: largest of it and its children)."""
    with tempfile.TemporaryFile("w+") as log:   # a file, not a pipe: nbgrader logs a lot
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env or ENV, stdout=log,
                                stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in ok_codes:
            log.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read()[-3000:]}")
    return wall, usage.ru_maxrss


def subset_course(src: Path, dst: Path, students: list[str]) -> None:
    """A copy of the course with only ``students``' submissions (same secret, roster)."""
    dst.mkdir(parents=True)
    for name in ("pset.toml", "nbgrader_config.py"):
        shutil.copy2(src / name, dst / name)
    keep = set(students)
    lines = (src / "roster.csv").read_text().splitlines(keepends=True)
    (dst / "roster.csv").write_text(lines[0] + "".join(
        ln for ln in lines[1:] if ln.split(",", 1)[0] in keep))
    shutil.copytree(src / "source", dst / "source")
    for s in students:
        shutil.copytree(src / "submitted" / s, dst / "submitted" / s)


def nbgrader_scores(course: Path, assignment: str) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    out: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(assignment):
            parts = {}
            for nb in sub.notebooks:
                for g in nb.grades:
                    name = g.name.split("_", 2)[2]          # test_N_PART -> PART
                    parts[name] = round(float(g.score), 2)
            out[sub.student.id] = parts
    return out


def our_scores(grades_dir: Path) -> dict[str, dict[str, float]]:
    out = {}
    for line in (grades_dir / "journal.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "no_submission" in r["flags"]:
            continue
        out[r["student_id"]] = {p["part"]: round(p["score"], 2)
                                for prob in r["problems"] for p in prob["parts"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-nbgrader", type=int, default=40)
    ap.add_argument("--n-large", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--skip-nbgrader", action="store_true",
                    help="no nbgrader comparison (steps 2-3)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout to time `grade` against (step 5)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs per side (step 5)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pset-bench-"))
    res: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                            f"Python {platform.python_version()}",
                 "jobs": args.jobs}
    try:
        big = tmp / "big"
        course = init_course(big, name="bench", students=args.n_large, seed=7)
        t0 = time.perf_counter()
        generate(course, "conv1", jobs=args.jobs)
        res["generate_s"] = round(time.perf_counter() - t0, 2)
        res["generate_n"] = args.n_large
        print(f"generation of {args.n_large} personal notebooks: {res['generate_s']} s")
        made = simulate(course, "conv1")
        students = [m.student_id for m in made]
        # nbgrader runs student code in a plain kernel with no limits: a memory bomb there
        # takes the machine down, a flood is stored in the notebook. Compare on the rest of
        # the mix (correct, mistakes, partial, empty, broken format, swapped, unreadable).
        safe = [m.student_id for m in made if not m.kind.startswith("hostile_")]

        if args.baseline is not None:
            res["baseline"] = _against_baseline(big, args.baseline, args.rounds, args.jobs)
        if args.skip_nbgrader:
            return
        small = tmp / "small"
        subset_course(big, small, safe[: args.n_nbgrader])
        run(["nbgrader", "generate_assignment", "conv1", "--force"], small)
        # exit 1: nbgrader reports the unreadable notebooks of the mix as errors
        nb_wall, _ = run(["nbgrader", "autograde", "conv1", "--create", "--force"], small,
                         ok_codes=(0, 1))
        ours_wall, _ = run(["grade", "submitted", "--out", str(small / "grades"),
                            "--no-nbgrader", "--jobs", str(args.jobs)], small)
        nbg, ours = nbgrader_scores(small, "conv1"), our_scores(small / "grades")
        # nbgrader stops with an error on unreadable files (no gradebook entry); ours gives
        # them 0 with a message. Those are listed apart, the rest must match exactly.
        nbgrader_failed = sorted(set(ours) - set(nbg))
        res["nbgrader_failed"] = nbgrader_failed
        res["grade_scores_of_those"] = {s: sum(ours[s].values()) for s in nbgrader_failed}
        mismatches = [(s, p, nbg[s].get(p), ours[s].get(p)) for s in ours if s in nbg
                      for p in ours[s] if nbg[s].get(p) != ours[s].get(p)]
        n = args.n_nbgrader
        res.update({
            "n_compared": n, "nbgrader_s": round(nb_wall, 2), "grade_s": round(ours_wall, 2),
            "nbgrader_nb_per_s": round(n / nb_wall, 3), "grade_nb_per_s": round(n / ours_wall, 2),
            "ratio": round(nb_wall / ours_wall, 1),
            "students_compared": len(ours), "score_mismatches": mismatches[:20],
            "identical_scores": not mismatches,
        })
        print(f"nbgrader autograde: {n} notebooks in {nb_wall:.1f} s ({n / nb_wall:.2f} nb/s)")
        print(f"grade:              {n} notebooks in {ours_wall:.1f} s ({n / ours_wall:.1f} nb/s)")
        print(f"ratio {res['ratio']}x; identical scores for all {len(ours) - len(nbgrader_failed)}"
              f" students nbgrader graded: {res['identical_scores']} (nbgrader failed on "
              f"{nbgrader_failed}, which grade scored {res['grade_scores_of_those']})")

        for size in (args.n_large // 10, args.n_large):
            wall, rss = run(["grade", "submitted", "--out", str(big / f"grades{size}"),
                             "--no-nbgrader", "--jobs", str(args.jobs)] + [], big) \
                if size == args.n_large else _grade_subset(big, students[:size], args.jobs, tmp)
            res[f"grade_{size}_s"] = round(wall, 2)
            res[f"grade_{size}_peak_rss_mb"] = round(rss / 1024, 1)
            print(f"grade alone, {size} notebooks: {wall:.1f} s, peak RSS {rss / 1024:.0f} MB")
        res["self_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _save(args.out, res)


def _save(out: Path, res: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


def _against_baseline(big: Path, baseline: Path, rounds: int, jobs: int) -> dict:
    """`grade` on the same notebooks with the baseline checkout's code and with ours,
    alternating (a shared machine's speed drifts); same scores required."""
    sides = {"baseline": str(baseline.resolve()), "this": str(REPO)}
    # an older checkout reads only the `student_id` header; ours reads it as well as `id`
    roster = big / "roster.csv"
    text = roster.read_text(encoding="utf-8")
    if text.startswith("id,"):
        roster.write_text("student_id," + text[len("id,"):], encoding="utf-8")
    walls: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(rounds):
        for side, path in sides.items():
            out = big / f"grades-{side}"
            shutil.rmtree(out, ignore_errors=True)
            env = {**ENV, "PYTHONPATH": path}
            load = os.getloadavg()[0]
            wall, _ = run([sys.executable, "-c", "from convpset.cli import grade_main; "
                           "import sys; sys.argv[0] = 'grade'; grade_main()", "submitted",
                           "--out", str(out), "--no-nbgrader", "--jobs", str(jobs)], big, env=env)
            walls[side].append(round(wall, 2))
            print(f"round {r + 1} {side}: {wall:.1f} s (load {load:.1f})")
    a, b = our_scores(big / "grades-baseline"), our_scores(big / "grades-this")
    same = a == b
    med = {k: sorted(v)[len(v) // 2] for k, v in walls.items()}
    print(f"median baseline {med['baseline']} s, this {med['this']} s; same scores: {same}")
    return {"walls": walls, "median": med, "same_scores": same,
            "differing": sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))[:20]}


def _grade_subset(big: Path, students: list[str], jobs: int, tmp: Path) -> tuple[float, int]:
    sub = tmp / f"sub{len(students)}"
    subset_course(big, sub, students)
    return run(["grade", "submitted", "--out", str(sub / "grades"), "--no-nbgrader",
                "--jobs", str(jobs)], sub)


if __name__ == "__main__":
    main()
