"""What ``run_autograder`` runs in Gradescope's container, once per submission:
``python3 -m convpset.integrations.gradescope.run [--autograder-dir DIR]``.

It grades the one notebook in ``DIR/submission/`` for the student named in
``DIR/submission_metadata.json`` with the same pipeline, sandbox and limits as ``grade``
(:func:`convpset.autograder.pipeline.grade_stream`), and always leaves
``DIR/results/results.json`` -- a submission we cannot grade gets a score of 0 and a
message saying why, never a crashed run.

Who is graded: the submitting account, mapped to the roster explicitly (Gradescope's
Student ID, the roster's email or its ``gradescope_email`` column), never the student a
notebook's stamp names: see :mod:`convpset.integrations.gradescope.identity`. An
account nobody maps, a group submission, or another student's notebook: 0 and a
message naming both identities.

Cold start matters (Gradescope starts a fresh container per submission): the cheap
checks run before anything heavy is imported, the sandbox's warm template starts while
the grading process reads the course, and torch is imported only when the notebook
uses it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convpset.autograder.untrusted import json_text, terminal_text
from convpset.integrations.gradescope.identity import (
    Account,
    Decision,
    accounts_of,
    gradescope_emails,
)

CONFIG_NAME = "convpset_gradescope.json"
FALLBACK_CONFIG: dict[str, Any] = {"lang": "en", "assignment": "?", "visibility": "visible",
                                   "stdout_visibility": "hidden", "limits": {}}
COURSE_DIR = "course"
IGNORED_PARTS = ("__MACOSX", ".ipynb_checkpoints")


def submitted_files(folder: Path) -> list[Path]:
    """Every file the student uploaded (Gradescope keeps folders of a zip upload),
    without macOS zip debris and Jupyter checkpoints."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part in IGNORED_PARTS or part.startswith("._")
                              for part in p.relative_to(folder).parts))


def signed_stamp(course: Any, nb_path: Path) -> dict | None:
    """The notebook's stamp when this course's secret signed it (else None)."""
    from convpset.autograder.submissions import read_notebook
    from convpset.notebooks.variants import STAMP_KEY, _check_signature

    read = read_notebook(nb_path)
    nb = read.notebook
    meta = nb.get("metadata") if isinstance(nb, dict) else None
    stamp = meta.get(STAMP_KEY) if isinstance(meta, dict) else None
    if isinstance(stamp, dict) and _check_signature(course, stamp):
        return stamp
    return None


def protect_course(folder: Path) -> None:
    """Owner-only permissions on the bundled course (its pset.toml holds the secret).

    The sandboxed child runs as another uid; where Landlock is unavailable (a container
    whose seccomp profile blocks it) these permissions are what keeps it out, whatever
    modes the zip was extracted with.
    """
    try:
        folder.chmod(0o700)
        for p in folder.rglob("*"):
            p.chmod(0o700 if p.is_dir() else 0o600)
    except OSError:
        pass


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def grade_submission(ag: Path, cfg: dict[str, Any], started: float) -> dict[str, Any]:
    """results.json data for the submission in ``ag`` (the /autograder folder)."""
    from convpset.integrations.gradescope.results import md_code, rejected_json
    from convpset.problems.text import render

    lang, assignment = cfg["lang"], cfg["assignment"]
    vis = {"visibility": cfg["visibility"], "stdout_visibility": cfg["stdout_visibility"]}

    def reject(reason: str, key: str, **ctx: Any) -> dict[str, Any]:
        msg = render(lang, f"gradescope.{key}", assignment=assignment, **ctx)
        return rejected_json(msg, reason=reason, seconds=time.monotonic() - started, **vis)

    files = submitted_files(ag / "submission")
    rel = [str(p.relative_to(ag / "submission")) for p in files]
    notebooks = [p for p in files if p.suffix.lower() == ".ipynb"]
    if not notebooks:
        # file names are the student's: a backtick in one would close a hand-made code
        # span and let Markdown make an image (a tracking pixel on staff's page) or a link
        listed = ", ".join(md_code(f) for f in rel[:10]) or render(lang, "gradescope.nothing")
        return reject("not_notebook", "not_notebook", files=listed)
    if len(notebooks) > 1:
        listed = ", ".join(md_code(p.relative_to(ag / "submission")) for p in notebooks[:10])
        return reject("several_notebooks", "several_notebooks", count=len(notebooks),
                      files=listed)
    path = notebooks[0]

    from convpset.autograder import sandbox
    from convpset.autograder.pipeline import notebook_uses_torch

    # Start the warm template (and torch's, when needed) now: it imports numpy/torch in
    # its own process while this one reads the course and plans the notebook.
    sandbox.zygote_socket()
    if notebook_uses_torch(path):
        sandbox.prewarm_torch()

    from convpset.notebooks.course import load_course

    protect_course(ag / "source" / COURSE_DIR)
    course = load_course(ag / "source" / COURSE_DIR)
    roster = course.roster()
    stamp = signed_stamp(course, path)
    if stamp is not None and stamp.get("assignment") != assignment:
        return reject("other_assignment", "other_assignment", other=str(stamp.get("assignment")))
    decision = who_is_graded(course, roster, _load_json(ag / "submission_metadata.json"),
                             stamp)
    if decision.student_id is None:
        return _refused(decision, roster, cfg, started, vis)
    return _grade(course, cfg, path, decision, roster, started, vis,
                  _load_json(ag / "submission_metadata.json"))


def who_is_graded(course: Any, roster: list, metadata: Any, stamp: dict | None) -> Decision:
    """The identity rule (:func:`identity.decide`) over this course's roster, with the
    roster's ``gradescope_email`` column as the explicit mapping."""
    from convpset.integrations.gradescope.identity import RosterIndex, decide

    mapped = gradescope_emails(course.roster_path.read_text(encoding="utf-8"), roster)
    stamp_student = stamp.get("student") if stamp else None
    return decide(accounts_of(metadata), RosterIndex.build(roster, mapped),
                  stamp_student if isinstance(stamp_student, str) else None)


def identities(decision: Decision) -> dict[str, Any]:
    """Both identities, for the instructor (results.json's extra_data)."""
    return {"accounts": [a.as_dict() for a in decision.accounts],
            "stamp_student": decision.stamp_student,
            "matched_by": list(decision.matched_by),
            "candidates": list(decision.candidates)}


def _refused(decision: Decision, roster: list, cfg: dict[str, Any], started: float,
             vis: dict[str, str]) -> dict[str, Any]:
    """0 and a message: the account is nobody on the roster, a group, ambiguous, or the
    notebook is another student's."""
    from convpset.integrations.gradescope.results import md_code, rejected_json
    from convpset.problems.text import render

    names = {s.student_id: s.display for s in roster}

    def shown(sid: str | None) -> str:
        return md_code(names.get(sid, sid)) if sid else ""

    # the stamp's student by id only: an unknown account learns no roster name from us
    stamp = md_code(decision.stamp_student) if decision.stamp_student else ""
    msg = render(cfg["lang"], f"gradescope.{decision.reason}", assignment=cfg["assignment"],
                 who=md_code(decision.who), stamp=stamp,
                 student=shown(decision.candidates[0] if decision.candidates else None),
                 students=", ".join(shown(c) for c in decision.candidates))
    return rejected_json(msg, reason=str(decision.reason), seconds=time.monotonic() - started,
                         extra={"assignment": cfg["assignment"], **identities(decision)},
                         **vis)


def _grade(course: Any, cfg: dict[str, Any], path: Path, decision: Decision, roster: list,
           started: float, vis: dict[str, str], metadata: Any = None) -> dict[str, Any]:
    from convpset.autograder.pipeline import grade_stream
    from convpset.autograder.sandbox import Limits
    from convpset.autograder.submissions import Submission
    from convpset.integrations.gradescope.results import results_json

    student = str(decision.student_id)
    sub = Submission(student, path, "gradescope")
    plans = list(grade_stream(course, cfg["assignment"], [sub], limits=Limits(**cfg["limits"]),
                              jobs=1, roster_ids={s.student_id for s in roster}))
    r = gradescope_term(course, cfg["assignment"], plans[0].final, metadata)
    name = next((s.display for s in roster if s.student_id == student), student)
    from convpset.autograder.outputs import gradescope_json

    term = gradescope_json(r, cfg["lang"])["extra_data"].get("term")   # raw, penalty, late, overrides
    return results_json(r, cfg["lang"], student=name, seconds=time.monotonic() - started,
                        extra={"assignment": cfg["assignment"], **identities(decision),
                               **({"term": term} if term else {})},
                        **vis)


def gradescope_term(course: Any, assignment: str, r: Any, metadata: Any) -> Any:
    """The final result under the course's late policy, with Gradescope's times:
    ``created_at`` is the submission time; the user's own ``assignment.due_date`` (an
    extension given in Gradescope), else pset.toml's due time, else the assignment's
    ``due_date`` in the metadata is the deadline. Overrides recorded in the bundled
    course apply as in ``grade``."""
    from convpset.autograder.lateness import LatePolicy
    from convpset.autograder.term import Deadline, StudentTerm, TermContext, apply, gradescope_times

    submitted, gs_due = gradescope_times(metadata)
    ctx = TermContext.load(course)
    spec = course.assignment(assignment)
    d = ctx.for_submission(course, assignment, _AtPath(r.student_id)).deadline
    if spec.late is not None and d.extension is None:
        # no late policy in pset.toml: Gradescope's own due and late due dates decide
        # what it accepts, and the score is the key's
        policy = spec.late or LatePolicy()
        if _user_due(metadata) and gs_due is not None and gs_due != spec.due:
            d = Deadline(gs_due, policy, spec.due or gs_due, "Gradescope")
        elif d.due is None and gs_due is not None:
            d = Deadline(gs_due, policy, gs_due)
    return apply(r, StudentTerm(d, submitted, ctx.overrides.get((assignment, r.student_id), ())))


class _AtPath:
    """The fields of a Submission :meth:`TermContext.for_submission` reads (the time
    comes from the metadata here, not from a file)."""

    layout = "gradescope"
    path = None

    def __init__(self, student_id: str) -> None:
        self.student_id = student_id


def _user_due(metadata: Any) -> bool:
    users = metadata.get("users") if isinstance(metadata, dict) else None
    first = users[0] if isinstance(users, list) and users and isinstance(users[0], dict) else {}
    return isinstance(first.get("assignment"), dict) and "due_date" in first["assignment"]


def points_warning(metadata: Any, our_max: Any, lang: str, assignment: str) -> str | None:
    """A staff warning when the Gradescope assignment's ``total_points`` (a string such as
    ``"20.0"`` in submission_metadata.json) differs from our maximum: Gradescope shows
    the score out of its own total, so a 21-point notebook on a 25-point assignment
    reads as 84 %. (The total includes any manually graded questions: on purpose, the
    warning says so.)"""
    from convpset.problems.text import render

    info = metadata.get("assignment") if isinstance(metadata, dict) else None
    raw = info.get("total_points") if isinstance(info, dict) else None
    try:
        total, ours = float(str(raw).replace(",", ".")), float(our_max)
    except (TypeError, ValueError):
        return None
    if total != total or abs(total - ours) < 0.005:      # NaN, or equal
        return None
    return render(lang, "gradescope.points_differ", total=f"{total:g}", max=f"{ours:g}",
                  assignment=assignment)


def write_results(ag: Path, data: dict[str, Any]) -> Path:
    out = ag / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(".results.json.tmp")
    tmp.write_text(json_text(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="python3 -m convpset.integrations.gradescope.run")
    parser.add_argument("--autograder-dir", type=Path,
                        default=Path(os.environ.get("CONVPSET_AUTOGRADER_DIR", "/autograder")))
    args = parser.parse_args(argv)
    ag = args.autograder_dir.resolve()
    loaded = _load_json(ag / "source" / CONFIG_NAME)
    if not isinstance(loaded, dict):
        loaded = {}
        print(f"convpset: {ag / 'source' / CONFIG_NAME} missing or unreadable: not a "
              "bundle from `pset export --to gradescope-autograder`")
    cfg = {**FALLBACK_CONFIG, **loaded}
    try:
        data = grade_submission(ag, cfg, started)
    except Exception:       # never a crashed run: the student gets a message, staff the trace
        # staff-only stdout; the message may quote the student's notebook
        print(terminal_text(traceback.format_exc(), 20_000, newlines=True))
        from convpset.integrations.gradescope.results import rejected_json
        from convpset.problems.text import render

        data = rejected_json(render(cfg["lang"], "gradescope.internal_error"),
                             reason="internal_error", visibility=cfg["visibility"],
                             stdout_visibility=cfg["stdout_visibility"],
                             seconds=time.monotonic() - started)
    extra = data.setdefault("extra_data", {})
    warning = points_warning(_load_json(ag / "submission_metadata.json"),
                             extra.get("max_score", cfg.get("max_score")), cfg["lang"],
                             str(cfg["assignment"]))
    if warning:
        extra["points_warning"] = warning
    path = write_results(ag, data)
    flags = extra.get("flags") or extra.get("rejected")
    print(f"convpset {_version()}: score {data['score']:g}"
          f"{f' ({terminal_text(flags)})' if flags else ''} in {time.monotonic() - started:.2f} s -> {path}")
    print(staff_identity(extra, cfg["lang"]))      # account text escaped in there
    if warning:
        print(warning)
    sandbox = sys.modules.get("convpset.autograder.sandbox")
    if sandbox is not None:
        try:
            if "student_id" in data.get("extra_data", {}):
                print_isolation(sandbox)
        finally:
            sandbox.shutdown()
    return 0


def staff_identity(extra: dict[str, Any], lang: str) -> str:
    """One stdout line for staff: the account(s), the stamp's student, who was graded."""
    from convpset.autograder.untrusted import terminal_text
    from convpset.problems.text import render

    accounts = [Account(a.get("name", ""), a.get("email", ""), a.get("sid", ""), a.get("id", ""))
                for a in extra.get("accounts") or []]
    who = "; ".join(a.describe() for a in accounts) or "?"
    how = extra.get("rejected") or ", ".join(extra.get("matched_by") or []) or "-"
    return render(lang, "gradescope.staff_identity", who=terminal_text(who),
                  stamp=extra.get("stamp_student") or "-",
                  student=extra.get("student_id") or "-", how=how)


def print_isolation(sandbox: Any) -> None:
    """For staff (stdout): which protections this container let the sandbox apply (a
    container may refuse namespaces or Landlock; the uid switch and rlimits remain)."""
    try:
        rep = sandbox.isolation_report()
    except Exception as err:        # a diagnostic only: never fails the run
        print(f"sandbox isolation: not probed ({terminal_text(repr(err))})")
        return
    keys = ("euid", "setuid", "netns", "landlock", "landlock_abi", "mount_ns_exposed",
            "mount_ns_error", "no_new_privs", "probe_status")
    print("sandbox isolation: " + json.dumps({k: rep[k] for k in keys if k in rep}))


def _version() -> str:
    import convpset

    return f"{convpset.__version__} ({Path(convpset.__file__).parent})"


if __name__ == "__main__":
    sys.exit(main())
