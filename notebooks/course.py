"""A course directory: nbgrader's layout plus our ``pset.toml`` and a roster CSV.

``pset.toml`` holds the course secret (which makes every student's variant
unpredictable to others), the default language, the roster path and the assignments,
each a list of problems (family, level, points, count, and optionally the tolerance
``rtol``/``atol`` for float answers: course policy, stated to the student and used by
``grade``). A problem entry may instead be a pool (``{ pool = [...], choose = k }``):
every student draws ``k`` of its alternatives (see :class:`PoolSpec`).
"""

from __future__ import annotations

import csv
import re
import secrets
import tomllib
from collections.abc import Iterator
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
HUB_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")   # a folder name in the exchange


def _say(message: str, **ctx: Any) -> str:
    """An instructor message from the ``course`` text table (in English, the language of
    the command line; the table holds Russian too)."""
    from convpset.problems.text import render

    return render("en", f"course.{message}", **ctx)


class CourseError(ValueError):
    """A problem with the course files; the message says where and what to do."""


@dataclass(frozen=True)
class ProblemSpec:
    family: str
    level: int = 1
    points: float | None = None    # total points of the problem; None: the family's defaults
    count: int = 1                 # how many variants of this family in a row
    rtol: float | None = None      # course tolerance for float answers; None: the family's
    atol: float | None = None


@dataclass(frozen=True)
class PoolSpec:
    """A problem entry with alternatives: each student draws ``choose`` of them (nbgrader
    #1433's "k of n", PrairieLearn's alternative groups with ``numberChoose``).

    Every alternative is worth the same points (validated), so every student's maximum is
    the same whatever they drew; ``choose`` consecutive problem numbers hold the draw, in
    the order the alternatives are listed.
    """

    alternatives: tuple[ProblemSpec, ...]
    choose: int = 1
    draw: int = 0       # mixed into the draw: `pset pools A --balance` finds an even one

    @property
    def count(self) -> int:
        """Problem numbers the pool fills in the notebook (like ProblemSpec.count)."""
        return self.choose

    @property
    def points(self) -> float:
        return float(self.alternatives[0].points or 0.0)

    def label(self, index: int) -> str:
        alt = self.alternatives[index]
        return f"{alt.family} L{alt.level}"


Entry = ProblemSpec | PoolSpec


#: credit for an answer that matches a named misconception (``mistake_credit`` in an
#: assignment of pset.toml): "partial" -- element by element, like any partly right
#: answer (the default); "none" -- zero; a number in [0, 1] -- that fixed share of the part
MistakeCredit = str | float
MISTAKE_CREDIT_DEFAULT = "partial"


@dataclass(frozen=True)
class AssignmentSpec:
    name: str
    title: str
    problems: tuple[Entry, ...]
    mistake_credit: MistakeCredit = MISTAKE_CREDIT_DEFAULT
    # the term (see autograder/term.py): out of repr, so that the key fingerprint (the
    # repr) and with it every student's grade is not redone for a new due time; the
    # term digest of each journal row follows these instead
    due: Any = field(default=None, repr=False)           # aware datetime or None
    late: Any = field(default=None, repr=False)          # lateness.LatePolicy or None
    weight: float = field(default=1.0, repr=False)       # in the course gradebook

    def all_specs(self) -> Iterator[ProblemSpec]:
        """Every family/level the assignment can issue: the problems and every pool's
        alternatives."""
        for entry in self.problems:
            yield from entry.alternatives if isinstance(entry, PoolSpec) else (entry,)

    def pooled_numbers(self) -> dict[int, PoolSpec]:
        """Problem number -> its pool, for the numbers a pool fills (the same for every
        student: one nbgrader grade cell per number, see README "Problem pools")."""
        out: dict[int, PoolSpec] = {}
        number = 0
        for entry in self.problems:
            for _ in range(entry.count):
                number += 1
                if isinstance(entry, PoolSpec):
                    out[number] = entry
        return out


# Every table of pset.toml and the keys it accepts: an unknown key is an error naming
# the key, the table and these (a `due` typed `duee` is never silently lost).
TOP_KEYS = ("course", "assignments", "late", "gradescope", "check")
COURSE_KEYS = ("name", "secret", "language", "roster")
ASSIGNMENT_KEYS = ("title", "problems", "mistake_credit", "check", "due", "late", "weight")


def check_keys(raw: Any, allowed: tuple[str, ...], table: str, path: Path) -> dict:
    """``raw`` as a dict whose keys are all in ``allowed``; CourseError naming the first
    unknown key, the table and the accepted keys otherwise."""
    if not isinstance(raw, dict):
        raise CourseError(f"{path}: " + _say("table_type", table=table))
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise CourseError(f"{path}: " + _say("unknown_table_key", name=repr(unknown[0]),
                                             table=table, allowed=", ".join(allowed)))
    return raw


def parse_mistake_credit(raw: Any, where: str) -> MistakeCredit:
    """``"partial"``, ``"none"`` or a share in [0, 1]; CourseError naming ``where`` else."""
    if raw in ("partial", "none"):
        return str(raw)
    if isinstance(raw, int | float) and not isinstance(raw, bool) and 0 <= raw <= 1:
        return float(raw)
    raise CourseError(f"{where}: " + _say("mistake_credit", found=repr(raw)))


@dataclass(frozen=True)
class Student:
    student_id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    hub_user: str = ""     # JupyterHub login when it differs from student_id (nbgrader exchange)
    # the student's user id in the LMS (Canvas's numeric user id, in its download file
    # names and the gradebook's `ID` column; nbgrader's Student table calls it lms_user_id)
    lms_user_id: str = ""

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
            raise CourseError(_say("no_assignment", name=repr(name),
                                   config=self.root / CONFIG_NAME, known=known))
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
    raise CourseError(_say("no_config", config=CONFIG_NAME, start=start))


POOL_KEYS = ("pool", "choose", "points", "draw")


def _entry(raw: Any, where: str) -> Entry:
    """A problem entry of pset.toml: one problem, or a pool when it has ``pool``."""
    if isinstance(raw, dict) and "pool" in raw:
        return _pool(raw, where)
    return _problem(raw, where)


def _pool(raw: dict, where: str) -> PoolSpec:
    """``{ pool = [ {family, level, points}, ... ], choose = k, points = P }``.

    Points: an alternative without ``points`` takes the pool's (as PrairieLearn's
    alternatives inherit their group's); all must then be equal, so that whatever a
    student draws, their maximum is the same as everyone's."""
    unknown = set(raw) - set(POOL_KEYS)
    if unknown:
        raise CourseError(f"{where}: " + _say("pool_unknown_keys", keys=sorted(unknown),
                                              allowed=", ".join(POOL_KEYS)))
    alts = raw["pool"]
    if not isinstance(alts, list) or len(alts) < 2 or not all(isinstance(a, dict) for a in alts):
        raise CourseError(f"{where}: " + _say("pool_list", found=repr(alts)[:200]))
    pool_points = raw.get("points")
    if pool_points is not None and (isinstance(pool_points, bool)
                                    or not isinstance(pool_points, int | float)
                                    or pool_points <= 0):
        raise CourseError(f"{where}: " + _say("points", found=repr(pool_points)))
    specs = []
    for j, alt in enumerate(alts):
        at = f"{where}.pool[{j}]"
        if "pool" in alt:
            raise CourseError(f"{at}: " + _say("pool_nested"))
        if "count" in alt:
            raise CourseError(f"{at}: " + _say("pool_count"))
        spec = _problem(alt, at)
        if spec.points is None and pool_points is not None:
            spec = ProblemSpec(spec.family, spec.level, float(pool_points), 1, spec.rtol,
                               spec.atol)
        specs.append(spec)
    points = [s.points for s in specs]
    if None in points:
        missing = [j for j, p in enumerate(points) if p is None]
        raise CourseError(f"{where}: " + _say("pool_points_missing", alternatives=missing))
    if len(set(points)) > 1:
        raise CourseError(f"{where}: " + _say("pool_points_differ",
                                              found=", ".join(f"{p:g}" for p in points)))
    seen: dict[tuple[str, int], int] = {}
    for j, s in enumerate(specs):
        if (s.family, s.level) in seen:
            raise CourseError(f"{where}.pool[{j}]: " + _say(
                "pool_duplicate", family=s.family, level=s.level, first=seen[(s.family, s.level)]))
        seen[(s.family, s.level)] = j
    choose = raw.get("choose", 1)
    if isinstance(choose, bool) or not isinstance(choose, int) or not 1 <= choose <= len(specs):
        raise CourseError(f"{where}: " + _say("pool_choose", n=len(specs), found=repr(choose)))
    draw = raw.get("draw", 0)
    if isinstance(draw, bool) or not isinstance(draw, int) or not 0 <= draw < 2 ** 32:
        raise CourseError(f"{where}: " + _say("pool_draw", found=repr(draw)))
    return PoolSpec(tuple(specs), choose, draw)


def _problem(raw: Any, where: str) -> ProblemSpec:
    if not isinstance(raw, dict) or "family" not in raw:
        raise CourseError(f"{where}: " + _say("problem_family",
                                              families=", ".join(family_names())))
    fam = raw["family"]
    if fam not in family_names():
        raise CourseError(f"{where}: " + _say("unknown_family", family=repr(fam),
                                              families=", ".join(family_names())))
    level = raw.get("level", 1)
    if level not in get_family(fam).levels:
        raise CourseError(f"{where}: " + _say("level", levels=get_family(fam).levels,
                                              found=repr(level)))
    points = raw.get("points")
    if points is not None and (not isinstance(points, int | float) or points <= 0):
        raise CourseError(f"{where}: " + _say("points", found=repr(points)))
    count = raw.get("count", 1)
    if not isinstance(count, int) or not 1 <= count <= 20:
        raise CourseError(f"{where}: " + _say("count", found=repr(count)))
    tol = {k: _tolerance(raw, k, where) for k in ("rtol", "atol")}
    unknown = set(raw) - {"family", "level", "points", "count", "rtol", "atol"}
    if unknown:
        raise CourseError(f"{where}: " + _say("unknown_keys", keys=sorted(unknown),
                                              tolerance=bool(unknown & {"tolerance", "tol"})))
    return ProblemSpec(fam, int(level), None if points is None else float(points), count,
                       **tol)


def _tolerance(raw: dict, key: str, where: str) -> float | None:
    """A problem's ``rtol``/``atol``: how far a float answer may be from the key and still
    count (|answer − key| ≤ atol + rtol·|key|); stated in the student's statement."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise CourseError(f"{where}: " + _say("tolerance", setting=key, found=repr(value)))
    return float(value)


def _term(raw: dict, name: str, path: Path, default_late: Any) -> tuple[Any, Any, float]:
    """(due, late policy, weight) of ``[assignments.NAME]``: ``due`` an ISO 8601 time
    with an offset (a naive time is refused), ``late`` a table over the course-wide
    ``[late]``, ``weight`` >= 0 (default 1)."""
    from convpset.autograder.lateness import LatePolicy, PolicyError, parse_due, parse_policy

    try:
        due = parse_due(raw["due"]) if "due" in raw else None
        late = (parse_policy(raw["late"], f"assignments.{name}.late", default_late)
                if "late" in raw else default_late)
    except PolicyError as err:
        raise CourseError(f"{path}: assignments.{name}: {err}") from None
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight < 1e6:
        raise CourseError(f"{path}: assignments.{name}: " + _say("weight", found=repr(weight)))
    if due is not None and late is None:
        late = LatePolicy()          # a due time without a policy: late work gets 0
    return due, late, float(weight)


def load_course(root: Path) -> Course:
    root = Path(root).resolve()
    path = root / CONFIG_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CourseError(_say("config_missing", path=path, root=root)) from None
    except tomllib.TOMLDecodeError as err:
        raise CourseError(_say("bad_toml", path=path, error=err)) from None
    check_keys(data, TOP_KEYS, "top level", path)
    course = check_keys(data.get("course", {}), COURSE_KEYS, "course", path)
    from convpset.autograder.lateness import PolicyError, parse_policy

    try:
        default_late = parse_policy(data["late"], "late") if "late" in data else None
    except PolicyError as err:
        raise CourseError(f"{path}: {err}") from None
    try:  # the course's own exercises, before its assignments name them
        register_folder(root / FAMILIES_DIR)
    except FamilyError as err:
        raise CourseError(str(err)) from None
    secret = course.get("secret")
    if not isinstance(secret, str) or len(secret) < 16:
        raise CourseError(_say("secret", path=path))
    lang = course.get("language", "en")
    if lang not in LANGS:
        raise CourseError(_say("language", path=path, langs=LANGS, found=repr(lang)))
    assignments = {}
    table = data.get("assignments", {})
    if not isinstance(table, dict):
        raise CourseError(f"{path}: " + _say("table_type", table="assignments"))
    for name, raw in table.items():
        if not SAFE_ID.match(name):
            raise CourseError(_say("assignment_name", path=path, name=repr(name)))
        check_keys(raw, ASSIGNMENT_KEYS, f"assignments.{name}", path)
        probs = raw.get("problems", [])
        if not probs:
            raise CourseError(_say("no_problems", path=path, name=repr(name)))
        specs = tuple(_entry(p, f"{path}: assignments.{name}.problems[{i}]")
                      for i, p in enumerate(probs))
        credit = parse_mistake_credit(raw.get("mistake_credit", MISTAKE_CREDIT_DEFAULT),
                                      f"{path}: assignments.{name}")
        assignments[name] = AssignmentSpec(name, str(raw.get("title", name)), specs, credit,
                                           *_term(raw, name, path, default_late))
    return Course(root=root, name=str(course.get("name", root.name)), secret=secret.encode(),
                  language=lang, roster_path=root / course.get("roster", "roster.csv"),
                  assignments=assignments)


def id_problem(sid: str, lang: str = "en") -> str:
    """What is wrong with a student id, naming the first offending character, and the rule.

    Ids are ASCII on purpose: they name folders on every file system and in every zip
    an LMS produces; a student's name in any script goes in first_name/last_name.
    """
    from convpset.problems.text import render

    bad = next((c for c in sid if not (c.isascii() and (c.isalnum() or c in "_.-"))), None)
    if bad is not None:
        key = "id_non_ascii" if not bad.isascii() else "id_character"
        what = render(lang, f"guard.{key}", char=repr(bad))
    elif len(sid) > 64:
        what = render(lang, "guard.id_long", length=len(sid))
    else:
        what = render(lang, "guard.id_start", char=repr(sid[0]))
    return f"{what}: {render(lang, 'guard.id_rule')}"


# Roster columns that name one person in an LMS, matched there (and by our Canvas and
# Moodle fillers) with letter case ignored: two rows sharing one would let a grade be
# written into the other student's row.
IDENTITY_COLUMNS = ("student_id", "email", "lms_user_id")


def _shared_identity(row: dict[str, str | None], line: int,
                     identities: dict[tuple[str, str], int]) -> dict[str, object] | None:
    """The first identity of ``row`` an earlier row already has (``identities`` holds
    (column, case-folded value) -> line and is updated), as message fields, or None."""
    keys = [(col, (row.get(col if col != "student_id" or "student_id" in row else "id")
                   or "").strip()) for col in IDENTITY_COLUMNS]
    for col, value in keys:
        first = identities.get((col, value.casefold())) if value else None
        if first is not None:
            return {"column": col, "value": repr(value), "first": first}
    for col, value in keys:
        if value:
            identities[(col, value.casefold())] = line
    return None


def load_roster(path: Path) -> list[Student]:
    """Read the roster CSV; every bad row is reported with its line number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CourseError(_say("roster_missing", path=path)) from None
    reader = csv.DictReader(text.splitlines())
    fields = reader.fieldnames or []
    # nbgrader's `db student import` names the id column `id`; either name is accepted.
    id_col = "student_id" if "student_id" in fields else "id" if "id" in fields else None
    if id_col is None:
        raise CourseError(_say("roster_header", path=path, found=reader.fieldnames))
    students: list[Student] = []
    seen: dict[str, int] = {}
    identities: dict[tuple[str, str], int] = {}
    errors = []
    for row in reader:
        line = reader.line_num
        sid = (row.get(id_col) or "").strip()
        if not sid:
            errors.append(_say("empty_id", path=path, line=line))
            continue
        if not SAFE_ID.match(sid):
            errors.append(_say("bad_id", path=path, line=line, sid=repr(sid),
                               problem=id_problem(sid)))
            continue
        if sid in RESERVED_IDS:
            errors.append(_say("reserved_id", path=path, line=line, sid=repr(sid)))
            continue
        if sid in seen:
            errors.append(_say("duplicate_id", path=path, line=line, sid=repr(sid),
                               first=seen[sid]))
            continue
        hub = (row.get("hub_user") or "").strip()
        if hub and not HUB_USER.match(hub):
            errors.append(_say("bad_hub_user", path=path, line=line, hub=repr(hub)))
            continue
        clash = _shared_identity(row, line, identities)
        if clash:
            errors.append(_say("shared_identity", path=path, line=line, **clash))
            continue
        seen[sid] = line
        students.append(Student(sid, (row.get("first_name") or "").strip(),
                                (row.get("last_name") or "").strip(),
                                (row.get("email") or "").strip(), hub,
                                (row.get("lms_user_id") or "").strip()))
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

def init_course(root: Path, name: str | None = None, language: str = "en",
                students: int = 30, seed: int | None = None,
                exchange_root: str | None = None) -> Course:
    """Create a course folder with an example assignment and a roster of ``students``."""
    root = Path(root)
    if (root / CONFIG_NAME).exists():
        raise CourseError(_say("exists", path=root / CONFIG_NAME))
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
    from convpset.notebooks.nbgrader_config import DEFAULT_EXCHANGE_ROOT, write_configs

    write_configs(root, course_id=name or root.name, language=language,
                  exchange_root=exchange_root or DEFAULT_EXCHANGE_ROOT)
    first = ["Anna", "Boris", "Vera", "Gleb", "Daria", "Egor", "Zhanna", "Ivan", "Kira", "Lev",
             "Maria", "Nikita", "Olga", "Pavel", "Raisa", "Sergei", "Tatiana", "Ulyana",
             "Fedor", "Khristina"]
    last = ["Ivanova", "Petrov", "Smirnova", "Kuznetsov", "Popova", "Sokolov", "Lebedeva",
            "Kozlov", "Novikova", "Morozov"]
    from convpset.autograder.untrusted import csv_table

    # `id`: the column nbgrader's `db student import` reads; `hub_user`: a JupyterHub
    # login that differs from the id (empty: the same).
    rows = [["id", "first_name", "last_name", "email", "hub_user"]]
    for i in range(students):
        sid = f"s{i + 1:03d}"
        rows.append([sid, first[i % len(first)], last[i % len(last)], f"{sid}@example.edu", ""])
    with (root / "roster.csv").open("w", newline="", encoding="utf-8") as fh:
        fh.write(csv_table(rows, lineterminator="\r\n"))   # csv.writer's own line ending
    return load_course(root)
