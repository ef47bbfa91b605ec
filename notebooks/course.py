"""A course directory: nbgrader's layout plus our ``pset.toml`` and a roster CSV.

``pset.toml`` holds the course secret (which makes every student's variant
unpredictable to others), the default language, the roster path and the assignments,
each a list of problems (family, level, points, count).
"""

from __future__ import annotations

import csv
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from convpset.problems import FamilyError, family_names, get_family
from convpset.problems.base import LANGS
from convpset.problems.registry import register_folder

CONFIG_NAME = "pset.toml"
FAMILIES_DIR = "families"   # a course's own problem families (see README, "Writing a family")
RESERVED_IDS = frozenset({"template", "source", "release", "submitted", "autograded", "feedback"})
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CourseError(ValueError):
    """A problem with the course files; the message says where and what to do."""


@dataclass(frozen=True)
class ProblemSpec:
    family: str
    level: int = 1
    points: float | None = None    # total points of the problem; None: the family's defaults
    count: int = 1                 # how many variants of this family in a row


#: credit for an answer that matches a named misconception (``mistake_credit`` in an
#: assignment of pset.toml): "partial" -- element by element, like any partly right
#: answer (the default); "none" -- zero; a number in [0, 1] -- that fixed share of the part
MistakeCredit = str | float
MISTAKE_CREDIT_DEFAULT = "partial"


@dataclass(frozen=True)
class AssignmentSpec:
    name: str
    title: str
    problems: tuple[ProblemSpec, ...]
    mistake_credit: MistakeCredit = MISTAKE_CREDIT_DEFAULT


def parse_mistake_credit(raw: Any, where: str) -> MistakeCredit:
    """``"partial"``, ``"none"`` or a share in [0, 1]; CourseError naming ``where`` else."""
    if raw in ("partial", "none"):
        return str(raw)
    if isinstance(raw, int | float) and not isinstance(raw, bool) and 0 <= raw <= 1:
        return float(raw)
    raise CourseError(f"{where}: mistake_credit must be \"partial\", \"none\" or a number "
                      f"from 0 to 1, found {raw!r}")


@dataclass(frozen=True)
class Student:
    student_id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""

    @property
    def display(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name} ({self.student_id})" if name else self.student_id


@dataclass(frozen=True)
class Course:
    root: Path
    name: str
    secret: bytes
    language: str
    roster_path: Path
    assignments: dict[str, AssignmentSpec] = field(default_factory=dict)

    def assignment(self, name: str) -> AssignmentSpec:
        if name not in self.assignments:
            known = ", ".join(sorted(self.assignments)) or "none"
            raise CourseError(f"no assignment {name!r} in {self.root / CONFIG_NAME} (known: {known})")
        return self.assignments[name]

    def roster(self) -> list[Student]:
        return load_roster(self.roster_path)

    def grades_dir(self, assignment: str) -> Path:
        """Where every command reads and writes an assignment's grades: one rule for
        ``grade``, ``pset report`` and ``pset export`` (``--out``/``--grades`` override)."""
        return self.root / "grades" / assignment


def find_course_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` that holds ``pset.toml``."""
    start = start.resolve()
    for d in [start, *start.parents]:
        if (d / CONFIG_NAME).is_file():
            return d
    raise CourseError(f"no {CONFIG_NAME} found in {start} or above; pass --course DIR "
                      f"or create a course with `pset init DIR`")


def _problem(raw: Any, where: str) -> ProblemSpec:
    if not isinstance(raw, dict) or "family" not in raw:
        raise CourseError(f"{where}: each problem needs a 'family' "
                          f"(one of {', '.join(family_names())})")
    fam = raw["family"]
    if fam not in family_names():
        raise CourseError(f"{where}: unknown family {fam!r}; known: {', '.join(family_names())}")
    level = raw.get("level", 1)
    if level not in get_family(fam).levels:
        raise CourseError(f"{where}: level must be one of {get_family(fam).levels}, "
                          f"found {level!r}")
    points = raw.get("points")
    if points is not None and (not isinstance(points, int | float) or points <= 0):
        raise CourseError(f"{where}: points must be a positive number, found {points!r}")
    count = raw.get("count", 1)
    if not isinstance(count, int) or not 1 <= count <= 20:
        raise CourseError(f"{where}: count must be an int from 1 to 20, found {count!r}")
    unknown = set(raw) - {"family", "level", "points", "count"}
    if unknown:
        raise CourseError(f"{where}: unknown keys {sorted(unknown)}")
    return ProblemSpec(fam, int(level), None if points is None else float(points), count)


def load_course(root: Path) -> Course:
    root = Path(root).resolve()
    path = root / CONFIG_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CourseError(f"{path} not found; create a course with `pset init {root}`") from None
    except tomllib.TOMLDecodeError as err:
        raise CourseError(f"{path}: invalid TOML: {err}") from None
    course = data.get("course", {})
    try:  # the course's own exercises, before its assignments name them
        register_folder(root / FAMILIES_DIR)
    except FamilyError as err:
        raise CourseError(str(err)) from None
    secret = course.get("secret")
    if not isinstance(secret, str) or len(secret) < 16:
        raise CourseError(f"{path}: [course] secret must be a string of at least 16 characters")
    lang = course.get("language", "en")
    if lang not in LANGS:
        raise CourseError(f"{path}: [course] language must be one of {LANGS}, found {lang!r}")
    assignments = {}
    for name, raw in data.get("assignments", {}).items():
        if not SAFE_ID.match(name):
            raise CourseError(f"{path}: assignment name {name!r} must be letters, digits, _ . -")
        probs = raw.get("problems", [])
        if not probs:
            raise CourseError(f"{path}: assignment {name!r} has no problems")
        specs = tuple(_problem(p, f"{path}: assignments.{name}.problems[{i}]")
                      for i, p in enumerate(probs))
        credit = parse_mistake_credit(raw.get("mistake_credit", MISTAKE_CREDIT_DEFAULT),
                                      f"{path}: assignments.{name}")
        assignments[name] = AssignmentSpec(name, str(raw.get("title", name)), specs, credit)
    return Course(root=root, name=str(course.get("name", root.name)), secret=secret.encode(),
                  language=lang, roster_path=root / course.get("roster", "roster.csv"),
                  assignments=assignments)


def load_roster(path: Path) -> list[Student]:
    """Read the roster CSV; every bad row is reported with its line number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CourseError(f"roster {path} not found") from None
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "student_id" not in reader.fieldnames:
        raise CourseError(f"{path}: line 1: the header must contain 'student_id' "
                          f"(found {reader.fieldnames})")
    students: list[Student] = []
    seen: dict[str, int] = {}
    errors = []
    for row in reader:
        line = reader.line_num
        sid = (row.get("student_id") or "").strip()
        if not sid:
            errors.append(f"{path}: line {line}: empty student_id")
            continue
        if not SAFE_ID.match(sid):
            errors.append(f"{path}: line {line}: student_id {sid!r} may only contain letters, "
                          f"digits, '_', '.', '-' (it becomes a folder name)")
            continue
        if sid in RESERVED_IDS:
            errors.append(f"{path}: line {line}: student_id {sid!r} is reserved (it names the "
                          f"template notebook or an nbgrader folder); choose another id")
            continue
        if sid in seen:
            errors.append(f"{path}: line {line}: duplicate student_id {sid!r} (first on line {seen[sid]})")
            continue
        seen[sid] = line
        students.append(Student(sid, (row.get("first_name") or "").strip(),
                                (row.get("last_name") or "").strip(),
                                (row.get("email") or "").strip()))
    if errors:
        raise CourseError("\n".join(errors))
    return students


EXAMPLE_ASSIGNMENT = {
    "title": "Convolutions by hand",
    "problems": [
        {"family": "conv_as_matrix", "level": 1, "points": 4},
        {"family": "param_count", "level": 1, "points": 4},
        {"family": "output_shape", "level": 2, "points": 4},
        {"family": "conv_backward", "level": 1, "points": 5},
        {"family": "pooling", "level": 2, "points": 4},
    ],
}

NBGRADER_CONFIG = '''c = get_config()  # noqa: F821 -- provided by nbgrader
c.CourseDirectory.course_id = {course_id!r}
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
c.Execute.timeout = 120
c.OverwriteCells.add_missing_cells = True
'''


def init_course(root: Path, name: str | None = None, language: str = "en",
                students: int = 30, seed: int | None = None) -> Course:
    """Create a course folder with an example assignment and a roster of ``students``."""
    root = Path(root)
    if (root / CONFIG_NAME).exists():
        raise CourseError(f"{root / CONFIG_NAME} already exists")
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("source", "release", "submitted", "autograded", "feedback"):
        (root / sub).mkdir(exist_ok=True)
    secret = secrets.token_hex(16) if seed is None else f"example-course-secret-{seed:08d}"
    config = {
        "course": {"name": name or root.name, "secret": secret, "language": language,
                   "roster": "roster.csv"},
        "assignments": {"conv1": EXAMPLE_ASSIGNMENT},
    }
    (root / CONFIG_NAME).write_text(
        "# Course configuration for `pset` and `grade`. Keep `secret` private: with it\n"
        "# anyone can compute every student's variant and answers.\n" + tomli_w.dumps(config),
        encoding="utf-8")
    (root / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(course_id=name or root.name),
                                             encoding="utf-8")
    first = ["Anna", "Boris", "Vera", "Gleb", "Daria", "Egor", "Zhanna", "Ivan", "Kira", "Lev",
             "Maria", "Nikita", "Olga", "Pavel", "Raisa", "Sergei", "Tatiana", "Ulyana",
             "Fedor", "Khristina"]
    last = ["Ivanova", "Petrov", "Smirnova", "Kuznetsov", "Popova", "Sokolov", "Lebedeva",
            "Kozlov", "Novikova", "Morozov"]
    with (root / "roster.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student_id", "first_name", "last_name", "email"])
        for i in range(students):
            sid = f"s{i + 1:03d}"
            w.writerow([sid, first[i % len(first)], last[i % len(last)], f"{sid}@example.edu"])
    return load_course(root)
