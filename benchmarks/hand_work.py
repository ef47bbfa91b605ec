"""Benchmark: hand work of every family and level, the source of the README's budget table.

    python benchmarks/hand_work.py [--seeds 300] [--markdown] [--family NAME ...]

For each family × level it draws ``--seeds`` variants (seeds 0..N-1, through the
distractor screen and the budget, as students get them) and prints the median and the
90th percentile of each measure of ``Family.size_budget`` and of ``answer_entries``
(every number the student writes by hand: all entries of all answers), beside the
level's budget. ``--markdown`` prints the README's table. Measures, not assertions (the
assertions are in tests/test_budgets.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from convpset.problems import family_names, get_family, variant_from_seed  # noqa: E402
from convpset.problems.checking import solved  # noqa: E402
from convpset.problems.contract import answer_entries  # noqa: E402

ENTRIES = "answer_entries"


def measures(name: str, seed: int, level: int) -> dict[str, float]:
    """The family's own hand-work measures of one seed, plus :data:`ENTRIES`."""
    fam = get_family(name)
    v = variant_from_seed(name, seed, level)
    return dict(fam.size_budget(v)) | {ENTRIES: float(answer_entries(solved(fam, v)))}


@dataclass(frozen=True)
class Row:
    """One family × level: per measure (median, p90, max) and the budget (None: none)."""

    family: str
    level: int
    stats: dict[str, tuple[float, float, float]]
    budget: dict[str, float]


def row(name: str, level: int, seeds: Iterable[int]) -> Row:
    samples = [measures(name, s, level) for s in seeds]
    keys = list(dict.fromkeys(k for m in samples for k in m))
    stats = {}
    for k in keys:
        vals = np.array([m[k] for m in samples if k in m], dtype=float)
        stats[k] = (float(np.median(vals)), float(np.percentile(vals, 90)), float(vals.max()))
    return Row(name, level, stats, dict(get_family(name).budgets.get(level, {})))


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() or abs(x) >= 100 else f"{x:,.1f}"


def markdown(rows: list[Row]) -> str:
    lines = ["| family | level | answer entries: median / p90 | budget: measure ≤ cap "
             "(median / p90 over the seeds) |", "|---|---|---|---|"]
    for r in rows:
        med, p90, _ = r.stats[ENTRIES]
        cells = [f"{k} ≤ {_num(cap)} ({_num(r.stats[k][0])} / {_num(r.stats[k][1])})"
                 for k, cap in r.budget.items() if k in r.stats]
        lines.append(f"| `{r.family}` | {r.level} | {_num(med)} / {_num(p90)} | "
                     f"{', '.join(cells)} |")
    return "\n".join(lines)


def plain(rows: list[Row]) -> str:
    out = [f"{'family':18} lv {'measure':16} {'median':>10} {'p90':>10} {'max':>10} {'budget':>10}"]
    for r in rows:
        for k, (med, p90, mx) in r.stats.items():
            cap = r.budget.get(k)
            out.append(f"{r.family:18} {r.level:2} {k:16} {_num(med):>10} {_num(p90):>10} "
                       f"{_num(mx):>10} {'' if cap is None else _num(cap):>10}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--family", nargs="*")
    a = ap.parse_args(argv)
    names = a.family or family_names()
    rows = [row(n, lv, range(a.seeds)) for n in names for lv in get_family(n).levels]
    print(markdown(rows) if a.markdown else plain(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
