"""``pset report``: the staff report of a graded assignment, its statistics, and the page
as rendered by a real headless Chromium (which CI installs: ``apt-get install chromium``).

The sample course is graded once per session into a directory shared by xdist workers
(file lock); ``tests/test_export.py`` reuses it through :func:`graded_sample`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from session_build import build_once  # noqa: E402

from convpset.autograder.batch import BatchOptions, grade_folder  # noqa: E402
from convpset.autograder.outputs import Journal  # noqa: E402
from convpset.autograder.report import (  # noqa: E402
    build_report,
    fairness_test,
    kruskal_wallis,
    permutation_kruskal,
)
from convpset.autograder.sandbox import Limits  # noqa: E402
from convpset.notebooks.course import load_course  # noqa: E402
from convpset.problems.text import render  # noqa: E402


class _Table(dict):
    """TEXT[lang][key] of the old inline dict, now read from the text tables."""

    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang = lang

    def __getitem__(self, key: str) -> str:
        if key.startswith("fl."):
            return render(self.lang, f"report.flag_label.{key[3:]}")
        return render(self.lang, f"report.{key}")


TEXT = {"en": _Table("en"), "ru": _Table("ru")}

EXAMPLE = ROOT / "examples" / "course"
ASSIGNMENT = "conv1"
FAST = Limits(wall_s=10, cell_s=2, cpu_s=5)
PSET = str(Path(sys.executable).with_name("pset"))
SECTIONS = ("h_summary", "h_difficulty", "h_misconceptions", "h_fairness", "h_flagged")
N_FAMILIES = 5                     # the sample assignment has one problem of each family
N_PLOTS = 2 + N_FAMILIES           # histogram, difficulty bars, one scatter per family
                                   # (every family of the sample has a varying feature)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000"]


def graded_sample(tmp_path_factory) -> tuple[Path, Path]:
    """(course dir, grades dir): a copy of the sample course, graded once per session."""
    def build(d: Path) -> str:
        course = d / "course"
        course.mkdir()
        for name in ("pset.toml", "roster.csv", "simulated.json"):
            shutil.copy2(EXAMPLE / name, course / name)
        shutil.copytree(EXAMPLE / "submitted", course / "submitted")
        grade_folder(course / "submitted", load_course(course), ASSIGNMENT,
                     BatchOptions(jobs=2, limits=FAST))
        return "ok"

    d = build_once(tmp_path_factory, "report_sample", "done", build)
    return d / "course", d / "course" / "grades" / ASSIGNMENT


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return graded_sample(tmp_path_factory)


@pytest.fixture(scope="module")
def pages(sample):
    course, grades = sample
    c = load_course(course)
    return {lang: build_report(c, ASSIGNMENT, grades, lang) for lang in ("en", "ru")}


@pytest.fixture(scope="module")
def journal(sample):
    return Journal(sample[1]).load()


def _section(page: str, name: str) -> str:
    m = re.search(rf'<section id="{name}">(.*?)</section>', page, re.S)
    assert m, f"section {name} missing"
    return m.group(1)


# ----------------------------------------------------------------------------- structure
def test_every_section_and_plot(pages):
    page = pages["en"]
    for key in SECTIONS:
        assert f"<h2>{TEXT['en'][key]}</h2>" in page
    imgs = re.findall(r'<img class="plot"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) == N_PLOTS
    assert all(len(b) > 2000 for b in imgs)
    assert len(re.findall(r'<div class="family', page)) == N_FAMILIES


def test_self_contained(pages):
    for page in pages.values():
        assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page), "external resource"
        assert "<link" not in page and "<script src" not in page
        assert "@import" not in page and "url(" not in page


def test_summary_numbers(pages, journal):
    from convpset.autograder.report import untouched

    returned = [r for r in journal.values() if "no_submission" not in r.flags]
    scores = sorted(r.score for r in returned if not untouched(r))
    n_untouched = sum(untouched(r) for r in returned)
    assert n_untouched >= 1                       # the sample's empty return
    summary = _section(pages["en"], "summary")
    cells = re.findall(r'<td class="num">([^<]*)</td>', summary)
    assert cells[0] == str(len(scores)) and cells[1] == str(n_untouched)
    assert cells[3] == f"{np.mean(scores):.2f}"
    assert cells[5] == f"{min(scores):g}" and cells[6] == f"{max(scores):g}"
    ru = re.findall(r'<td class="num">([^<]*)</td>', _section(pages["ru"], "summary"))
    assert ru[3] == f"{np.mean(scores):.2f}".replace(".", ",")     # a decimal comma in Russian


def test_misconceptions_listed(pages, journal):
    present = {x.mistake for r in journal.values() for p in r.problems for x in p.parts if x.mistake}
    assert "kernel_without_depth" in present
    table = _section(pages["en"], "misconceptions")
    assert "<code>kernel_without_depth</code>" in table
    assert "input depth" in table                           # the English sentence from problems/text
    ru = _section(pages["ru"], "misconceptions")
    assert "<code>kernel_without_depth</code>" in ru and "глубины" in ru
    # example students: the ones whose answers carried the mistake
    who = sorted({r.student_id for r in journal.values() for p in r.problems
                  for x in p.parts if x.mistake == "kernel_without_depth"})
    row = re.search(r"<code>kernel_without_depth</code>.*?</tr>", table, re.S).group(0)
    assert all(sid in row for sid in who[:5])


def test_flagged_students(pages, journal):
    swapped = [s for s, r in journal.items() if "stamp:other_student" in r.flags]
    tampered = [s for s, r in journal.items() if "stamp:tampered" in r.flags]
    broken = [s for s, r in journal.items() if "unreadable" in r.flags]
    exited = [s for s, r in journal.items() if "exited" in r.flags]
    assert swapped and tampered and broken and exited
    table = _section(pages["en"], "flagged")
    for sid in swapped + tampered + broken + exited:
        assert f'data-student="{sid}"' in table
    assert TEXT["en"]["fl.stamp:other_student"] in table
    assert TEXT["en"]["fl.stamp:tampered"] in table
    clean = [s for s, r in journal.items() if not r.flags]
    assert clean and all(f'data-student="{s}"' not in table for s in clean)


def test_russian_page(pages):
    ru = pages["ru"]
    assert '<html lang="ru">' in ru
    for key in SECTIONS:
        assert f"<h2>{TEXT['ru'][key]}</h2>" in ru
        assert TEXT["en"][key] not in ru
    assert TEXT["ru"]["fl.stamp:other_student"] in ru
    assert len(re.findall(r'<img class="plot"', ru)) == N_PLOTS


def test_fairness_section_names_the_test(pages):
    fair = _section(pages["en"], "fairness")
    assert "Kruskal" in fair and "permutation" in fair
    assert "Краскела" in _section(pages["ru"], "fairness")


# ----------------------------------------------------------------------------- statistics
def test_kruskal_wallis_known_value():
    # ranks 1..3 vs 4..6: H = 12/(6·7)·(6²/3 + 15²/3) − 3·7 = 27/7
    assert kruskal_wallis([1, 2, 3, 4, 5, 6], ["a"] * 3 + ["b"] * 3) == pytest.approx(27 / 7)
    # ties corrected; all equal gives 0
    assert kruskal_wallis([1, 1, 1, 1], ["a", "a", "b", "b"]) == 0.0
    h, p = permutation_kruskal([1, 1, 1, 1], ["a", "a", "b", "b"])
    assert p == 1.0


def test_fairness_flags_a_feature_that_decides_the_score():
    rng = np.random.default_rng(1)
    feature = np.repeat([9.0, 16.0, 25.0], 12)                 # input size of the variant
    scores = np.clip(1.0 - (feature - 9) / 20 + rng.normal(0, 0.08, feature.size), 0, 1)
    res = fairness_test(scores, feature, n_features=2)
    assert res.tested and res.flagged and res.p < 0.01
    assert res.groups == {"9": 12, "16": 12, "25": 12}


def test_fairness_does_not_flag_noise():
    rng = np.random.default_rng(7)
    flagged = 0
    for _ in range(20):
        feature = rng.integers(1, 30, 40).astype(float)         # terciles
        scores = rng.uniform(0, 1, 40)
        res = fairness_test(scores, feature, permutations=500, seed=int(rng.integers(1000)))
        assert res.tested
        flagged += res.flagged
    assert flagged <= 3                                          # about 5% false alarms


def test_fairness_needs_enough_students():
    res = fairness_test([0.0, 1.0, 0.0, 1.0], [1.0, 2.0, 1.0, 2.0])
    assert not res.tested and not res.flagged
    res = fairness_test([0.5] * 20, [3.0] * 20)                 # one level only
    assert not res.tested and len(res.groups) == 1


# ----------------------------------------------------------------------------- CLI and browser
@pytest.fixture(scope="module")
def report_file(sample):
    course, grades = sample
    out = grades / "report_cli"
    r = subprocess.run([PSET, "report", ASSIGNMENT, "--course", str(course), "--out", str(out)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    path = out / "report.html"
    assert path.is_file() and "wrote" in r.stdout
    return path


def test_cli_errors(sample):
    course, _ = sample
    r = subprocess.run([PSET, "report", "nope", "--course", str(course)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no assignment 'nope'" in r.stderr
    r = subprocess.run([PSET, "report", ASSIGNMENT, "--course", str(course), "--lang", "de"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--lang" in r.stderr


def _chromium() -> str:
    from browser import chromium

    return chromium()


def test_renders_in_headless_chromium(report_file, tmp_path):
    from PIL import Image

    browser = _chromium()
    url = report_file.resolve().as_uri()
    shot = tmp_path / "shot.png"
    common = [browser, *CHROMIUM_FLAGS]
    r = subprocess.run([*common, f"--user-data-dir={tmp_path / 'profile1'}",
                        f"--screenshot={shot}", "--window-size=1280,4000", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1280, 4000)
        rgb = im.convert("RGB")
        colors = rgb.getcolors(maxcolors=1 << 22)
        assert colors is not None and len(colors) > 200, "screenshot looks blank"
        white = max(n for n, c in colors if c == (255, 255, 255)) if any(
            c == (255, 255, 255) for _, c in colors) else 0
        assert white < 0.97 * 1280 * 4000

    r = subprocess.run([*common, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-ok="true"' in body, body
    assert f'data-images="{N_PLOTS}"' in body
    widths = re.findall(r'data-natural-width="(\d+)"', dom)
    assert len(widths) == N_PLOTS and all(int(w) > 100 for w in widths)

