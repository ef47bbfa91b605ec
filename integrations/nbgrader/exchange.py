"""nbgrader exchange classes that give every student their own notebook and file every
collected submission under the student who made it.

nbgrader releases one notebook for everybody (its tracker: #1153, #1433). These classes
plug into nbgrader's pluggable exchange (``c.ExchangeFactory.*``, nbgrader >= 0.7) and
keep its folder exchange, adding one folder of personal notebooks::

    EXCHANGE/COURSE/outbound/A/A.ipynb      a placeholder: "fetch through the course's
                                            nbgrader config" (what `nbgrader list` shows)
    EXCHANGE/COURSE/personal/A/SID/A.ipynb  SID's personal notebook (from `pset generate`)
    EXCHANGE/COURSE/personal/A/LOGIN -> SID a roster `hub_user` differing from the id
    EXCHANGE/COURSE/inbound, feedback       nbgrader's own

Who can read what. nbgrader's exchange is world-readable by design, and so is a personal
notebook: ``personal/A`` is 0711, so the class cannot be listed, but anyone with a shell
on the exchange's machine who knows (or guesses) a classmate's roster id can read
``personal/A/SID/A.ipynb``. That is why only what a student's notebook holds anyway
enters the exchange (statement, their numbers, the signed stamp, their name): no
answers, keys, hidden tests or the course secret. ``fetch_assignment`` itself hands out
only the caller's own notebook (``--student`` must name the caller's own roster
student), which keeps the Assignments tab and a mistyped ``--student`` honest; it is not
a wall against a shell. A login with no personal notebook (not on the roster, or not
mapped) gets a one-cell notebook saying why and what to do, besides the error: nbgrader's
Assignments tab ignores a failed fetch, so the page is what the student sees.

Who submitted what. An inbound folder counts for roster student S only when it was made
by S's login: its owner uid (``lstat``, never through a link) must be the uid of S's
``hub_user`` (or of S's id when there is none). Anything else is kept aside, never filed
over S's work, and listed in ``kept_aside/A.csv`` with who made it. Collect copies
regular files owned by that same user only and never follows a link; what it leaves out
becomes the student's flag and note in ``grade`` (:mod:`.collected`). A submission
without a readable ``submission_secret.txt`` or ``timestamp.txt`` gets no released
feedback, with a warning, and nobody else's is affected. Where every user runs under one
uid (e.g. DockerSpawner's ``jovyan``), ownership cannot be checked by the exchange: set
``c.ExchangeCollect.check_owner = False`` to collect by folder name, knowing that a
student can then submit under a classmate's name.
"""

from __future__ import annotations

import csv
import io
import os
import pwd
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from fnmatch import fnmatch
from pathlib import Path
from stat import S_IRGRP, S_IROTH, S_IRUSR, S_ISGID, S_IWGRP, S_IWUSR, S_IXGRP, S_IXOTH, S_IXUSR

import nbformat
from nbgrader.exchange.default import (
    ExchangeCollect,
    ExchangeFetchAssignment,
    ExchangeList,
    ExchangeReleaseAssignment,
    ExchangeReleaseFeedback,
)
from nbgrader.utils import get_username, notebook_hash, parse_utc
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from convpset.autograder.outputs import atomic_write
from convpset.autograder.untrusted import (
    StudentFileError,
    csv_text,
    markdown_text,
    read_bounded,
    read_bounded_at,
    terminal_text,
)
from convpset.integrations.nbgrader.collected import MANIFEST, Skipped, write_manifest
from convpset.notebooks.cells import NOTICE_KEY
from convpset.notebooks.course import CourseError, Student, load_course
from convpset.problems.text import render

PERSONAL = "personal"
PERSONALIZED = "personalized"   # where `pset generate` writes personal notebooks
KEPT_ASIDE = "kept_aside"       # COURSE/kept_aside/A.csv: inbound folders not collected
DIR_OPEN = S_IRUSR | S_IWUSR | S_IXUSR | S_IRGRP | S_IXGRP | S_IROTH | S_IXOTH      # 0755
DIR_UNLISTED = S_IRUSR | S_IWUSR | S_IXUSR | S_IXGRP | S_IXOTH                      # 0711
FILE_READ = S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH                                  # 0644
MAX_FILES = 1000        # files collected from one submission; the rest are skipped
MAX_DEPTH = 8           # folder depth inside one submission
MAX_SMALL = 4096        # timestamp.txt, submission_secret.txt
_SECRET = re.compile(r"[0-9A-Za-z_-]{16,512}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
def roster_names(students: list[Student], lang: str = "en") -> dict[str, str]:
    """Every name a student may fetch or submit under -> their roster id.

    The id itself and, when set, the roster's ``hub_user``. One name must mean one
    student: a login equal to another student's id or a login used twice is refused."""
    names = {s.student_id: s.student_id for s in students}
    problems = []
    for s in students:
        if not s.hub_user or s.hub_user == s.student_id:
            continue
        if s.hub_user in names:
            problems.append(render(lang, "nbgrader.login_clash", login=s.hub_user,
                                   student=s.student_id, other=names[s.hub_user]))
            continue
        names[s.hub_user] = s.student_id
    if problems:
        raise CourseError("\n".join(problems))
    return names


def _safe_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


class _Texts(LoggingConfigurable):
    lang = Unicode("en", help="language of convpset's messages (en or ru)").tag(config=True)

    def _lang(self) -> str:
        return self.lang if self.lang in ("en", "ru") else "en"

    def text(self, key: str, **ctx: object) -> str:
        return render(self._lang(), f"nbgrader.{key}", **ctx)


class PersonalReleaseAssignment(_Texts, ExchangeReleaseAssignment):
    """``nbgrader release_assignment A``: publishes every roster student's personal
    notebook (``personalized/SID/A/``, written by ``pset generate A``) and a placeholder
    under nbgrader's usual outbound folder. Requires ``nbgrader generate_assignment A``
    (the gradebook needs it), exactly like nbgrader's own release."""

    def init_src(self) -> None:
        super().init_src()
        root = Path(self.coursedir.root)
        try:
            course = load_course(root)
            self.students = course.roster()
            self.names = roster_names(self.students, self._lang())
        except CourseError as err:
            self.fail(str(err))
        a = self.coursedir.assignment_id
        self.personal_src = {s.student_id: root / PERSONALIZED / s.student_id / a
                             for s in self.students}
        missing = [sid for sid, d in self.personal_src.items() if not (d / f"{a}.ipynb").is_file()]
        if missing:
            self.fail(self.text("release_missing", assignment=a, count=len(missing),
                                students=", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")))
        self.notebook_names = sorted(p.name for p in Path(self.src_path).glob("*.ipynb"))

    def init_dest(self) -> None:
        super().init_dest()
        self.personal_root = os.path.join(self.course_path, PERSONAL)
        self.personal_path = os.path.join(self.personal_root, self.coursedir.assignment_id)
        group = (S_ISGID | S_IWGRP) if self.coursedir.groupshared else 0
        self.ensure_directory(self.personal_root, DIR_OPEN | group)

    def copy_files(self) -> None:
        # released = nbgrader's outbound folder (what formgrader and `nbgrader list` show);
        # personal notebooks without it are what an unrelease left: replaced silently
        if os.path.isdir(self.dest_path) and not self.force:
            self.fail(self.text("release_exists", assignment=self.coursedir.assignment_id))
        shutil.rmtree(self.dest_path, ignore_errors=True)
        shutil.rmtree(self.personal_path, ignore_errors=True)
        group = (S_ISGID | S_IWGRP) if self.coursedir.groupshared else 0
        os.makedirs(self.dest_path)
        for name in self.notebook_names:
            nbformat.write(self._placeholder(), os.path.join(self.dest_path, name))
        self.set_perms(self.dest_path, fileperms=FILE_READ | (S_IWGRP if group else 0),
                       dirperms=DIR_OPEN | group)
        os.makedirs(self.personal_path)
        for sid, src in self.personal_src.items():
            dest = os.path.join(self.personal_path, sid)
            self.do_copy(str(src), dest)
            self.set_perms(dest, fileperms=FILE_READ | (S_IWGRP if group else 0),
                           dirperms=DIR_OPEN | group)
        for login, sid in self.names.items():
            if login != sid:
                os.symlink(sid, os.path.join(self.personal_path, login))
        os.chmod(self.personal_path, DIR_UNLISTED | group)
        self._sync_gradebook()
        self.log.info(self.text("released", assignment=self.coursedir.assignment_id,
                                count=len(self.personal_src), path=self.personal_path))

    def _placeholder(self) -> nbformat.NotebookNode:
        text = self.text("placeholder", assignment=self.coursedir.assignment_id,
                         course=self.coursedir.course_id)
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text,
                                                                             id="pset_placeholder")])

    def _sync_gradebook(self) -> None:
        """Roster students (names, emails) into the gradebook, so formgrader lists them."""
        from convpset.integrations.nbgrader.gradebook import sync_students

        sync_students(self.coursedir.db_url, self.students)


class PersonalList(ExchangeList):
    """nbgrader's list, whose ``--remove`` (formgrader's Unrelease button, ``nbgrader
    list --remove``) also removes the personal notebooks the release put beside the
    outbound folder, so that the exchange holds nothing of an unreleased assignment."""

    def remove_files(self):
        assignments = super().remove_files()
        for info in assignments:
            course, a = info.get("course_id"), info.get("assignment_id")
            if course and a and _safe_name(course) and _safe_name(a):
                shutil.rmtree(os.path.join(self.root, course, PERSONAL, a), ignore_errors=True)
        return assignments


def _mapped(personal: str, name: str) -> str | None:
    """The roster id ``name`` stands for in a released assignment's personal folder: the
    student's own folder, or the target of a login's link; None when it is neither."""
    if not _safe_name(name):
        return None
    path = os.path.join(personal, name)
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return name
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        if _safe_name(target) and os.path.isdir(os.path.join(personal, target)) \
                and not os.path.islink(os.path.join(personal, target)):
            return target
    return None


class PersonalFetchAssignment(_Texts, ExchangeFetchAssignment):
    """``nbgrader fetch_assignment A`` (and the Assignments tab's Fetch button): exactly
    the current student's notebook. The caller is nbgrader's own user lookup (the unix
    login; the JupyterHub user on a hub); ``--student NAME`` is accepted when NAME is the
    caller's own roster id or login. Another student's name is refused (except for root,
    who can read every file anyway). Module doc: what a shell can still read."""

    def init_src(self) -> None:
        super().init_src()
        caller = get_username()
        given = self.coursedir.student_id
        name = given if given not in ("", "*") else caller
        a = self.coursedir.assignment_id
        personal = os.path.join(self.course_path, PERSONAL, a)
        sid = _mapped(personal, name)
        self.notice_for: str | None = None
        if sid is None:
            # nbgrader's Assignments tab ignores a failed fetch (nothing appears): the
            # student gets a one-page notebook saying why instead (see copy_files)
            self.notice_for = name
            return
        if name != caller and os.geteuid() != 0 and _mapped(personal, caller) != sid:
            self.fail(self.text("owner.fetch_other", user=terminal_text(caller, 100),
                                student=terminal_text(name, 100), assignment=a))
        self.src_path = os.path.join(personal, sid)
        self.student_name = sid

    def copy_files(self) -> None:
        if self.notice_for is None:
            super().copy_files()
            return
        a = self.coursedir.assignment_id
        why = self.text("not_on_roster", user=terminal_text(self.notice_for, 100),
                        course=self.coursedir.course_id, assignment=a)
        names = sorted(n for n in os.listdir(self.src_path) if n.endswith(".ipynb")) \
            or [f"{a}.ipynb"]
        os.makedirs(self.dest_path, exist_ok=True)
        nb = notice_notebook(self._lang(), "not_on_roster", self.notice_for,
                             self.coursedir.course_id, a)
        for name in names:
            nbformat.write(nb, os.path.join(self.dest_path, name))
        self.fail(why + " " + self.text("notice_written", path=self.dest_path))


def notice_notebook(lang: str, reason: str, user: str, course: str,
                    assignment: str) -> nbformat.NotebookNode:
    """The one-cell notebook a fetch delivers when it has no personal notebook to hand
    out: why, and what to do. ``grade`` recognises it by :data:`NOTICE_KEY` and never
    scores it as work."""
    text = render(lang, f"nbgrader.notice.{reason}", user=markdown_text(terminal_text(user, 100)),
                  course=markdown_text(course), assignment=assignment)
    cell = nbformat.v4.new_markdown_cell(text, id="pset_notice")
    cell.metadata.update({"editable": False, "deletable": False})
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata[NOTICE_KEY] = {"reason": reason, "assignment": assignment}
    return nb


# ------------------------------------------------------------------------ collect
@dataclass(frozen=True)
class Inbound:
    """One folder of ``inbound/`` and what collect decided about it.

    ``reason`` is None when it counts for ``student``; else why it is kept aside:
    ``bad_name``, ``link``, ``not_folder``, ``unreadable``, ``unknown_student``,
    ``no_account`` (the student's login has no unix account here, so the maker cannot be
    checked), ``not_owner`` (made by another user than the student's login)."""

    folder: str
    claimed: str
    student: str | None
    timestamp: datetime | None
    uid: int | None
    owner: str
    reason: str | None = None


def login_of(uid: int | None) -> str:
    """The login of ``uid`` (``uid N`` when it has none, ``?`` when unknown)."""
    if uid is None:
        return "?"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def expected_uids(students: list[Student]) -> dict[str, int | None]:
    """Roster id -> the uid that must own that student's inbound folders: the uid of the
    roster ``hub_user`` (the JupyterHub user is the unix user on a hub with local
    accounts), else of the roster id; None when there is no such account."""
    out: dict[str, int | None] = {}
    for s in students:
        try:
            out[s.student_id] = pwd.getpwnam(s.hub_user or s.student_id).pw_uid
        except KeyError:
            out[s.student_id] = None
    return out


def judge_inbound(folder: str, st: os.stat_result | None, assignment: str,
                  names: dict[str, str], uids: dict[str, int | None],
                  check_owner: bool) -> Inbound:
    """Whether the inbound folder ``folder`` (its ``lstat``: ``st``) counts, and for whom.

    Pure: the name says who it claims to be (nbgrader's ``LOGIN+A+TIMESTAMP[+RANDOM]``),
    the owner uid says who made it, and only both together decide."""
    parts = folder.rsplit("+", 3)
    claimed = parts[0]
    uid = st.st_uid if st is not None else None
    owner = login_of(uid)
    student = names.get(claimed)
    ts = None
    if len(parts) >= 3 and parts[1] == assignment:
        try:
            ts = parse_utc(parts[2])
        except (ValueError, OverflowError, TypeError):
            ts = None
    base = Inbound(folder, claimed, student, ts, uid, owner)

    def aside(reason: str) -> Inbound:
        return Inbound(folder, claimed, student, ts, uid, owner, reason)

    if ts is None:
        return aside("bad_name")
    if st is None:
        return aside("unreadable")
    if stat.S_ISLNK(st.st_mode):
        return aside("link")
    if not stat.S_ISDIR(st.st_mode):
        return aside("not_folder")
    if student is None:
        return aside("unknown_student")
    if check_owner:
        want = uids.get(student)
        if want is None:
            return aside("no_account")
        if uid != want:
            return aside("not_owner")
    return base


def latest(records: list[Inbound], duedate: datetime | None,
           before_duedate: bool) -> list[Inbound]:
    """Per roster student, the submission to collect among those that count (nbgrader's
    rule: the newest; with ``before_duedate``, the newest before the due date if any)."""
    by_student: dict[str, list[Inbound]] = {}
    for r in records:
        if r.reason is None and r.student is not None:
            by_student.setdefault(r.student, []).append(r)
    out = []
    for sid in sorted(by_student):
        recs = sorted(by_student[sid], key=lambda r: r.timestamp, reverse=True)
        if duedate is not None and before_duedate:
            early = [r for r in recs if r.timestamp <= duedate]
            recs = early or recs
        out.append(recs[0])
    return out


@dataclass
class _Budget:
    files: int = 0
    size: int = 0


class RosterCollect(_Texts, ExchangeCollect):
    """``nbgrader collect A``: each roster student's newest submission *that they made*,
    filed under their roster id (``submitted/SID/A``, where ``grade`` and the gradebook
    look). Folders made by anyone else are kept aside and listed (module doc). The copy
    holds regular files of the submitter only, never a link's target."""

    def init_src(self) -> None:
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        try:
            self.students = load_course(Path(self.coursedir.root)).roster()
            self.names = roster_names(self.students, self._lang())
        except CourseError as err:
            self.fail(str(err))
        self.uids = expected_uids(self.students)
        a = self.coursedir.assignment_id
        pattern = f"{self.coursedir.student_id or '*'}+{a}+*"
        try:
            self._inbound_fd = os.open(self.inbound_path, _DIR_FLAGS)
            entries = sorted(e for e in os.listdir(self._inbound_fd) if fnmatch(e, pattern))
        except OSError:
            self.fail(f"You don't have read permissions for the directory: {self.inbound_path}")
        records = [judge_inbound(e, self._lstat(e), a, self.names, self.uids,
                                 self.check_owner) for e in entries]
        self.duedate = self._duedate()
        self.src_records = latest(records, self.duedate, self.before_duedate)
        self.kept_aside = [r for r in records if r.reason is not None]
        for r in self.kept_aside:
            self._warn_aside(r)

    def _lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self._inbound_fd, follow_symlinks=False)
        except OSError:
            return None

    def _duedate(self) -> datetime | None:
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                return gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                return None

    def _made_by(self, r: Inbound) -> str:
        """The maker's login, with their roster id when the maker is on the roster."""
        sids = [sid for sid, uid in self.uids.items() if uid is not None and uid == r.uid]
        return r.owner + (f" ({', '.join(sids)})" if sids else "")

    def _warn_aside(self, r: Inbound) -> None:
        ctx = {"folder": terminal_text(r.folder, 200), "claimed": terminal_text(r.claimed, 100),
               "student": r.student or "—", "owner": terminal_text(self._made_by(r), 200),
               "reason": self.text(f"owner.reason.{r.reason}")}
        key = "owner.cheating" if r.reason == "not_owner" else "owner.kept_aside"
        self.log.warning(self.text(key, **ctx))

    def init_dest(self) -> None:
        pass

    def copy_files(self) -> None:
        try:
            self._copy_all()
        finally:
            os.close(self._inbound_fd)
        self._write_kept_aside()

    def _copy_all(self) -> None:
        from convpset.integrations.nbgrader.gradebook import _timestamp

        a = self.coursedir.assignment_id
        self.log.info(self.text("owner.collecting", count=len(self.src_records), assignment=a,
                                aside=len(self.kept_aside)))
        for rec in self.src_records:
            dest = Path(self.coursedir.format_path(self.coursedir.submitted_directory,
                                                   rec.student, a))
            if dest.is_dir():
                old, _ = _timestamp(dest)       # (time or None, whether it was bad)
                newer = old is None or rec.timestamp > old
                if not ((self.update and newer) or (self.before_duedate and old != rec.timestamp)):
                    self.log.info(self.text("owner.not_updated", student=rec.student,
                                            assignment=a))
                    continue
            skipped = self._copy_one(rec, dest)
            if skipped is None:
                continue
            self.log.info(self.text("owner.collected", student=rec.student, assignment=a,
                                    owner=terminal_text(rec.owner, 100)))
            if skipped:
                from convpset.integrations.nbgrader.collected import skipped_text

                self.log.warning(self.text("owner.skipped", student=rec.student,
                                           files=skipped_text(skipped)))

    def _copy_one(self, rec: Inbound, dest: Path) -> list[Skipped] | None:
        """Copy one submission into ``dest`` (replacing it whole); what was left out, or
        None when the folder changed hands since it was judged (then kept aside)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(rec.folder, _DIR_FLAGS, dir_fd=self._inbound_fd)
        except OSError:
            self.kept_aside.append(replace(rec, reason="unreadable"))
            self._warn_aside(self.kept_aside[-1])
            return None
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.collect-", dir=dest.parent))
        try:
            if self.check_owner and os.fstat(fd).st_uid != rec.uid:
                self.kept_aside.append(replace(rec, reason="not_owner"))
                self._warn_aside(self.kept_aside[-1])
                shutil.rmtree(tmp)
                return None
            skipped: list[Skipped] = []
            self._walk(fd, tmp, "", rec.uid if self.check_owner else None, skipped,
                       _Budget(), 0)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)     # nothing half-copied is left
            raise
        finally:
            os.close(fd)
        write_manifest(tmp, rec.folder, rec.owner, skipped)
        os.chmod(tmp, DIR_OPEN)
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
        return skipped

    def _ignored(self, name: str, is_file: bool) -> bool:
        """nbgrader's own ``CourseDirectory.ignore`` / ``include`` rules."""
        if any(fnmatch(name, g) for g in self.coursedir.ignore):
            return True
        return is_file and bool(self.coursedir.include) and not any(
            fnmatch(name, g) for g in self.coursedir.include)

    def _walk(self, dfd: int, dest: Path, prefix: str, uid: int | None,
              skipped: list[Skipped], budget: _Budget, depth: int) -> None:
        """Copy the folder open at ``dfd`` into ``dest``: regular files of ``uid`` only,
        read through the open folder (no path component can turn into a link), bounded
        in count, per-file and total size (nbgrader's ``max_file_size``/``max_dir_size``)."""
        max_file = int(1000 * self.coursedir.max_file_size)
        max_total = int(1000 * self.coursedir.max_dir_size)
        for name in sorted(os.listdir(dfd)):
            rel = prefix + name
            if not prefix and name == MANIFEST:
                continue                     # ours alone (see collected.py)
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                skipped.append(Skipped(rel, "unreadable"))
                continue
            if self._ignored(name, stat.S_ISREG(st.st_mode)):
                continue
            if stat.S_ISLNK(st.st_mode):
                skipped.append(Skipped(rel, "link"))
            elif uid is not None and st.st_uid != uid:
                skipped.append(Skipped(rel, "foreign"))
            elif stat.S_ISDIR(st.st_mode):
                if depth >= MAX_DEPTH:
                    skipped.append(Skipped(rel, "too_deep"))
                    continue
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                except OSError:
                    skipped.append(Skipped(rel, "unreadable"))
                    continue
                try:
                    if uid is not None and os.fstat(sub).st_uid != uid:
                        skipped.append(Skipped(rel, "foreign"))
                        continue
                    (dest / name).mkdir(mode=DIR_OPEN)
                    self._walk(sub, dest / name, rel + "/", uid, skipped, budget, depth + 1)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode):
                self._copy_file(dfd, name, dest, rel, uid, skipped, budget, max_file, max_total)
            else:
                skipped.append(Skipped(rel, "special"))

    def _copy_file(self, dfd: int, name: str, dest: Path, rel: str, uid: int | None,
                   skipped: list[Skipped], budget: _Budget, max_file: int,
                   max_total: int) -> None:
        if budget.files >= MAX_FILES:
            skipped.append(Skipped(rel, "too_many"))
            return
        try:
            data, st = read_bounded_at(dfd, name, min(max_file, max_total - budget.size))
        except StudentFileError as err:
            kind = {"link": "link", "not_regular": "special", "too_large": "too_large"}
            skipped.append(Skipped(rel, kind.get(err.reason, "unreadable")))
            return
        if uid is not None and st.st_uid != uid:
            skipped.append(Skipped(rel, "foreign"))
            return
        budget.files += 1
        budget.size += len(data)
        fd = os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, FILE_READ)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    def _write_kept_aside(self) -> None:
        """``COURSE/kept_aside/A.csv``: every inbound folder this collect did not count,
        with who made it (removed when there is none)."""
        path = Path(self.coursedir.root) / KEPT_ASIDE / f"{self.coursedir.assignment_id}.csv"
        if not self.kept_aside:
            path.unlink(missing_ok=True)
            return
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.text("owner.csv_header").split(","))
        for r in self.kept_aside:
            w.writerow([csv_text(terminal_text(x, 300)) for x in
                        (r.folder, r.claimed, r.student or "", self._made_by(r),
                         self.text(f"owner.reason.{r.reason}"))])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buf.getvalue())
        self.log.warning(self.text("owner.listed", count=len(self.kept_aside), path=str(path)))


# ---------------------------------------------------------------- release_feedback
def feedback_keys(folder: Path) -> tuple[str, str] | str:
    """(timestamp, submission secret) of one student's feedback folder, or why not:
    ``timestamp`` or ``secret`` (missing, a link, not a file, too large, or malformed).
    Both files came from the student's inbound folder."""
    try:
        ts = read_bounded(folder / "timestamp.txt", MAX_SMALL).decode("utf-8").strip()
        parse_utc(ts)
    except (StudentFileError, UnicodeDecodeError, ValueError, OverflowError):
        return "timestamp"
    try:
        secret = read_bounded(folder / "submission_secret.txt", MAX_SMALL).decode("ascii")
    except (StudentFileError, UnicodeDecodeError):
        return "secret"
    if not _SECRET.fullmatch(secret):
        return "secret"
    return ts, secret


class SafeReleaseFeedback(_Texts, ExchangeReleaseFeedback):
    """``nbgrader release_feedback A``: nbgrader's release, except that a submission whose
    ``timestamp.txt`` or ``submission_secret.txt`` is missing or broken is skipped with a
    warning instead of stopping the release for the whole class."""

    def copy_files(self) -> None:
        exclude = set(filter(None, (self.coursedir.student_id_exclude or "").split(",")))
        a = self.coursedir.assignment_id
        regexp = re.escape(os.path.sep).join([
            self.coursedir.format_path(self.coursedir.feedback_directory, "(?P<student_id>.*)",
                                       a, escape=True),
            "(?P<notebook_id>.*).html"])
        released = 0
        for html in sorted(Path(p) for p in _glob(self.src_path, "*.html")):
            m = re.match(regexp, str(html))
            if m is None:
                continue
            sid, notebook_id = m.group("student_id"), m.group("notebook_id")
            if sid in exclude:
                continue
            keys = feedback_keys(html.parent)
            if isinstance(keys, str):
                self.log.warning(self.text(f"owner.feedback_no_{keys}",
                                           student=terminal_text(sid, 100), assignment=a))
                continue
            checksum = notebook_hash(secret=keys[1], notebook_id=notebook_id)
            tmp = os.path.join(self.dest_path, f"{checksum}-tmp.html")
            shutil.copy(html, tmp)
            shutil.move(tmp, os.path.join(self.dest_path, f"{checksum}.html"))
            released += 1
        self.log.info(self.text("owner.feedback_released", count=released, assignment=a))


def _glob(folder: str, pattern: str) -> list[str]:
    import glob

    return glob.glob(os.path.join(folder, pattern))
