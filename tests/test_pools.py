"""Problem pools (issue 21 §4): pset.toml syntax and its one-line errors, the draw
(deterministic, balanced in expectation, stable under roster growth), equal maxima,
notebooks, grading, the gradebook's cell mapping and the report's pool comparison.

The whole nbgrader loop with a pool (real generate_assignment, release, fetch, grade,
autograde and formgrader) is tests/test_nbgrader_pools.py.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convpset.notebooks.cells import pool_cell_id
from convpset.notebooks.cells import test_cell_id as grade_cell_id
from convpset.notebooks.course import (
    AssignmentSpec,
    Course,
    CourseError,
    PoolSpec,
    ProblemSpec,
    init_course,
    load_course,
)
from convpset.notebooks.generate import generate, notebook_text
from convpset.notebooks.pools import balanced_draw, pool_uses
from convpset.notebooks.variants import apportion, pool_draw, problems_for

BIN = Path(sys.executable).parent
POOL = ('{ pool = [ { family = "pooling", level = 2 }, '
        '{ family = "receptive_field", level = 2 } ], choose = 1, points = 4 }')
FAMILIES = ["conv_as_matrix", "param_count", "output_shape", "conv_backward", "pooling",
            "receptive_field", "transposed_conv", "conv_cost"]


def pooled_course(root: Path, students: int = 12, entry: str = POOL) -> Course:
    """The sample assignment with its last problem (pooling L2, 4 points) made a pool
    (a fixed secret: which alternatives a class of ten draws is then known, not luck)."""
    init_course(root, students=students, seed=21)
    cfg = root / "pset.toml"
    text = cfg.read_text(encoding="utf-8")
    old = '{ family = "pooling", level = 2, points = 4 },'
    assert old in text
    cfg.write_text(text.replace(old, entry + ","), encoding="utf-8")
    return load_course(root)


def with_entry(tmp_path: Path, entry: str) -> Path:
    """The sample course whose last problem is ``entry`` (its root)."""
    root = tmp_path / "c"
    init_course(root, students=2)
    cfg = root / "pset.toml"
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace('{ family = "pooling", level = 2, points = 4 },', entry + ","),
                   encoding="utf-8")
    return root


# ------------------------------------------------------------------ pset.toml
@pytest.mark.parametrize(("entry", "says"), [
    ('{ pool = [ { family = "pooling", level = 2, points = 4 } ] }', "at least two"),
    ('{ pool = "pooling" }', "at least two"),
    ('{ pool = [ { family = "pooling", level = 2, points = 4 }, '
     '{ family = "receptive_field", level = 2, points = 5 } ] }', "same points"),
    ('{ pool = [ { family = "pooling", level = 2 }, { family = "receptive_field", level = 2 } ] }',
     "have no points"),
    ('{ pool = [ { family = "pooling", level = 2 }, { family = "receptive_field", level = 2, '
     'points = 3 } ], points = 4 }', "same points"),
    (POOL.replace("choose = 1", "choose = 0"), "choose must be an int from 1 to 2"),
    (POOL.replace("choose = 1", "choose = 3"), "choose must be an int from 1 to 2"),
    (POOL.replace("choose = 1", "choose = true"), "choose must be an int from 1 to 2"),
    (POOL.replace("choose = 1", 'choose = "1"'), "choose must be an int from 1 to 2"),
    (POOL.replace("choose = 1", "chose = 1"), "unknown keys ['chose'] in a pool"),
    (POOL.replace("points = 4 }", "points = -4 }"), "points must be a positive number"),
    ('{ pool = [ { family = "pooling", level = 2 }, { family = "pooling", level = 2 } ], '
     'points = 4 }', "listed twice"),
    ('{ pool = [ { family = "pooling", level = 2, count = 2 }, '
     '{ family = "receptive_field", level = 2 } ], points = 4 }', "has no count"),
    ('{ pool = [ { family = "pooling", level = 2, levle = 1 }, '
     '{ family = "receptive_field", level = 2 } ], points = 4 }', "unknown keys ['levle']"),
    ('{ pool = [ { family = "poolin", level = 2 }, '
     '{ family = "receptive_field", level = 2 } ], points = 4 }', "unknown family 'poolin'"),
    ('{ pool = [ { family = "pooling", level = 9 }, '
     '{ family = "receptive_field", level = 2 } ], points = 4 }', "level must be one of"),
    ('{ pool = [ { pool = [] }, { family = "receptive_field", level = 2 } ], points = 4 }',
     "cannot be a pool"),
    (POOL.replace("choose = 1", "choose = 1, draw = -1"), "draw must be an int from 0"),
    (POOL.replace("choose = 1", "choose = 1, draw = 1.5"), "draw must be an int from 0"),
    (POOL.replace("choose = 1", "choose = 1, draw = true"), "draw must be an int from 0"),
])
def test_bad_pool_is_one_line_naming_the_entry(tmp_path, entry, says):
    root = with_entry(tmp_path, entry)
    with pytest.raises(CourseError) as err:
        load_course(root)
    msg = str(err.value)
    assert "\n" not in msg and says in msg and "assignments.conv1.problems[4]" in msg, msg


@pytest.mark.slow
@pytest.mark.parametrize(("entry", "says"), [
    (POOL.replace("choose = 1", "choose = 3"), "choose must be an int from 1 to 2"),
    ('{ pool = [ { family = "pooling", level = 2, points = 4 }, '
     '{ family = "receptive_field", level = 2, points = 5 } ] }', "same points"),
])
def test_bad_pool_on_the_command_line_exits_2(tmp_path, entry, says):
    root = with_entry(tmp_path, entry)
    r = subprocess.run([str(BIN / "pset"), "generate", "conv1", "--course", str(root)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (root / "personalized").exists()


def test_pool_parses_with_inherited_points(tmp_path):
    course = pooled_course(tmp_path / "c")
    entry = course.assignment("conv1").problems[4]
    assert isinstance(entry, PoolSpec) and entry.choose == 1 and entry.points == 4.0
    assert [(a.family, a.level, a.points) for a in entry.alternatives] == [
        ("pooling", 2, 4.0), ("receptive_field", 2, 4.0)]
    assert course.assignment("conv1").pooled_numbers() == {5: entry}


# ------------------------------------------------------------------ the draw
def _pool(n: int, k: int) -> PoolSpec:
    return PoolSpec(tuple(ProblemSpec(f"fam{j}", 1, 4.0) for j in range(n)), k)


@settings(max_examples=200, deadline=None)
@given(secret=st.binary(min_size=16, max_size=32), sid=st.text(min_size=1, max_size=20),
       n=st.integers(2, 8), data=st.data())
def test_draw_is_deterministic_distinct_and_ordered(secret, sid, n, data):
    k = data.draw(st.integers(1, n))
    pool = _pool(n, k)
    d = pool_draw(secret, "a1", 0, pool, sid)
    assert d == pool_draw(bytes(secret), "a1", 0, pool, str(sid))
    assert len(d) == k == len(set(d)) and list(d) == sorted(d) and all(0 <= j < n for j in d)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(secret=st.binary(min_size=16, max_size=32), n=st.integers(2, 5), data=st.data(),
       students=st.integers(200, 1500), prefix=st.sampled_from(["s", "stud-", "2026.", "u"]))
def test_draw_is_balanced_within_a_binomial_bound(secret, n, data, students, prefix):
    """The stated guarantee (README, Problem pools): every alternative is drawn by each
    student with probability k/n, independently, so its count over N students is
    Binomial(N, k/n); asserted within 5 standard deviations (p < 1e-6 per count), over
    rosters of sequential ids, the usual roster."""
    k = data.draw(st.integers(1, n - 1))
    pool = _pool(n, k)
    counts = Counter(j for i in range(students)
                     for j in pool_draw(secret, "a1", 3, pool, f"{prefix}{i:04d}"))
    p = k / n
    sd = math.sqrt(students * p * (1 - p))
    assert sum(counts.values()) == students * k
    for j in range(n):
        assert abs(counts[j] - students * p) <= 5 * sd + 1, (counts, students * p)


def test_draw_frequencies_match_uniform_k_subsets():
    """Every k-subset equally likely: over 6,000 students, a chi-square statistic over the
    C(4,2)=6 subsets below the 0.999 quantile of chi-square(5) (20.5; fixed inputs)."""
    pool = _pool(4, 2)
    counts = Counter(pool_draw(b"fixed-secret-0123456789", "a", 0, pool, f"s{i}")
                     for i in range(6000))
    assert len(counts) == 6
    chi2 = sum((c - 1000) ** 2 / 1000 for c in counts.values())
    assert chi2 < 20.5, counts


@settings(max_examples=100, deadline=None)
@given(secret=st.binary(min_size=16, max_size=32), n=st.integers(2, 6), data=st.data())
def test_draw_survives_pool_edits(secret, n, data):
    """Rendezvous hashing: reordering the alternatives changes nobody's draw (by family),
    and adding one moves only students who now hold the new one."""
    k = data.draw(st.integers(1, n))
    pool = _pool(n, k)
    order = data.draw(st.permutations(range(n)))
    shuffled = PoolSpec(tuple(pool.alternatives[j] for j in order), k)
    grown = PoolSpec((*pool.alternatives, ProblemSpec("new", 1, 4.0)), k)
    for i in range(30):
        sid = f"s{i}"
        before = {pool.alternatives[j].family for j in pool_draw(secret, "a", 0, pool, sid)}
        after = {shuffled.alternatives[j].family
                 for j in pool_draw(secret, "a", 0, shuffled, sid)}
        assert before == after
        got = {grown.alternatives[j].family for j in pool_draw(secret, "a", 0, grown, sid)}
        assert got == before or "new" in got


IDS = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=12),
               min_size=2, max_size=150, unique=True)


@settings(max_examples=40, deadline=None)
@given(secret=st.binary(min_size=16, max_size=32), ids=IDS, n=st.integers(2, 3),
       data=st.data())
def test_balanced_draw_splits_any_roster_evenly_and_growth_moves_no_one(secret, ids, n, data):
    """--balance: over any roster (up to 150 students, 2-3 alternatives), the suggested
    draw number gives counts that differ by at most 1; once it is in the config, students
    added later change nobody's draw, and each added student moves the spread by at most
    the number of alternatives they hold."""
    k = data.draw(st.integers(1, n - 1))
    pool = _pool(n, k)
    spec = AssignmentSpec("a1", "A", (ProblemSpec("param_count", 1, 4.0), pool))
    best = balanced_draw(secret, spec, 1, ids)
    assert best.spread <= 1 and sum(best.counts) == len(ids) * k
    fixed = PoolSpec(pool.alternatives, k, best.draw)
    spec2 = AssignmentSpec("a1", "A", (ProblemSpec("param_count", 1, 4.0), fixed))
    [use] = pool_uses(secret, spec2, ids)
    assert use.counts == best.counts and use.numbers == tuple(range(2, 2 + k))
    before = {sid: pool_draw(secret, "a1", 1, fixed, sid) for sid in ids}
    added = data.draw(st.lists(st.text("ABCDEFGH", min_size=1, max_size=6), max_size=20,
                               unique=True))
    grown = ids + [a for a in added if a not in ids]
    [after] = pool_uses(secret, spec2, grown)
    assert {sid: pool_draw(secret, "a1", 1, fixed, sid) for sid in ids} == before
    assert after.spread <= best.spread + k * (len(grown) - len(ids))


def test_roster_growth_keeps_every_notebook_byte_identical(tmp_path):
    """Adding students (at the end and in the middle) and reordering the roster changes
    no one's draw, variant or notebook, nor the source notebook."""
    course = pooled_course(tmp_path / "c", students=8)
    generate(course, "conv1")
    root = course.root

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes()
                for p in sorted((root / "personalized").rglob("*.ipynb"))}

    before = files()
    source = (root / "source" / "conv1" / "conv1.ipynb").read_bytes()
    lines = (root / "roster.csv").read_text(encoding="utf-8").splitlines()
    grown = [lines[0], "s100,New,Comer,n@x,", *reversed(lines[1:]), "s101,Late,One,l@x,"]
    (root / "roster.csv").write_text("\n".join(grown) + "\n", encoding="utf-8")
    generate(load_course(root), "conv1")
    after = files()
    assert len(after) == len(before) + 2
    assert all(after[k] == v for k, v in before.items())
    assert (root / "source" / "conv1" / "conv1.ipynb").read_bytes() == source


def test_same_secret_and_student_same_notebook_in_another_folder(tmp_path):
    a = pooled_course(tmp_path / "a", students=3)
    b = tmp_path / "b"
    b.mkdir()
    (b / "pset.toml").write_text((a.root / "pset.toml").read_text(encoding="utf-8"),
                                 encoding="utf-8")
    (b / "roster.csv").write_text((a.root / "roster.csv").read_text(encoding="utf-8"),
                                  encoding="utf-8")
    cb = load_course(b)
    for s in a.roster():
        for mode in ("personal", "solution", "source"):
            assert notebook_text(a, "conv1", s.student_id, s.display, "en", mode) == \
                notebook_text(cb, "conv1", s.student_id, s.display, "en", mode)


# ------------------------------------------------------------------ equal maxima
@given(shares=st.lists(st.floats(0.1, 10), min_size=1, max_size=8),
       cents=st.integers(1, 100_000))
def test_apportion_sums_exactly_and_stays_within_a_cent(shares, cents):
    total = cents / 100
    out = apportion(shares, total)
    assert round(sum(out) * 100) == cents
    whole = sum(shares)
    for s, o in zip(shares, out, strict=True):
        assert abs(o - s / whole * total) < 0.01 + 1e-9
        assert round(o * 100) == pytest.approx(o * 100)


ALTS = st.lists(st.tuples(st.sampled_from(FAMILIES), st.integers(1, 3)), min_size=2,
                max_size=4, unique=True)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(alts=ALTS, points=st.sampled_from([1, 2, 3, 4, 5, 7, 10, 2.5, 3.33]),
       secret=st.text("abcdef0123456789", min_size=16, max_size=24), data=st.data())
def test_every_student_has_the_same_maximum(tmp_path, alts, points, secret, data):
    """Whatever alternatives are listed and whoever draws what, every student's pooled
    problems are worth exactly the pool's points, and their total is the same."""
    choose = data.draw(st.integers(1, len(alts)))
    pool = PoolSpec(tuple(ProblemSpec(f, lv, float(points)) for f, lv in alts), choose)
    spec = AssignmentSpec("a1", "A", (ProblemSpec("param_count", 1, 4.0), pool))
    course = Course(tmp_path, "c", secret.encode(), "en", tmp_path / "roster.csv", {"a1": spec})
    totals = set()
    drawn = Counter()
    for i in range(6):
        probs = problems_for(course, spec, f"s{i}")
        assert len(probs) == 1 + choose
        pooled = [p for p in probs if p.pooled]
        assert len(pooled) == choose and [p.number for p in pooled] == list(range(2, 2 + choose))
        for p in pooled:
            assert p.max_score == pytest.approx(points, abs=1e-9)
            assert round(sum(x.points for x in p.parts()) * 100) == round(points * 100)
            drawn[(p.family, p.level)] += 1
        totals.add(round(sum(p.max_score for p in probs), 2))
    assert len(totals) == 1
    assert set(drawn) <= set(alts)


# ------------------------------------------------------------------ notebooks
def test_notebooks_hold_one_grade_cell_per_pooled_number(tmp_path):
    course = pooled_course(tmp_path / "c", students=10)
    spec = course.assignment("conv1")
    seen = set()
    for s in course.roster():
        own = problems_for(course, spec, s.student_id)[4]
        seen.add(own.family)
        for mode in ("personal", "source"):
            nb = json.loads(notebook_text(course, "conv1", s.student_id, s.display, "en", mode))
            cells = [c for c in nb["cells"] if c["metadata"].get("pset_problem") == 5]
            graded = [c for c in cells if c["metadata"].get("nbgrader", {}).get("grade")]
            if mode == "personal":
                assert [c["id"] for c in graded] == [pool_cell_id(5)]
                assert graded[0]["metadata"]["nbgrader"]["points"] == 4.0
                data = next(c for c in cells if c["id"] == "data_5")
                assert "".join(data["source"]) == own.data_code()
                # the one cell checks every answer of the problem, and the format spec
                # of the setup cell lists every part of the student's own alternative
                src = "".join(graded[0]["source"])
                assert "_pset_check(5, None)" in src
                setup = "".join(next(c for c in nb["cells"] if c["id"] == "setup")["source"])
                line = next(x for x in setup.splitlines() if x.startswith("_PSET_SPEC = "))
                listed = [name for name, *_ in ast.literal_eval(line.split(" = ", 1)[1])[5]]
                assert listed == [p.name for p in own.parts()]
            # the other problems keep one cell per part
            other = [c["id"] for c in nb["cells"] if c["metadata"].get("pset_problem") == 1
                     and c["metadata"].get("nbgrader", {}).get("grade")]
            assert other == [grade_cell_id(1, p.name) for p in problems_for(
                course, spec, s.student_id if mode == "personal" else "template")[0].parts()]
    assert seen == {"pooling", "receptive_field"}       # 10 students: both are drawn
    src = json.loads(notebook_text(course, "conv1", "template", "template", "en", "source"))
    statement = "".join(next(c for c in src["cells"] if c["id"] == "statement_5")["source"])
    assert "pooling L2, receptive_field L2" in statement and "4 points" in statement
    test = "".join(next(c for c in src["cells"] if c["id"] == pool_cell_id(5))["source"])
    assert "_pset_score_problem(5, globals())" in test and "HIDDEN TESTS" in test
    ru = json.loads(notebook_text(course, "conv1", "template", "template", "ru", "source"))
    ru_statement = "".join(next(c for c in ru["cells"] if c["id"] == "statement_5")["source"])
    assert "Набор задач" in ru_statement


# ------------------------------------------------------------------ grading
@pytest.fixture(scope="module")
def graded_pool(tmp_path_factory):
    """A class of 16 with a pool, simulated returns, `grade`, `pset report`."""
    root = tmp_path_factory.mktemp("pool") / "c"
    course = pooled_course(root, students=16)
    for args in (["generate", "conv1"], ["simulate", "conv1"], ["report", "conv1"]):
        if args[0] == "report":
            r = subprocess.run([str(BIN / "grade"), str(root / "submitted"), "--course",
                                str(root)], capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stderr[-3000:]
        r = subprocess.run([str(BIN / "pset"), *args, "--course", str(root)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    return course


@pytest.mark.slow
def test_grade_scores_each_students_own_alternative(graded_pool):
    root = graded_pool.root
    res = json.loads((root / "grades" / "conv1" / "results.json").read_text(encoding="utf-8"))
    expected = json.loads((root / "simulated.json").read_text(encoding="utf-8"))
    spec = graded_pool.assignment("conv1")
    journal = {}
    for line in (root / "grades" / "conv1" / "journal.jsonl").read_text().splitlines():
        r = json.loads(line)
        journal[r["student_id"]] = r
    for e in expected:
        sid = e["student_id"]
        assert res[sid]["score"] == pytest.approx(e["expected_score"], abs=0.011), e
        assert journal[sid]["max_score"] == pytest.approx(21.0)
        own = problems_for(graded_pool, spec, sid)[4]
        p5 = journal[sid]["problems"][4]
        assert (p5["family"], p5["level"]) == (own.family, own.level)
        assert [x["part"] for x in p5["parts"]] == [p.name for p in own.parts()]


@pytest.mark.slow
def test_gradebook_cells_sum_a_pooled_problem(graded_pool):
    from convpset.autograder.outputs import Journal
    from convpset.integrations.nbgrader.gradebook import cell_scores

    pooled = set(graded_pool.assignment("conv1").pooled_numbers())
    for r in Journal(graded_pool.root / "grades" / "conv1").load().values():
        cells, manual = cell_scores(r, pooled)
        assert manual == {}                  # no overrides in this course
        p5 = r.problems[4]
        assert cells[pool_cell_id(5)] == pytest.approx(sum(x.score for x in p5.parts))
        assert not any(k.startswith("test_5_") and k != pool_cell_id(5) for k in cells)
        assert sum(cells.values()) == pytest.approx(r.score, abs=0.011)
        assert len(cells) == sum(len(p.parts) for p in r.problems[:4]) + 1


@pytest.mark.slow
def test_report_has_a_row_per_alternative_and_the_pool_comparison(graded_pool):
    import html
    import re

    root = graded_pool.root
    page = (root / "grades" / "conv1" / "report.html").read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    assert "Problem pools: is one alternative harder?" in text
    spec = graded_pool.assignment("conv1")
    drawn = Counter(problems_for(graded_pool, spec, s.student_id)[4].family
                    for s in graded_pool.roster())
    i = text.index("Problem pools: is one")
    block = text[i:i + 2500]
    for fam in ("pooling", "receptive_field"):
        assert f"{fam} L2" in block
    # the difficulty table: problem 5 once per alternative, marked as pooled
    assert text.count("pooling (pool)") == 1 and text.count("receptive_field (pool)") == 1
    assert sum(drawn.values()) == 16


# ------------------------------------------------------------------ the comparison
def test_comparison_against_closed_form():
    """Gap = difference of the group means (numpy, by hand); its bootstrap interval is
    close to the normal-theory interval diff ± 1.96·√(s²₁/n₁ + s²₂/n₂) at n = 400."""
    from convpset.autograder.report import compare_alternatives

    rng = np.random.default_rng(7)
    a = np.clip(rng.normal(0.8, 0.15, 400), 0, 1)
    b = np.clip(rng.normal(0.6, 0.15, 400), 0, 1)
    cmp = compare_alternatives({"A": a.tolist(), "B": b.tolist()})
    assert (cmp.easiest, cmp.hardest) == ("A", "B")
    assert cmp.gap == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    half = 1.96 * math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    lo, hi = cmp.gap_ci
    assert lo == pytest.approx(cmp.gap - half, abs=0.006)
    assert hi == pytest.approx(cmp.gap + half, abs=0.006)
    assert cmp.p < 0.01 and cmp.flagged
    n, mean, mlo, mhi = cmp.groups["A"]
    se = a.std(ddof=1) / math.sqrt(len(a))
    assert n == 400 and mean == pytest.approx(a.mean())
    assert mlo == pytest.approx(a.mean() - 1.96 * se, abs=0.004)
    assert mhi == pytest.approx(a.mean() + 1.96 * se, abs=0.004)


def test_comparison_flags_only_a_real_gap_past_the_threshold():
    from convpset.autograder.report import POOL_GAP, compare_alternatives

    rng = np.random.default_rng(3)
    same = {k: rng.uniform(0, 1, 300).tolist() for k in "ABC"}
    assert not compare_alternatives(same).flagged
    # real but small: significant, below the threshold -> reported, not flagged
    small = {"A": (rng.uniform(0, 1, 3000) * 0.95 + 0.05).tolist(),
             "B": (rng.uniform(0, 1, 3000) * 0.95).tolist()}
    cmp = compare_alternatives(small)
    assert cmp.p < 0.05 and cmp.gap < POOL_GAP and not cmp.flagged
    # large but by chance (two students each): not tested, not flagged
    assert not compare_alternatives({"A": [1.0, 1.0], "B": [0.0, 0.0]}).tested
    big = {"A": [1.0] * 20 + [0.5] * 5, "B": [0.0] * 20 + [0.5] * 5, "C": [0.5] * 25}
    cmp = compare_alternatives(big)
    assert cmp.flagged and (cmp.easiest, cmp.hardest) == ("A", "B")
    assert cmp.gap == pytest.approx(0.8)


@pytest.mark.slow
def test_pset_pools_balance_then_counts_are_even(tmp_path):
    import re

    course = pooled_course(tmp_path / "c", students=13)
    root = course.root

    def pools(*args: str) -> str:
        r = subprocess.run([str(BIN / "pset"), "pools", "conv1", "--course", str(root), *args],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout

    out = pools("--balance")
    m = re.search(r"put draw = (\d+) in this pool's entry", out)
    assert m, out
    cfg = root / "pset.toml"
    cfg.write_text(cfg.read_text().replace("choose = 1,", f"choose = 1, draw = {m.group(1)},"))
    shown = pools()
    counts = [int(x) for x in re.findall(r"L2: (\d+)", shown)]
    assert sorted(counts) == [6, 7], shown
    spec = load_course(root).assignment("conv1")
    # the config's draw is the one notebooks use: a fresh load draws the printed counts
    held = Counter(problems_for(load_course(root), spec, s.student_id)[4].family
                   for s in course.roster())
    assert sorted(held.values()) == [6, 7]
    plain = tmp_path / "plain"
    init_course(plain, students=2)
    r = subprocess.run([str(BIN / "pset"), "pools", "conv1", "--course", str(plain)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip() == "error: assignment conv1 has no problem pool"


def test_bad_pool_in_library_raises_course_error(tmp_path):
    root = tmp_path / "c"
    init_course(root, students=1)
    cfg = root / "pset.toml"
    cfg.write_text(cfg.read_text().replace('{ family = "pooling", level = 2, points = 4 },',
                                           POOL.replace("choose = 1", "choose = 5") + ","))
    with pytest.raises(CourseError, match=r"choose must be an int from 1 to 2 \(.*\), found 5"):
        load_course(root)


def test_pool_section_warns_about_a_harder_alternative(tmp_path):
    """Twenty students of each alternative: pooling full marks, receptive_field 1 of 4 ->
    the section flags receptive_field, 3 of 4 points lower, in English and Russian."""
    from convpset.autograder.report import _pool_fairness
    from convpset.autograder.results import ProblemResult, StudentResult
    from convpset.notebooks.variants import pool_alternatives
    from convpset.problems.base import PartResult

    course = pooled_course(tmp_path / "c", students=1)
    spec = course.assignment("conv1")
    results = []
    for i in range(40):
        fam, got = ("pooling", 4.0) if i % 2 else ("receptive_field", 1.0)
        part = PartResult("x_5", got, 4.0, "correct" if got == 4 else "wrong", {"en": ""})
        results.append(StudentResult(f"s{i}", "conv1", "p", "", (ProblemResult(5, fam, 2, (part,)),)))
    alts = pool_alternatives(course, spec)
    assert [p.family for p in alts[5]] == ["pooling", "receptive_field"]
    [block] = _pool_fairness(spec, alts, results, "en")
    assert block["flagged"] and block["res"].hardest == "receptive_field L2"
    assert "receptive_field L2 scores 3.00 of 4 points lower" in block["message"]
    assert [r["n"] for r in block["rows"]] == [20, 20]
    assert [r["mean"] for r in block["rows"]] == ["4.00", "1.00"]
    [ru] = _pool_fairness(spec, alts, results, "ru")
    assert ru["flagged"] and "receptive_field L2" in ru["message"] and "баллов" in ru["message"]
    # the same scores on both alternatives: nothing to warn about
    even = [StudentResult(r.student_id, "conv1", "p", "", (ProblemResult(
        5, r.problems[0].family, 2, (PartResult("x_5", 3.0 if i % 3 else 2.0, 4.0, "wrong",
                                                 {"en": ""}),)),)) for i, r in enumerate(results)]
    [calm] = _pool_fairness(spec, alts, even, "en")
    assert calm["res"].tested and not calm["flagged"] and calm["message"] == ""
