"""The Dask executor grades the sample course exactly as the local executor does.

A real ``dask.distributed.LocalCluster`` (worker processes) runs the sandboxed
execution; planning and judging stay in the test process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from convpset.autograder.batch import BatchOptions, grade_folder
from convpset.autograder.sandbox import Limits
from convpset.notebooks.course import load_course

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "course"
LIMITS = Limits(wall_s=15, cell_s=2, cpu_s=8)


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("dask") / "course"
    shutil.copytree(SAMPLE, dst, ignore=shutil.ignore_patterns(
        "personalized*", "grades", "autograded", "feedback", "release", "gradebook.db"))
    return dst


def _scores(report) -> dict[str, dict[str, float]]:
    return {r.student_id: {p.part: p.score for prob in r.problems for p in prob.parts}
            for r in report.results}


def test_dask_matches_local(course_copy: Path) -> None:
    course = load_course(course_copy)
    local = grade_folder(course_copy / "submitted", course, "conv1",
                         BatchOptions(out=course_copy / "g_local", jobs=2, limits=LIMITS))
    dask = grade_folder(course_copy / "submitted", course, "conv1",
                        BatchOptions(out=course_copy / "g_dask", jobs=2, limits=LIMITS,
                                     executor="dask"))
    assert len(dask.results) == len(local.results) == 30
    assert _scores(dask) == _scores(local)
    stamp_flags = {r.student_id: [f for f in r.flags if f.startswith("stamp:")] for r in local.results}
    assert stamp_flags == {r.student_id: [f for f in r.flags if f.startswith("stamp:")]
                           for r in dask.results}
    # the outputs a course publishes are the same files with the same numbers
    assert (course_copy / "g_dask" / "grades.csv").read_text().splitlines()[0] == \
        (course_copy / "g_local" / "grades.csv").read_text().splitlines()[0]
    assert sorted(p.name for p in (course_copy / "g_dask" / "feedback").iterdir()) == \
        sorted(p.name for p in (course_copy / "g_local" / "feedback").iterdir())
