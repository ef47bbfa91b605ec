"""Benchmark: the grading process's own work on notebooks built to be as costly as the caps allow.

    python benchmarks/bench_bounded.py [--cells 5000] [--rows 1600000]

Every scenario is built here and graded in a fresh Python process (one batch: a correct
notebook plus the scenario's notebook), which reports

* ``cpu_s``: CPU seconds of the grading process itself inside ``grade_folder``
  (``resource.getrusage(RUSAGE_SELF)``: the sandboxed children, which run the student's
  code under their own limits, are not counted);
* ``maxrss_mb``: the grading process's peak RSS (``VmHWM``).

The scenarios (what a student controls, each pushed to what the sandbox lets through):

* ``normal``: two correct notebooks (the baseline every other row is compared with);
* ``ragged``: ``shapes_3`` is a ragged list of ``--rows`` rows (the 20 MB answer cap is
  the only limit the sandbox puts on it), and ``--cells`` extra cells that each raise an
  exception whose message holds TeX and HTML;
* ``huge_array``: ``W_1`` is a 2.4 M-entry float array (19 MB);
* ``huge_ints``: the notebook's JSON holds 4,000 integers of 4,000 digits each;
* ``deep``: the notebook's JSON nests 100,000 lists deep;
* ``many_cells``: 200,000 tiny code cells (``pass``), as many as fit under 20 MB.

Results go to benchmarks/out/bounded.json and are printed as a table (the README's
figures). Run on an idle machine; the figures are per process, not ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXAMPLE = REPO / "examples" / "course"
ASSIGNMENT = "conv1"
SCENARIOS = ("normal", "ragged", "huge_array", "huge_ints", "deep", "many_cells")
CHEAP = "s001"        # the correct notebook graded in every batch
TARGET = "s002"       # the scenario's student


def correct_notebook(course_root: Path, sid: str, override: dict[int, str] | None = None,
                      extra_cells: list[str] = ()) -> dict:
    """``sid``'s personal notebook with correct answers; ``override[n]`` appended to the
    answer cell of problem ``n``; ``extra_cells`` appended as code cells at the end."""
    import nbformat

    from convpset.notebooks.build import answer_cell_id, build_notebook
    from convpset.notebooks.course import load_course
    from convpset.notebooks.simulate import _literal_lines, _values
    from convpset.notebooks.variants import problems_for

    course = load_course(course_root)
    spec = course.assignment(ASSIGNMENT)
    probs = problems_for(course, spec, sid)
    nb = build_notebook(course, ASSIGNMENT, spec.title, probs, sid, sid.upper(), "en", "personal")
    for cell in nb.cells:
        for p in probs:
            if cell.get("id") == answer_cell_id(p.number):
                lines = _literal_lines(p, _values(p, "correct"))
                if override and p.number in override:
                    lines.append(override[p.number])
                cell.source = "\n".join(lines)
    for i, src in enumerate(extra_cells):
        nb.cells.append(nbformat.v4.new_code_cell(src, id=f"extra-{i}"))
    return nb


def build(base: Path, scenario: str, rows: int, cells: int) -> Path:
    """A course with two students, and the scenario's notebook for the second."""
    from convpset.notebooks.build import dumps

    course = base / "course"
    course.mkdir(parents=True)
    shutil.copy2(EXAMPLE / "pset.toml", course / "pset.toml")
    (course / "roster.csv").write_text("student_id,first_name,last_name,email\n"
                                       f"{CHEAP},A,B,a@example.edu\n{TARGET},C,D,c@example.edu\n")
    sub = course / "submitted"
    for sid in (CHEAP, TARGET):
        (sub / sid / ASSIGNMENT).mkdir(parents=True)
    path = sub / TARGET / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    (sub / CHEAP / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text(
        dumps(correct_notebook(course, CHEAP)))
    if scenario == "normal":
        path.write_text(dumps(correct_notebook(course, TARGET)))
    elif scenario == "ragged":
        shapes = f"shapes_3 = [(7,) if i % 2 else (5, 3) for i in range({rows})]"
        raising = [f"raise ValueError(r'cell {i}: $\\frac{{a}}{{b}}^{{{i}}}$ "
                   f"\\text{{<img src=x onerror=alert(1)>}} **bold** [l](http://x)')"
                   for i in range(cells)]
        path.write_text(dumps(correct_notebook(course, TARGET, {3: shapes}, raising)))
    elif scenario == "huge_array":
        path.write_text(dumps(correct_notebook(
            course, TARGET, {1: "W_1 = np.arange(2_400_000, dtype=float).reshape(1200, 2000)"})))
    elif scenario == "huge_ints":
        nb = correct_notebook(course, TARGET)
        text = dumps(nb)
        ints = ",".join("9" * 4000 for _ in range(4000))
        path.write_text(text[:-2] + f', "x_ints": [{ints}]' + text[-2:])
    elif scenario == "deep":
        text = dumps(correct_notebook(course, TARGET))
        path.write_text(text[:-2] + ', "x_deep": ' + "[" * 100_000 + "]" * 100_000 + text[-2:])
    elif scenario == "many_cells":
        nb = correct_notebook(course, TARGET)
        text = dumps(nb)
        cell = json.dumps({"cell_type": "code", "execution_count": None, "metadata": {},
                           "outputs": [], "source": "pass"})
        at = text.index('"cells": [') + len('"cells": [')
        path.write_text(text[:at] + ",".join([cell] * 200_000) + "," + text[at:])
    return course


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries the larger RSS of
    the process that forked us across ``exec`` into it, and the parent here has just
    built 20 MB notebooks."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def measure_one(scenario: str, course_root: Path) -> dict:
    """Grade one scenario's batch (built by :func:`build` in another process, so that its
    peak RSS is not counted) in this process; the grading process's own figures."""
    from convpset.autograder.batch import BatchOptions, grade_folder
    from convpset.autograder.sandbox import Limits
    from convpset.notebooks.course import load_course

    course = load_course(course_root)
    # generous limits: the student's child may use all it is allowed; only the grading
    # process is measured
    limits = Limits(wall_s=120, cell_s=5, cpu_s=60, convert_cpu_s=30)
    opts = BatchOptions(out=course_root / "graded", jobs=1, limits=limits)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    report = grade_folder(course_root / "submitted", course, ASSIGNMENT, opts)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    page = course_root / "graded" / "feedback" / f"{TARGET}.html"
    row = next(r for r in report.results if r.student_id == TARGET)
    return {"scenario": scenario,
            "cpu_s": round((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), 3),
            "wall_s": round(wall, 2), "maxrss_mb": peak_rss_mb(),
            "page_kb": round(page.stat().st_size / 1024, 1) if page.exists() else None,
            "score": row.score, "flags": list(row.flags),
            "notes": len(row.notes) + sum(len(p.notes) for p in row.problems)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_600_000)
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--one", choices=SCENARIOS, help=argparse.SUPPRESS)
    ap.add_argument("--course", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.course)))
        return
    out = []
    for sc in args.scenarios:
        base = Path(tempfile.mkdtemp(prefix=f"bench-bounded-{sc}-"))
        try:
            course = build(base, sc, args.rows, args.cells)
            proc = subprocess.run([sys.executable, __file__, "--one", sc, "--course", str(course)],
                                  capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
        finally:
            shutil.rmtree(base, ignore_errors=True)
        if proc.returncode != 0:
            raise SystemExit(f"{sc} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        out.append(res)
        print(f"{sc:>11}: grading-process CPU {res['cpu_s']:6.3f} s  peak RSS "
              f"{res['maxrss_mb']:6.1f} MB  page {res['page_kb']} kB  score {res['score']}  "
              f"notes {res['notes']}  flags {','.join(res['flags'])}", flush=True)
    (REPO / "benchmarks" / "out").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "out" / "bounded.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
