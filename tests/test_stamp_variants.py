"""Grading reads the issued variants from the signed stamp: they must be exactly the
variants the generator gives, and anything but our own signature must be refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from convpset.notebooks.build import build_notebook, dumps
from convpset.notebooks.course import load_course
from convpset.notebooks.variants import STAMP_KEY, problems_for, problems_from_stamp

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "course"


@pytest.fixture(scope="module")
def course():
    return load_course(SAMPLE)


def _stamp(course, sid: str) -> dict:
    spec = course.assignment("conv1")
    nb = build_notebook(course, "conv1", spec.title, problems_for(course, spec, sid), sid, sid,
                        "en", "personal")
    # through JSON, as a returned notebook arrives (keys sorted on disk)
    return json.loads(dumps(nb))["metadata"][STAMP_KEY]


@pytest.mark.parametrize("sid", [f"s{i:03d}" for i in range(1, 13)])
def test_stamp_variants_equal_generated(course, sid):
    spec = course.assignment("conv1")
    issued = problems_from_stamp(course, spec, _stamp(course, sid), sid)
    generated = problems_for(course, spec, sid)
    assert issued is not None and len(issued) == len(generated)
    for a, b in zip(issued, generated, strict=True):
        assert a.variant.digest() == b.variant.digest()
        assert [p.points for p in a.parts()] == [p.points for p in b.parts()]
        # text built from the variant does not depend on key order
        assert a.data_code() == b.data_code()
        assert a.statement("ru") == b.statement("ru")


def test_stamp_refused_unless_ours_and_theirs(course):
    spec = course.assignment("conv1")
    st = _stamp(course, "s001")
    assert problems_from_stamp(course, spec, st, "s002") is None          # another student
    forged = copy.deepcopy(st)
    forged["problems"][0]["variant"]["params"]["x"][0][0][0] += 1         # edited numbers
    assert problems_from_stamp(course, spec, forged, "s001") is None
    resigned = copy.deepcopy(st)
    resigned["signature"] = "0" * 64
    assert problems_from_stamp(course, spec, resigned, "s001") is None
    assert problems_from_stamp(course, spec, None, "s001") is None
