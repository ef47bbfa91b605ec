"""What ``nbgrader collect`` (our :class:`~.exchange.RosterCollect`) left out of a
submission, told to ``grade``.

Collect copies regular files only; a link, a FIFO, a device or a file someone else put
into the student's inbound folder is not collected. That must not vanish silently: the
collect writes a small manifest beside the collected files (``submitted/SID/A/``, under
a name no student file can take: collect never copies a student file of that name and
always writes its own), and ``grade`` turns it into that student's flag and note.

No nbgrader import here: ``grade`` reads the manifest for every nbgrader-layout
submission.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from convpset.autograder.results import note
from convpset.autograder.submissions import Submission
from convpset.autograder.untrusted import StudentFileError, read_bounded, terminal_text

MANIFEST = ".convpset_collect.json"
MAX_MANIFEST_BYTES = 200_000
MAX_LISTED = 10          # skipped files named in a note; the rest are counted
FLAG = "collect_skipped"


@dataclass(frozen=True)
class Skipped:
    """One entry of a student's inbound folder that collect did not copy, and why:
    ``link``, ``special`` (FIFO, device, socket), ``foreign`` (owned by another user
    than the folder's maker), ``too_large``, ``too_many`` (past the file-count cap),
    ``unreadable``."""

    path: str
    kind: str


def write_manifest(folder: Path, inbound: str, owner: str, skipped: list[Skipped]) -> None:
    """The manifest of one collected submission (always written, even with nothing
    skipped, so that it is ours and never a student's file)."""
    data = {"inbound": inbound, "owner": owner,
            "skipped": [{"path": s.path, "kind": s.kind} for s in skipped]}
    (folder / MANIFEST).write_text(json.dumps(data, ensure_ascii=True), encoding="utf-8")


def read_skipped(folder: Path) -> list[Skipped]:
    """What collect left out of the submission in ``folder`` (empty when there is no
    manifest, e.g. a submission not collected by nbgrader, or an unreadable one)."""
    try:
        data = json.loads(read_bounded(folder / MANIFEST, MAX_MANIFEST_BYTES))
    except (StudentFileError, ValueError, UnicodeDecodeError):
        return []
    items = data.get("skipped") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [Skipped(str(i.get("path", "")), str(i.get("kind", ""))) for i in items
            if isinstance(i, dict)]


def skipped_text(skipped: list[Skipped]) -> str:
    """``path (kind), …`` for a note: names shown as plain one-line text."""
    shown = [f"{terminal_text(s.path, 120)} ({s.kind})" for s in skipped[:MAX_LISTED]]
    if len(skipped) > MAX_LISTED:
        shown.append(f"+{len(skipped) - MAX_LISTED}")
    return ", ".join(shown)


def submission_folder(course_root: Path, assignment: str, sub: Submission) -> Path | None:
    """Where collect put ``sub``: beside its notebook (nbgrader layout), or, when the
    folder holds no notebook (a link was all there was), nbgrader's own
    ``submitted/SID/A`` of the course."""
    if sub.layout == "nbgrader" and sub.path is not None:
        return sub.path.parent
    if sub.issue == "no_notebook":
        return course_root / "submitted" / sub.student_id / assignment
    return None


def collect_note(course_root: Path, assignment: str,
                 sub: Submission) -> tuple[str, dict[str, str]] | None:
    """(flag, note) for a submission that collect did not copy whole, else None."""
    folder = submission_folder(course_root, assignment, sub)
    skipped = read_skipped(folder) if folder is not None else []
    if not skipped:
        return None
    return FLAG, note("nbgrader.owner.note_skipped", files=skipped_text(skipped))
