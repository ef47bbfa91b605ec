"""Cold start of the Gradescope autograder: ``run_autograder`` on one notebook, each run
a fresh layout and fresh processes (bash, the grading process, the sandbox template), as
in Gradescope's new container per submission. The file cache is warm (as it is on
Gradescope once the image is on the host).

    python benchmarks/bench_gradescope.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convpset.integrations.gradescope.bundle import build_bundle  # noqa: E402
from convpset.integrations.gradescope.local import run_local  # noqa: E402
from convpset.notebooks.course import load_course  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
CASES = {"numpy-only notebook (s001)": "s001", "torch notebook (s002)": "s002"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(load_course(EXAMPLE), "conv1", Path(tmp))
        for label, sid in CASES.items():
            nb = next((EXAMPLE / "submitted" / sid / "conv1").glob("*.ipynb"))
            times, scores = [], set()
            for _ in range(args.runs):
                run = run_local(bundle, nb, sid)
                times.append(run.seconds)
                scores.add(run.results["score"])
            print(f"{label}: run_autograder median {statistics.median(times):.2f} s, "
                  f"min {min(times):.2f} s, max {max(times):.2f} s over {args.runs} runs; "
                  f"score {sorted(scores)}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
