"""nbgrader exchange classes that give every student their own notebook.

nbgrader releases one notebook for everybody (its tracker: #1153, #1433). These classes
plug into nbgrader's pluggable exchange (``c.ExchangeFactory.*``, nbgrader >= 0.7) and
keep its folder exchange, adding one folder of personal notebooks::

    EXCHANGE/COURSE/outbound/A/A.ipynb      a placeholder: "fetch through the course's
                                            nbgrader config" (what `nbgrader list` shows)
    EXCHANGE/COURSE/personal/A/SID/A.ipynb  SID's personal notebook (from `pset generate`)
    EXCHANGE/COURSE/personal/A/LOGIN -> SID a roster `hub_user` differing from the id
    EXCHANGE/COURSE/inbound, feedback       nbgrader's own, unchanged

``personal/A`` is 0711: a student can open the folder of a name they know but cannot
list the class. What enters the exchange is what a student's notebook holds anyway
(statement, their numbers, the signed stamp, their name); no answers, keys, hidden tests
or the course secret. Submit, list and the feedback classes are nbgrader's own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from stat import S_IRGRP, S_IROTH, S_IRUSR, S_ISGID, S_IWGRP, S_IWUSR, S_IXGRP, S_IXOTH, S_IXUSR

import nbformat
from nbgrader.exchange.default import (
    ExchangeCollect,
    ExchangeFetchAssignment,
    ExchangeReleaseAssignment,
)
from nbgrader.utils import get_username
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from convpset.autograder.untrusted import terminal_text
from convpset.notebooks.course import CourseError, Student, load_course
from convpset.problems.text import render

PERSONAL = "personal"
PERSONALIZED = "personalized"   # where `pset generate` writes personal notebooks
DIR_OPEN = S_IRUSR | S_IWUSR | S_IXUSR | S_IRGRP | S_IXGRP | S_IROTH | S_IXOTH      # 0755
DIR_UNLISTED = S_IRUSR | S_IWUSR | S_IXUSR | S_IXGRP | S_IXOTH                      # 0711
FILE_READ = S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH                                  # 0644


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
        if os.path.isdir(self.dest_path) or os.path.isdir(self.personal_path):
            if not self.force:
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


class PersonalFetchAssignment(_Texts, ExchangeFetchAssignment):
    """``nbgrader fetch_assignment A`` (and the Assignments tab's Fetch button): exactly
    the current student's notebook. The student is ``--student NAME`` when given (as
    ``nbgrader submit`` accepts it), else nbgrader's own user lookup (the JupyterHub user
    on a hub); NAME is a roster id or a roster ``hub_user``. Anyone else gets an error,
    never another student's notebook."""

    def init_src(self) -> None:
        super().init_src()
        given = self.coursedir.student_id
        name = given if given not in ("", "*") else get_username()
        a = self.coursedir.assignment_id
        path = os.path.join(self.course_path, PERSONAL, a, name)
        if not _safe_name(name) or not os.path.isdir(path):
            self.fail(self.text("not_on_roster", user=terminal_text(name, 200),
                                course=self.coursedir.course_id,
                                assignment=a))
        self.src_path = path
        self.student_name = name


class RosterCollect(_Texts, ExchangeCollect):
    """``nbgrader collect A``: nbgrader's collect, with submissions made under a hub login
    filed under the student's roster id (``submitted/SID/A``), which is where ``grade``
    and the gradebook look for them."""

    def init_src(self) -> None:
        try:
            self.names = roster_names(load_course(Path(self.coursedir.root)).roster(),
                                      self._lang())
        except CourseError as err:
            self.fail(str(err))
        super().init_src()

    def _path_to_record(self, path: str) -> dict:
        rec = super()._path_to_record(path)
        name = rec["username"]
        if name in self.names:
            rec["username"] = self.names[name]
        else:
            self.log.warning(self.text("collect_unknown", user=terminal_text(name, 200)))
        return rec
