"""The late policy and overrides on Gradescope (issue 21 §1, §3): the bundle of a course
with a due time, run in Gradescope's /autograder layout with submission_metadata.json's
``created_at`` and a per-user ``assignment.due_date`` (an extension given in Gradescope)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from convpset.autograder.overrides import Override, OverrideStore
from convpset.integrations.gradescope.local import _env, layout
from convpset.integrations.lms.export import ExportRequest, export
from convpset.notebooks.course import load_course

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "course"
A = "conv1"
SIMULATED = {s["student_id"]: s for s in json.loads((EXAMPLE / "simulated.json").read_text())}
CORRECT = sorted(sid for sid, s in SIMULATED.items() if s["kind"] == "correct")[:2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("gsterm") / "course"
    course.mkdir()
    for name in ("pset.toml", "roster.csv"):
        shutil.copy2(EXAMPLE / name, course / name)
    text = (course / "pset.toml").read_text(encoding="utf-8")
    (course / "pset.toml").write_text(text.replace(
        '[assignments.conv1]\n',
        '[assignments.conv1]\ndue = "2026-10-01T23:59:00+03:00"\n'
        'late = { policy = "per_day", penalty = 0.1, floor = 0.5 }\n'), encoding="utf-8")
    OverrideStore(course).add([Override(A, CORRECT[1], "W_1", "adjust", -1.0,
                                        "sign convention", by="ta", source="cli")])
    out = course / "out"
    return export(load_course(course), A, ExportRequest("gradescope-autograder", out, out)).path


def run_as(bundle: Path, tmp: Path, sid: str, created_at: str, user_due: str | None) -> dict:
    nb = next((EXAMPLE / "submitted" / sid / A).glob("*.ipynb"))
    ag = layout(tmp, bundle, nb, sid)
    meta = json.loads((ag / "submission_metadata.json").read_text())
    meta["created_at"] = created_at
    meta["assignment"]["due_date"] = "2026-10-01T13:59:00.000000-07:00"
    if user_due is not None:
        meta["users"][0]["assignment"] = {"due_date": user_due}
    (ag / "submission_metadata.json").write_text(json.dumps(meta))
    r = subprocess.run(["bash", str(ag / "run_autograder")], cwd=ag, env=_env(ag),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads((ag / "results" / "results.json").read_text())


@pytest.mark.slow
def test_gradescope_created_at_and_user_extension(bundle, tmp_path):
    sid = CORRECT[0]
    # 1 day and 1 s after the due time (written in -07:00): 2 started days, 80 %
    late = run_as(bundle, tmp_path / "a", sid, "2026-10-02T13:59:01.000000-07:00", None)
    assert late["score"] == pytest.approx(21 - round(21 * 0.2, 2))
    assert "per started day" in late["output"] and "2026-10-02T13:59:01-07:00" in late["output"]
    assert late["extra_data"]["term"]["late"]["rule"] == "per_day"
    # the same time with a Gradescope extension to two days later: on time
    ext = run_as(bundle, tmp_path / "b", sid, "2026-10-02T13:59:01.000000-07:00",
                 "2026-10-03T13:59:00.000000-07:00")
    assert ext["score"] == pytest.approx(21)
    assert ext["extra_data"]["term"]["extension"] == "Gradescope"
    # an override recorded in the course travels in the bundle
    other = run_as(bundle, tmp_path / "c", CORRECT[1], "2026-10-01T13:00:00.000000-07:00", None)
    assert other["score"] == pytest.approx(20)
    assert any("sign convention" in t["output"] for t in other["tests"])
