"""``pset report``: one self-contained HTML page about an assignment's results, for staff.

Read from the grading journal (``grades/ASSIGNMENT/journal.jsonl``, the source of truth
that ``grade`` writes), it shows

* the score distribution and summary statistics;
* how hard every problem and answer part was (mean score, share correct, share of
  format errors);
* the most frequent misconceptions (mistake keys from ``problems/text``) with example
  students;
* variant fairness: per family, the score against one or two difficulty features of the
  student's variant, and a Kruskal–Wallis test (permutation p-value, numpy only) that
  flags families whose variants are not equally hard;
* problem pools: per pooled problem, each alternative's mean score with a bootstrap
  confidence interval, the gap between the easiest and the hardest alternative (in points,
  with its interval) and a permutation test; a warning when one is harder by more than
  POOL_GAP of the points and the test says the gap is real;
* the flagged submissions (swapped or tampered notebooks, timeouts, broken files...).

It opens with a headline in words (the hardest part, the commonest misconception and its
share, how many students are flagged). Plots are drawn with matplotlib's Agg renderer and
embedded as base64 PNG images, and the page loads nothing from the network, so it works
offline and as an e-mail attachment. Every heading and sentence comes from the text
tables (``problems/text/report.{en,ru}.toml``, keys ``report.*``).
"""

from __future__ import annotations

import base64
import io
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convpset.autograder import similarity
from convpset.autograder.outputs import Journal
from convpset.autograder.results import StudentResult
from convpset.autograder.submissions import HELD, load_unowned, unowned_reason
from convpset.notebooks.course import Course
from convpset.notebooks.variants import pool_alternatives, problems_for

# Results that say nothing about how hard the variant was.
UNINFORMATIVE = {"no_submission", "unreadable", "exited", "timeout", "cpu_limit", "memory", "grader_error",
                 "crashed", "bad_result", "unknown_student", *HELD}

ALPHA = 0.05
MIN_N = 12
MIN_GROUP = 3
PERMUTATIONS = 2000
POOL_GAP = 0.10       # a pool's alternatives differ "too much" past this share of its points
CONFIDENCE = 0.95
BOOTSTRAP = 2000


def t(lang: str, key: str, **kw: Any) -> str:
    """The report's sentence ``key`` in ``lang`` (``report.<key>`` in the text tables)."""
    from convpset.problems.text import render

    return render(lang, f"report.{key}", **kw)


def flag_label(lang: str, flag: str) -> str:
    from convpset.problems.text import has, render

    key = f"report.flag_label.{flag}"
    return render(lang, key) if has(lang, key) else flag


class _TermLabels:
    """``TT.key`` in the template: the text table's ``term.key``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __getattr__(self, key: str) -> str:
        from convpset.problems.text import render

        return render(self.lang, f"term.{key}")


class _Labels:
    """``T.key`` in the template: the text table's ``report.key``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __getattr__(self, key: str) -> str:
        return t(self.lang, key)


# ------------------------------------------------------------------ variant features
def variant_features(family: str, params: Mapping[str, Any]) -> dict[str, float]:
    """The family's difficulty features of a variant (:meth:`Family.features`)."""
    from convpset.problems import Variant, get_family

    fam = get_family(family)
    try:
        return fam.features(Variant(family, 1, params))
    except (KeyError, TypeError, ValueError):
        return {}


def feature_label(lang: str, family: str, name: str) -> str:
    from convpset.problems.text import has, render

    key = f"{family}.feature.{name}"
    return render(lang, key) if has(lang, key) else name


# ------------------------------------------------------------------ statistics
def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=float)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def kruskal_wallis(values: Sequence[float], groups: Sequence[Any]) -> float:
    """The Kruskal–Wallis H statistic with the tie correction (0 when all values tie)."""
    x = np.asarray(values, dtype=float)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    return float(_h_many(_ranks(x), g[None, :], int(g.max()) + 1, _tie_factor(x))[0])


def _tie_factor(x: np.ndarray) -> float:
    n = len(x)
    _, counts = np.unique(x, return_counts=True)
    return 1.0 - float(np.sum(counts ** 3 - counts)) / (n ** 3 - n) if n > 1 else 0.0


def _h_many(ranks: np.ndarray, labels: np.ndarray, k: int, tie: float) -> np.ndarray:
    """H for each row of ``labels`` (permutations × n), vectorized."""
    n = ranks.shape[0]
    if tie <= 0:
        return np.zeros(labels.shape[0])
    onehot = labels[..., None] == np.arange(k)             # perms × n × k
    sizes = onehot.sum(axis=1)                             # perms × k
    sums = np.einsum("pnk,n->pk", onehot, ranks)
    h = 12.0 / (n * (n + 1)) * np.sum(sums ** 2 / np.maximum(sizes, 1), axis=1) - 3 * (n + 1)
    return h / tie


def permutation_kruskal(values: Sequence[float], groups: Sequence[Any],
                        permutations: int = PERMUTATIONS, seed: int = 0) -> tuple[float, float]:
    """(H, p): p is the share of random relabelings with H at least the observed one."""
    x = np.asarray(values, dtype=float)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    k = int(g.max()) + 1
    ranks, tie = _ranks(x), _tie_factor(x)
    h_obs = float(_h_many(ranks, g[None, :], k, tie)[0])
    if k < 2 or tie <= 0:
        return h_obs, 1.0
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(g, (permutations, 1)), axis=1)
    h_perm = np.concatenate([_h_many(ranks, chunk, k, tie)
                             for chunk in np.array_split(perms, max(1, permutations // 500))])
    p = (1 + int(np.sum(h_perm >= h_obs - 1e-12))) / (permutations + 1)
    return h_obs, float(p)


def feature_levels(feature: Sequence[float]) -> list[str]:
    """Group labels for a feature: its distinct values if at most three, else terciles."""
    f = np.asarray(feature, dtype=float)
    distinct = np.unique(f)
    if len(distinct) <= 3:
        return [f"{v:g}" for v in f]
    cuts = np.quantile(f, [1 / 3, 2 / 3])
    bins = np.searchsorted(cuts, f, side="right")
    edges = [f.min(), *cuts, f.max()]
    names = {b: f"{edges[b]:g}\u2013{edges[b + 1]:g}" for b in range(3)}
    return [f"{b}:{names[b]}" for b in bins]


@dataclass
class FairnessTest:
    feature: str
    n: int
    groups: dict[str, int] = field(default_factory=dict)
    statistic: float | None = None
    p: float | None = None
    flagged: bool = False
    tested: bool = False


def fairness_test(scores: Sequence[float], feature: Sequence[float], *, alpha: float = ALPHA,
                  n_features: int = 1, min_n: int = MIN_N, min_group: int = MIN_GROUP,
                  permutations: int = PERMUTATIONS, seed: int = 0,
                  name: str = "") -> FairnessTest:
    """Do scores differ between the levels of one variant feature?

    Groups smaller than ``min_group`` are dropped; with fewer than two groups or fewer
    than ``min_n`` observations nothing is tested. Flagged when the permutation p-value
    of Kruskal–Wallis H is below ``alpha / n_features`` (Bonferroni).
    """
    levels = feature_levels(feature)
    sizes = Counter(levels)
    keep = [i for i, lv in enumerate(levels) if sizes[lv] >= min_group]
    x = [float(scores[i]) for i in keep]
    g = [levels[i] for i in keep]
    groups = {lv.split(":", 1)[-1]: n for lv, n in sorted(Counter(g).items(),
                                                           key=lambda kv: _level_key(kv[0]))}
    res = FairnessTest(name, len(x), groups)
    if len(x) < min_n or len(groups) < 2:
        return res
    res.statistic, res.p = permutation_kruskal(x, g, permutations, seed)
    res.tested = True
    res.flagged = res.p < alpha / max(1, n_features)
    return res


@dataclass
class PoolComparison:
    """How a pool's alternatives compare (scores as shares of the points, 0..1)."""

    groups: dict[str, tuple[int, float, float, float]]   # label -> (n, mean, low, high)
    hardest: str | None = None
    easiest: str | None = None
    gap: float | None = None              # mean(easiest) - mean(hardest)
    gap_ci: tuple[float, float] | None = None
    p: float | None = None                # permutation Kruskal–Wallis over all alternatives
    tested: bool = False
    flagged: bool = False


def bootstrap_mean_ci(x: np.ndarray, rng: np.random.Generator, n: int = BOOTSTRAP,
                      level: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (numpy only; seeded: same page twice)."""
    if len(x) == 0:
        return math.nan, math.nan
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def compare_alternatives(groups: Mapping[str, Sequence[float]], *, gap: float = POOL_GAP,
                         alpha: float = ALPHA, min_group: int = MIN_GROUP,
                         permutations: int = PERMUTATIONS, seed: int = 0) -> PoolComparison:
    """Is one alternative of a pool harder than the others, and by how much?

    Each group is one alternative's scores (shares of its points). The gap is the mean of
    the easiest minus the mean of the hardest, with a bootstrap interval of that
    difference; the p-value is the permutation Kruskal–Wallis test over every alternative
    with at least ``min_group`` students (one omnibus test, so picking the two extremes
    afterwards does not inflate it). Flagged when the gap exceeds ``gap`` and p < alpha:
    a large gap that chance explains is reported, not flagged.
    """
    rng = np.random.default_rng(seed)
    arrays = {k: np.asarray(v, dtype=float) for k, v in groups.items()}
    out = PoolComparison({k: (len(x), float(x.mean()) if len(x) else math.nan,
                              *bootstrap_mean_ci(x, rng)) for k, x in arrays.items()})
    big = {k: x for k, x in arrays.items() if len(x) >= min_group}
    if len(big) < 2:
        return out
    means = {k: float(x.mean()) for k, x in big.items()}
    out.hardest = min(means, key=lambda k: (means[k], k))
    out.easiest = max(means, key=lambda k: (means[k], k))
    out.gap = means[out.easiest] - means[out.hardest]
    a, b = big[out.easiest], big[out.hardest]
    diffs = (a[rng.integers(0, len(a), size=(BOOTSTRAP, len(a)))].mean(axis=1)
             - b[rng.integers(0, len(b), size=(BOOTSTRAP, len(b)))].mean(axis=1))
    lo, hi = np.quantile(diffs, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    out.gap_ci = (float(lo), float(hi))
    values = [v for x in big.values() for v in x]
    labels = [k for k, x in big.items() for _ in x]
    _, out.p = permutation_kruskal(values, labels, permutations, seed)
    out.tested = True
    out.flagged = out.gap > gap and out.p < alpha
    return out


def _level_key(label: str) -> tuple[float, str]:
    head = label.split(":", 1)[0]
    try:
        return float(head), label
    except ValueError:
        return math.inf, label


# ------------------------------------------------------------------ plots
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state, no display

    return Figure(figsize=(w, h), layout="constrained")


def histogram_png(scores: Sequence[float], max_score: float, lang: str) -> str:
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    top = max(max_score, max(scores, default=0.0), 1.0)
    bins = np.linspace(0, top, min(21, max(6, int(math.ceil(top)) + 1)))
    ax.hist(scores, bins=bins, color="#4c72b0", edgecolor="white")
    if scores:
        ax.axvline(float(np.mean(scores)), color="#c44e52", linestyle="--",
                   label=f"{t(lang, 'mean')} {np.mean(scores):.1f}")
        ax.legend()
    ax.set_xlabel(t(lang, "score"))
    ax.set_ylabel(t(lang, "students"))
    ax.set_xlim(0, top)
    return _png(fig)


# Colours of the difficulty bars and the legend that names them.
BANDS = (("legend_good", 0.75, "#55a868"), ("legend_mid", 0.5, "#dd8452"),
         ("legend_bad", -math.inf, "#c44e52"))


def _band_color(v: float) -> str:
    return next(color for _, low, color in BANDS if v >= low)


def difficulty_png(rows: list[dict[str, Any]], lang: str) -> str:
    return _png(difficulty_figure(rows, lang))


def difficulty_figure(rows: list[dict[str, Any]], lang: str) -> Any:
    """Mean score per part as bars coloured by band, with a legend naming the bands."""
    from matplotlib.patches import Patch

    fig = _figure(7, 0.3 * len(rows) + 1.6)
    ax = fig.add_subplot()
    labels = [f"{r['number']}. {r['part']}" for r in rows]
    vals = [r["mean_frac"] for r in rows]
    ax.barh(range(len(rows)), vals, color=[_band_color(v) for v in vals])
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(t(lang, "mean_frac"))
    fig.legend(handles=[Patch(color=color, label=t(lang, key)) for key, _, color in BANDS],
               title=t(lang, "legend_title"), loc="outside upper center", ncols=3,
               fontsize=8, title_fontsize=8, frameon=False)
    return fig


def varying(points: list[tuple[dict[str, float], float]], names: list[str]) -> list[str]:
    """The features that take more than one value among ``points``: a feature every
    variant shares says nothing about fairness, so it is neither tested nor plotted."""
    out = []
    for name in names:
        values = {f[name] for f, _ in points if name in f}
        if len(values) > 1:
            out.append(name)
    return out


def scatter_png(family: str, points: list[tuple[dict[str, float], float]], names: list[str],
                lang: str) -> str | None:
    """Score against each varying feature (jittered a little so that equal values do
    not hide each other); None when no feature varies."""
    names = varying(points, names)
    if not names:
        return None
    fig = _figure(3.6 * len(names), 3.0)
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        xs = np.array([f.get(name, np.nan) for f, _ in points], dtype=float)
        ys = np.array([s for _, s in points], dtype=float)
        distinct = np.unique(xs[np.isfinite(xs)])
        step = float(np.min(np.diff(distinct))) if len(distinct) > 1 else 1.0
        jitter = rng.uniform(-0.08, 0.08, len(xs)) * step
        ax.scatter(xs + jitter, ys, s=18, alpha=0.7, color="#4c72b0")
        if len(distinct) <= 6:
            ax.set_xticks(distinct, [f"{v:g}" for v in distinct])
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(feature_label(lang, family, name))
        if i == 0:
            ax.set_ylabel(t(lang, "share"))
        ax.set_title(family, fontsize=10)
    return _png(fig)


# ------------------------------------------------------------------ the report
def _informative(r: StudentResult) -> bool:
    return not any(f in UNINFORMATIVE or f.startswith("stamp:") for f in r.flags)


def _mistake_text(lang: str, family: str, key: str, example: Mapping[str, str]) -> str:
    """The misconception's sentence from problems/text; where the template needs the
    student's numbers, the message one example student received."""
    from convpset.problems.text import has, render

    for k in (f"{family}.mistake.{key}", f"mistake.common.{key}"):
        if has(lang, k):
            try:
                return render(lang, k)
            except Exception:  # noqa: BLE001 -- template wants per-variant arguments
                break
    return example.get(lang, next(iter(example.values()), ""))


def untouched(r: StudentResult) -> bool:
    """A readable notebook returned without a single answer (every part still ``...``
    or undefined) and run to the end: the student did not attempt the assignment."""
    if r.path is None or r.exec_status not in ("ok", "") or any(
            f in UNINFORMATIVE for f in r.flags):
        return False
    parts = [x for p in r.problems for x in p.parts]
    return bool(parts) and all(x.status == "missing" for x in parts)


def _flag_notes(r: StudentResult | None, lang: str) -> list[str]:
    """Every note that explains a flagged row: the student's own notes and those of
    their problems (a cell's error, an edited data cell, a cell that timed out)."""
    if r is None:
        return []
    notes = [n for n in r.notes] + [n for p in r.problems for n in p.notes]
    return [n.get(lang, next(iter(n.values()), "")) for n in notes]


def headline(lang: str, part_rows: list[dict], mistakes: list[dict], n_attempted: int,
             n_flagged: int, n_total: int, n_untouched: int, n_missing: int) -> list[str]:
    """The report's first lines, in words: the hardest part, the commonest misconception
    with its share of students, how many are flagged."""
    lines = [t(lang, "headline_counts", n=n_attempted, untouched=n_untouched, missing=n_missing)]
    seen = [r for r in part_rows if r["n"]]
    if seen:
        hard = min(seen, key=lambda r: (r["mean_frac"], r["number"]))
        lines.append(t(lang, "headline_hardest", part=hard["part"], number=hard["number"],
                       family=hard["family"], pct=round(100 * hard["mean_frac"]),
                       correct=round(100 * hard["correct"])))
    else:
        lines.append(t(lang, "headline_no_parts"))
    if mistakes and n_attempted:
        m = mistakes[0]
        lines.append(t(lang, "headline_mistake", mistake=m["key"], family=m["family"],
                       students=m["students"], n=n_attempted,
                       share=round(100 * m["students"] / n_attempted), message=m["message"]))
    else:
        lines.append(t(lang, "headline_no_mistake"))
    lines.append(t(lang, "headline_flagged", flagged=n_flagged, total=n_total))
    return lines


def build_report(course: Course, assignment: str, grades_dir: Path, lang: str = "en") -> str:
    """The HTML report of ``assignment`` from ``grades_dir/journal.jsonl``."""
    from convpset.autograder.htmltext import inline_html, page_number, render_page
    from convpset.autograder.term import report_context as term_report
    from convpset.problems.base import LANGS

    if lang not in LANGS:
        raise ValueError(f"language must be one of {', '.join(LANGS)}, got {lang!r}")
    spec = course.assignment(assignment)
    grades_dir = Path(grades_dir)
    results = similarity.apply_saved(grades_dir, Journal(grades_dir).load())
    roster = course.roster()
    names = {s.student_id: f"{s.first_name} {s.last_name}".strip() for s in roster}
    template_problems = problems_for(course, spec, "template")
    max_total = round(sum(p.max_score for p in template_problems), 2)

    returned = [r for sid, r in sorted(results.items())
                if not {"no_submission", "unknown_student", *HELD} & set(r.flags)]
    not_attempted = [r.student_id for r in returned if untouched(r)]
    submitted = [r for r in returned if r.student_id not in set(not_attempted)]
    missing = [sid for sid in names if sid not in results or "no_submission" in results[sid].flags]

    # summary
    scores = [r.score for r in submitted]
    full = [s for s, r in zip(scores, submitted, strict=True) if s >= r.max_score - 1e-9]
    stats = {"n": len(scores), "not_attempted": len(not_attempted), "missing": len(missing),
             "mean": page_number(statistics.fmean(scores), lang, "%.2f") if scores else "–",
             "median": page_number(statistics.median(scores), lang) if scores else "–",
             "min": page_number(min(scores), lang) if scores else "–",
             "max": page_number(max(scores), lang) if scores else "–",
             "full": f"{len(full) / len(scores):.0%}" if scores else "–"}

    # difficulty (a pooled number: one row per alternative)
    alternatives = pool_alternatives(course, spec)
    prob_rows, part_rows = _difficulty(submitted, template_problems, alternatives)

    # misconceptions
    mistakes = _misconceptions(submitted, lang)

    # fairness
    fairness = _fairness(course, spec, [r for r in submitted if _informative(r)], lang)
    pools = _pool_fairness(spec, alternatives, [r for r in submitted if _informative(r)], lang)

    # flagged
    flagged = []
    for sid in sorted(set(results) | set(names)):
        r = results.get(sid)
        flags = list(r.flags) if r is not None else ["not_graded"]
        if not flags:
            continue
        notes = _flag_notes(r, lang) or [flag_label(lang, f) for f in flags]
        flagged.append({"student": sid, "name": names.get(sid, ""),
                        "score": "–" if r is None else (f"{page_number(r.score, lang)} / "
                                                      f"{page_number(r.max_score, lang)}"),
                        "flags": [(f, flag_label(lang, f)) for f in flags],
                        "notes": [inline_html(n) for n in notes]})
    # "flagged for a look": missing work is counted apart, in the first line
    n_flagged = sum(1 for row in flagged
                    if any(f not in ("no_submission", "not_graded") for f, _ in row["flags"]))
    lines = headline(lang, part_rows, mistakes, len(submitted), n_flagged,
                     len(set(results) | set(names)), len(not_attempted), len(missing))
    lines += [p["message"] for p in pools if p["flagged"]]
    for m in mistakes:
        m["message"] = inline_html(m["message"])

    unowned = _unowned_rows(grades_dir, lang)
    from convpset.service.stats import attempts_context  # the check service's attempts

    attempts = attempts_context(course, assignment, lang, submitted)
    images = {"histogram": histogram_png(scores, max_total, lang),
              "difficulty": difficulty_png(part_rows, lang) if part_rows else None}
    return render_page(
        "report.html.j2", lang=lang, T=_Labels(lang), course=course, spec=spec, stats=stats,
        max_total=page_number(max_total, lang), headline=[inline_html(x) for x in lines],
        intro=t(lang, "generated_from", journal=str(grades_dir / "journal.jsonl"),
                n=len(results), roster=len(roster)),
        stats_note=t(lang, "stats_note", max=page_number(max_total, lang)),
        fair_note=t(lang, "fair_note", perms=PERMUTATIONS, alpha=ALPHA, min_n=MIN_N,
                    min_group=MIN_GROUP),
        prob_rows=prob_rows, part_rows=part_rows, mistakes=mistakes, fairness=fairness,
        pools=pools, pool_note=t(lang, "pool_note", gap=round(100 * POOL_GAP), alpha=ALPHA,
                                 confidence=round(100 * CONFIDENCE), boot=BOOTSTRAP,
                                 perms=PERMUTATIONS, min_group=MIN_GROUP),
        flagged=flagged, images=images, unowned=unowned, attempts=attempts,
        copies=similarity.report_context(results, names, lang),
        term=term_report(results, names, lang), TT=_TermLabels(lang))


def _unowned_rows(grades_dir: Path, lang: str) -> list[dict[str, str]]:
    """The files no student received, as ``grade`` listed them (plain text cells: the
    template escapes them; file names are student text)."""
    from convpset.problems.text import render

    return [{"file": u.name, "status": render(lang, f"attribution.{u.status}"),
             "students": " ".join(u.students), "reason": unowned_reason(u, lang)}
            for u in load_unowned(grades_dir / "unmatched_files.json")]


def _difficulty(submitted: list[StudentResult], template: list[Any],
                alternatives: Mapping[int, list[Any]] | None = None) -> tuple[list, list]:
    """Rows per problem and per part; a pooled number has one row per alternative (the
    students who drew it), keyed by the family and level each result names."""
    alternatives = alternatives or {}
    per_problem: dict[tuple[int, str, int], list] = defaultdict(list)
    per_part: dict[tuple[int, str, int, str], list] = defaultdict(list)
    for r in submitted:
        for p in r.problems:
            per_problem[(p.number, p.family, p.level)].append(p)
            for x in p.parts:
                per_part[(p.number, p.family, p.level, x.part)].append(x)
    prob_rows, part_rows = [], []
    rows = [alt for tp in template for alt in alternatives.get(tp.number, [tp])]
    for tp in rows:
        key = (tp.number, tp.family, tp.level)
        ps = per_problem.get(key, [])
        n = len(ps) or 1
        prob_rows.append({
            "number": tp.number, "family": tp.family, "level": tp.level, "n": len(ps),
            "pooled": tp.number in alternatives,
            "mean_frac": sum(p.score / p.max_score for p in ps if p.max_score) / n,
            "correct": sum(p.score >= p.max_score - 1e-9 for p in ps) / n,
            "format": sum(any(x.status == "format_error" for x in p.parts) for p in ps) / n})
        for part in tp.parts():
            xs = per_part.get((*key, part.name), [])
            m = len(xs) or 1
            part_rows.append({
                "number": tp.number, "family": tp.family, "part": part.name, "n": len(xs),
                "pooled": tp.number in alternatives,
                "mean_frac": sum(x.score / x.max_score for x in xs if x.max_score) / m,
                "correct": sum(x.status == "correct" for x in xs) / m,
                "format": sum(x.status == "format_error" for x in xs) / m})
    return prob_rows, part_rows


def _misconceptions(submitted: list[StudentResult], lang: str, top: int = 15) -> list[dict]:
    count: Counter[tuple[str, str]] = Counter()
    students: dict[tuple[str, str], list[str]] = defaultdict(list)
    example: dict[tuple[str, str], Mapping[str, str]] = {}
    for r in submitted:
        for p in r.problems:
            for x in p.parts:
                if not x.mistake:
                    continue
                k = (p.family, x.mistake)
                count[k] += 1
                if r.student_id not in students[k]:
                    students[k].append(r.student_id)
                example.setdefault(k, x.message)
    rows = []
    for (family, key), n in sorted(count.items(), key=lambda kv: (-len(students[kv[0]]), -kv[1], kv[0])):
        rows.append({"family": family, "key": key, "count": n, "students": len(students[(family, key)]),
                     "examples": students[(family, key)][:5],
                     "message": _mistake_text(lang, family, key, example[(family, key)])})
    return rows[:top]


def _fairness(course: Course, spec: Any, results: list[StudentResult], lang: str) -> list[dict]:
    by_family: dict[str, list[tuple[dict[str, float], float]]] = defaultdict(list)
    order: list[str] = []
    for r in results:
        got = {p.number: p for p in r.problems}
        for prob in problems_for(course, spec, r.student_id):
            pr = got.get(prob.number)
            if pr is None or not pr.max_score:
                continue
            if prob.family not in order:
                order.append(prob.family)
            by_family[prob.family].append((variant_features(prob.family, prob.variant.params),
                                           pr.score / pr.max_score))
    out = []
    for fam in order:
        pts = by_family[fam]
        names = list(dict.fromkeys(k for f, _ in pts for k in f))[:2]
        tested = varying(pts, names)
        tests = []
        for name in names:
            sub = [(f[name], s) for f, s in pts if name in f]
            res = fairness_test([s for _, s in sub], [v for v, _ in sub],
                                n_features=max(1, len(tested)), name=name)
            threshold = f"{ALPHA / max(1, len(tested)):.3g}"
            p = "–" if res.p is None else f"{res.p:.3f}"
            tests.append({"feature": feature_label(lang, fam, name), "res": res,
                          "groups": ", ".join(f"{k} ({v})" for k, v in res.groups.items()),
                          "statistic": "–" if res.statistic is None else f"{res.statistic:.2f}",
                          "p": p, "threshold": threshold if res.tested else "–",
                          "verdict": t(lang, "flag", p=p, threshold=threshold) if res.flagged
                          else t(lang, "ok", p=p, threshold=threshold) if res.tested else
                          t(lang, "one_level") if len(res.groups) < 2 else t(lang, "too_few")})
        flagged = [x["feature"] for x in tests if x["res"].flagged]
        out.append({"family": fam, "n": len(pts), "tests": tests, "flagged": bool(flagged),
                    "message": t(lang, "fair_flagged", family=fam, feature=", ".join(flagged))
                    if flagged else "",
                    "image": scatter_png(fam, pts, names, lang)})
    return out


def pool_groups(results: list[StudentResult], numbers: Sequence[int],
                labels: Mapping[tuple[str, int], str]) -> dict[str, list[float]]:
    """Alternative label -> each drawn problem's score as a share of its maximum, over
    the pool's problem numbers (a student who drew two alternatives counts in both)."""
    groups: dict[str, list[float]] = {label: [] for label in labels.values()}
    for r in results:
        for p in r.problems:
            label = labels.get((p.family, p.level))
            if p.number in numbers and label is not None and p.max_score:
                groups[label].append(p.score / p.max_score)
    return groups


def _pool_fairness(spec: Any, alternatives: Mapping[int, list[Any]],
                   results: list[StudentResult], lang: str) -> list[dict]:
    """One block per pool entry: each alternative's mean (share and points) with its
    interval, the gap between the easiest and the hardest, the test, the warning."""
    from convpset.autograder.htmltext import page_number
    from convpset.notebooks.course import PoolSpec

    by_entry: dict[int, list[int]] = defaultdict(list)
    for number, probs in alternatives.items():
        by_entry[probs[0].pool].append(number)
    out = []
    for entry, numbers in sorted(by_entry.items()):
        pool = spec.problems[entry]
        assert isinstance(pool, PoolSpec)
        labels = {(a.family, a.level): pool.label(j) for j, a in enumerate(pool.alternatives)}
        cmp = compare_alternatives(pool_groups(results, numbers, labels))
        pts = pool.points

        def points(share: float, pts: float = pts) -> str:
            return "–" if math.isnan(share) else page_number(share * pts, lang, "%.2f")

        rows = [{"label": k, "n": n, "mean": points(m),
                 "ci": "–" if n < 2 else f"{points(lo)}–{points(hi)}",
                 "hardest": k == cmp.hardest and cmp.tested}
                for k, (n, m, lo, hi) in cmp.groups.items()]
        if cmp.tested:
            lo, hi = cmp.gap_ci or (math.nan, math.nan)
            summary = t(lang, "pool_gap", hardest=cmp.hardest, easiest=cmp.easiest,
                        gap=points(cmp.gap or 0.0), low=points(lo), high=points(hi),
                        points=f"{pts:g}", p=f"{cmp.p:.3f}")
        else:
            summary = t(lang, "pool_too_few", min_group=MIN_GROUP)
        out.append({"numbers": ", ".join(str(n) for n in numbers), "choose": pool.choose,
                    "of": len(pool.alternatives), "rows": rows, "summary": summary,
                    "flagged": cmp.flagged, "res": cmp,
                    "message": t(lang, "pool_flagged", hardest=cmp.hardest,
                                 gap=points(cmp.gap or 0.0), points=f"{pts:g}",
                                 limit=round(100 * POOL_GAP)) if cmp.flagged else ""})
    return out
