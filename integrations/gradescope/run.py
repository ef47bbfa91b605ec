"""What ``run_autograder`` runs in Gradescope's container, once per submission:
``python3 -m convpset.integrations.gradescope.run [--autograder-dir DIR]``.

It grades the one notebook in ``DIR/submission/`` for the student named in
``DIR/submission_metadata.json`` with the same pipeline, sandbox and limits as ``grade``
(:func:`convpset.autograder.pipeline.grade_stream`), and always leaves
``DIR/results/results.json`` -- a submission we cannot grade gets a score of 0 and a
message saying why, never a crashed run.

Who is graded: the metadata's users are matched to the course roster by ``sid`` (the
student id Gradescope's roster holds), then by email. When nobody matches, the notebook
is graded for the student its signed stamp names (the documented fallback: the result
says so); with no valid stamp either, the result is 0 and asks the student to contact
the instructor.

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
from typing import Any, NamedTuple

from convpset.autograder.untrusted import terminal_text

CONFIG_NAME = "convpset_gradescope.json"
FALLBACK_CONFIG: dict[str, Any] = {"lang": "en", "assignment": "?", "visibility": "visible",
                                   "stdout_visibility": "hidden", "limits": {}}
COURSE_DIR = "course"
IGNORED_PARTS = ("__MACOSX", ".ipynb_checkpoints")


class Identity(NamedTuple):
    """Whom a submission is graded for, and how we know."""

    student_id: str | None
    matched_by: str          # "sid" | "email" | "stamp" | "none"
    who: str                 # the Gradescope account(s), for messages


def _users(metadata: Any) -> list[dict[str, Any]]:
    users = metadata.get("users") if isinstance(metadata, dict) else None
    return [u for u in users if isinstance(u, dict)] if isinstance(users, list) else []


def describe_users(metadata: Any) -> str:
    parts = []
    for u in _users(metadata):
        bits = [str(u[k]) for k in ("name", "email", "sid") if u.get(k) not in (None, "")]
        if bits:
            parts.append(", ".join(bits))
    return "; ".join(parts) or "?"


def identify(metadata: Any, roster: Sequence[Any], stamp_student: str | None) -> Identity:
    """Roster match by ``sid``, then by email (case-insensitive), over every user of the
    submission (group submissions list several); then the signed stamp's student.

    ``sid`` is the "Student ID" of Gradescope's roster: real metadata carries it on each
    user, ``null`` when the roster has none (gradescope/autograder_samples issue #60; the
    documented example shows only ``email``, ``id``, ``name``)."""
    ids = {s.student_id for s in roster}
    by_email = {s.email.strip().casefold(): s.student_id for s in roster if s.email.strip()}
    users = _users(metadata)
    who = describe_users(metadata)
    for u in users:
        sid = str(u.get("sid") or "").strip()
        if sid in ids:
            return Identity(sid, "sid", who)
    for u in users:
        email = str(u.get("email") or "").strip().casefold()
        if email in by_email:
            return Identity(by_email[email], "email", who)
    if stamp_student is not None and stamp_student in ids:
        return Identity(stamp_student, "stamp", who)
    return Identity(None, "none", who)


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
    from convpset.integrations.gradescope.results import rejected_json
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
        listed = ", ".join(f"`{f}`" for f in rel[:10]) or render(lang, "gradescope.nothing")
        return reject("not_notebook", "not_notebook", files=listed)
    if len(notebooks) > 1:
        listed = ", ".join(f"`{p.relative_to(ag / 'submission')}`" for p in notebooks[:10])
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
    metadata = _load_json(ag / "submission_metadata.json")
    ident = identify(metadata, roster, stamp.get("student") if stamp else None)
    if ident.student_id is None:
        return reject("unidentified", "unidentified", who=ident.who)
    return _grade(course, cfg, path, ident, roster, started, vis)


def _grade(course: Any, cfg: dict[str, Any], path: Path, ident: Identity, roster: list,
           started: float, vis: dict[str, str]) -> dict[str, Any]:
    from convpset.autograder.pipeline import grade_stream
    from convpset.autograder.sandbox import Limits
    from convpset.autograder.submissions import Submission
    from convpset.integrations.gradescope.results import results_json
    from convpset.problems.text import render

    lang = cfg["lang"]
    sub = Submission(ident.student_id, path, "gradescope")
    plans = list(grade_stream(course, cfg["assignment"], [sub], limits=Limits(**cfg["limits"]),
                              jobs=1, roster_ids={s.student_id for s in roster}))
    r = plans[0].final
    extra_notes = []
    if ident.matched_by == "stamp":
        extra_notes.append(render(lang, "gradescope.matched_stamp", who=ident.who,
                                  student=ident.student_id))
    name = next((s.display for s in roster if s.student_id == ident.student_id),
                ident.student_id)
    return results_json(r, lang, student=name, extra_notes=extra_notes,
                        seconds=time.monotonic() - started,
                        extra={"matched_by": ident.matched_by, "assignment": cfg["assignment"]},
                        **vis)


def write_results(ag: Path, data: dict[str, Any]) -> Path:
    out = ag / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(".results.json.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
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
    path = write_results(ag, data)
    flags = data.get("extra_data", {}).get("flags") or data.get("extra_data", {}).get("rejected")
    print(f"convpset {_version()}: score {data['score']:g}"
          f"{f' ({terminal_text(flags)})' if flags else ''} in {time.monotonic() - started:.2f} s -> {path}")
    sandbox = sys.modules.get("convpset.autograder.sandbox")
    if sandbox is not None:
        try:
            if "student_id" in data.get("extra_data", {}):
                print_isolation(sandbox)
        finally:
            sandbox.shutdown()
    return 0


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
