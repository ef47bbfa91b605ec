"""``pset gradescope-run autograder.zip NOTEBOOK [--sid ID]``: check a bundle before
uploading it, as ``otter run`` does for Otter's.

Builds Gradescope's layout in a temporary folder -- ``autograder/source`` (the zip
extracted), ``autograder/run_autograder`` (copied there as Gradescope's image build
does), ``autograder/submission`` (the notebook, or the contents of a .zip upload),
``autograder/submission_metadata.json`` and ``autograder/results`` -- and runs the
bundle's ``run_autograder`` from that folder, as Gradescope would.

Like ``otter run``, it does not run setup.sh: the bundle's own wheel is put first on
``PYTHONPATH`` (so the code that grades is the code in the zip, not the checkout) and
its dependencies come from the Python running this command, whose ``bin`` is put first
on ``PATH`` (run_autograder calls ``python3``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convpset.autograder.guards import say
from convpset.autograder.submissions import MAX_NOTEBOOK_BYTES
from convpset.autograder.untrusted import StudentFileError, read_bounded
from convpset.integrations.gradescope.run import CONFIG_NAME, COURSE_DIR
from convpset.notebooks.course import CourseError, load_roster


@dataclass(frozen=True)
class LocalRun:
    results: dict[str, Any]
    stdout: str
    returncode: int
    seconds: float


def metadata_for(sid: str | None, roster_csv: Path | None, title: str,
                 total_points: float | None = None) -> dict[str, Any]:
    """A submission_metadata.json as Gradescope writes it, for the account whose
    Student ID is ``sid`` (a sid not on the roster is kept: it shows the unknown-account
    path); without ``sid``, no user at all. ``total_points``: the assignment's points on
    Gradescope, a string as Gradescope writes it."""
    users = []
    if sid is not None:
        user: dict[str, Any] = {"id": 1, "sid": sid, "email": "", "name": sid}
        if roster_csv is not None:
            for s in load_roster(roster_csv):
                if s.student_id == sid:
                    user.update(email=s.email, name=f"{s.first_name} {s.last_name}".strip())
        users.append(user)
    assignment: dict[str, Any] = {"id": 1, "title": title, "group_submission": False}
    if total_points is not None:
        assignment["total_points"] = f"{float(total_points):.1f}"
    return {"id": 1, "created_at": "2026-01-01T00:00:00.000000+00:00",
            "assignment": assignment, "submission_method": "upload", "users": users,
            "previous_submissions": []}


def stamp_student(notebook: Path) -> str | None:
    """The student a notebook's stamp names (unchecked: only to play that student's
    account locally when no ``--sid`` is given; the bundle checks the signature)."""
    from convpset.notebooks.variants import STAMP_KEY

    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        student = nb["metadata"][STAMP_KEY]["student"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return student if isinstance(student, str) else None


def _roster_in(source: Path) -> Path | None:
    import tomllib

    try:
        cfg = tomllib.loads((source / COURSE_DIR / "pset.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    p = source / COURSE_DIR / cfg.get("course", {}).get("roster", "roster.csv")
    return p if p.is_file() else None


def layout(root: Path, bundle: Path, submission: Path, sid: str | None) -> Path:
    """Gradescope's /autograder under ``root``; returns that folder. Without ``sid``,
    the account is the one of the student the notebook's stamp names (an honest
    student submitting their own notebook)."""
    ag = root / "autograder"
    for sub in ("source", "submission", "results"):
        (ag / sub).mkdir(parents=True)
    try:
        with zipfile.ZipFile(bundle) as z:
            z.extractall(ag / "source")
    except (OSError, zipfile.BadZipFile) as err:
        raise CourseError(say("bad_zip", bundle=bundle, error=err)) from None
    if not (ag / "source" / "run_autograder").is_file():
        raise CourseError(say("no_run_autograder", bundle=bundle))
    shutil.copy2(ag / "source" / "run_autograder", ag / "run_autograder")
    _copy_submission(submission, ag / "submission")
    cfg = json.loads((ag / "source" / CONFIG_NAME).read_text(encoding="utf-8")) \
        if (ag / "source" / CONFIG_NAME).is_file() else {}
    if sid is None and submission.suffix.lower() == ".ipynb":
        sid = stamp_student(ag / "submission" / submission.name)   # the copy, read within the cap
    meta = metadata_for(sid, _roster_in(ag / "source"), str(cfg.get("title", "")),
                        cfg.get("max_score"))
    (ag / "submission_metadata.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return ag


def _env(ag: Path) -> dict[str, str]:
    env = dict(os.environ)
    wheels = sorted((ag / "source").glob("convpset-*.whl"))
    if wheels:
        # a wheel of pure Python is importable as a zip, but the sandbox child and the
        # package data want files: unpack it beside the layout
        site = ag.parent / "site"
        with zipfile.ZipFile(wheels[0]) as z:
            z.extractall(site)
        env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["CONVPSET_VENV"] = ""
    env["CONVPSET_AUTOGRADER_DIR"] = str(ag)
    return env


SUBMISSION_CAP = MAX_NOTEBOOK_BYTES      # bytes of a submission, unpacked
SUBMISSION_FILES = 1000                  # files in a zipped submission


def _copy_submission(submission: Path, dest: Path) -> None:
    """Put a student's upload where Gradescope puts it, reading no more than the caps: a
    regular file (never a link, FIFO or device) of at most ``SUBMISSION_CAP`` bytes, or a
    zip whose entries together unpack to at most that (a zip bomb is refused unread)."""
    def refuse(reason: str) -> CourseError:
        return CourseError(say("submission_refused", path=submission, reason=reason,
                               cap=SUBMISSION_CAP, files=SUBMISSION_FILES))

    try:
        data = read_bounded(submission, SUBMISSION_CAP)
    except StudentFileError as err:
        raise refuse(err.reason) from None
    if submission.suffix.lower() != ".zip":
        (dest / submission.name).write_bytes(data)
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > SUBMISSION_FILES or sum(i.file_size for i in infos) > SUBMISSION_CAP:
                raise refuse("too_large")
            z.extractall(dest)
    except (OSError, zipfile.BadZipFile, EOFError):
        raise refuse("unreadable") from None


def run_local(bundle: Path, submission: Path, sid: str | None = None,
              keep: Path | None = None) -> LocalRun:
    """Run the bundle on one submission; ``keep``: a folder to keep the layout in."""
    if not bundle.is_file():
        raise CourseError(say("file_missing", path=bundle))
    if not (submission.exists() or submission.is_symlink()):
        raise CourseError(say("file_missing", path=submission))
    tmp = Path(tempfile.mkdtemp(prefix="convpset-gs-")) if keep is None else keep
    try:
        ag = layout(tmp, bundle.resolve(), submission.absolute(), sid)   # never through a link
        t0 = time.monotonic()
        r = subprocess.run(["bash", str(ag / "run_autograder")], cwd=ag, env=_env(ag),
                           capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - t0
        out = ag / "results" / "results.json"
        if not out.is_file():
            raise CourseError(say("no_results", code=r.returncode,
                                  output=(r.stdout + r.stderr).strip()[-500:]))
        results = json.loads(out.read_text(encoding="utf-8"))
        return LocalRun(results, r.stdout + r.stderr, r.returncode, seconds)
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
