"""``pset export A --to gradescope-autograder``: the autograder.zip Gradescope builds an
image from.

Layout (Gradescope: ``setup.sh`` and ``run_autograder`` at the zip's root; the whole zip
is extracted to ``/autograder/source``)::

    setup.sh                    Python 3.11 + this wheel + torch==2.13.0 (CPU), once
    run_autograder              python3 -m convpset.integrations.gradescope.run
    convpset-VERSION-py3-none-any.whl   this package, built from the checkout
    constraints.txt             every dependency at the version installed here (freeze.py)
    convpset_gradescope.json    assignment, language, visibility, sandbox limits
    course/pset.toml            the course config WITH its secret (the bundle stays with
    course/ROSTER.csv           staff and Gradescope; students never receive it)

Settings come from ``pset.toml``'s optional ``[gradescope]`` table: ``visibility`` and
``stdout_visibility`` (Gradescope's ``hidden | after_due_date | after_published |
visible``; defaults ``visible`` and ``hidden``: student code's prints may reveal
nothing, but staff read them) and ``lang`` (default: the course's).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import convpset
from convpset.autograder.guards import say
from convpset.autograder.sandbox import Limits
from convpset.integrations.gradescope.freeze import CONSTRAINTS_NAME, FreezeError, constraints_text
from convpset.integrations.gradescope.identity import MappingError, gradescope_emails
from convpset.integrations.gradescope.results import VISIBILITIES
from convpset.integrations.gradescope.run import CONFIG_NAME, COURSE_DIR
from convpset.notebooks.course import CONFIG_NAME as PSET_TOML
from convpset.notebooks.course import Course, CourseError
from convpset.notebooks.variants import problems_for
from convpset.problems.base import LANGS

BUNDLE_NAME = "autograder.zip"
SCRIPTS = ("setup.sh", "run_autograder")
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)      # zip entries carry no build time


@dataclass(frozen=True)
class GradescopeSettings:
    visibility: str = "visible"
    stdout_visibility: str = "hidden"
    lang: str = "en"


def settings(course: Course) -> GradescopeSettings:
    """``[gradescope]`` of pset.toml, checked (a bad value names the key and the choices)."""
    path = course.root / PSET_TOML
    raw = tomllib.loads(path.read_text(encoding="utf-8")).get("gradescope", {})
    if not isinstance(raw, dict):
        raise CourseError(say("gradescope_table", path=path))
    unknown = set(raw) - {"visibility", "stdout_visibility", "lang"}
    if unknown:
        raise CourseError(say("gradescope_keys", path=path, keys=sorted(unknown)))
    out = GradescopeSettings(lang=course.language)
    for key in ("visibility", "stdout_visibility"):
        value = raw.get(key, getattr(out, key))
        if value not in VISIBILITIES:
            raise CourseError(say("gradescope_visibility", path=path, setting=key,
                                  choices=", ".join(VISIBILITIES), found=repr(value)))
    lang = raw.get("lang", course.language)
    if lang not in LANGS:
        raise CourseError(say("gradescope_lang", path=path, langs=LANGS, found=repr(lang)))
    return GradescopeSettings(raw.get("visibility", out.visibility),
                              raw.get("stdout_visibility", out.stdout_visibility), lang)


def grade_limits() -> Limits:
    """The sandbox limits of ``grade`` with its default options (``--timeout 20`` also
    sets the CPU limit of the whole notebook to 20 s)."""
    base = Limits()
    return Limits(cpu_s=max(1, int(base.wall_s)))


def checkout_root() -> Path:
    """The source checkout this package is imported from (where pyproject.toml is)."""
    root = Path(convpset.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise CourseError(say("not_a_checkout", root=root))
    return root


def _copy_source(root: Path, dest: Path) -> None:
    """pyproject.toml, README.md and convpset/ with the folders it links to: exactly the
    files that go into the wheel, without build/ leftovers of earlier builds."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, dest / name)
    shutil.copytree(root / "convpset", dest / "convpset", symlinks=True, ignore=skip)
    for link in (root / "convpset").iterdir():
        if link.is_symlink():
            target = link.resolve()
            rel = target.relative_to(root)
            shutil.copytree(target, dest / rel, symlinks=True, ignore=skip)


def build_wheel(out_dir: Path) -> Path:
    """``pip wheel --no-deps`` of the checkout; returns the wheel's path."""
    root = checkout_root()
    with tempfile.TemporaryDirectory(prefix="convpset-src-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        _copy_source(root, src)
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--quiet", "--wheel-dir", str(out_dir),
                            str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise CourseError(say("wheel_failed", error=tail[0]))
    wheels = sorted(out_dir.glob("convpset-*.whl"))
    if len(wheels) != 1:
        raise CourseError(say("wheel_count", count=len(wheels), folder=out_dir))
    return wheels[0]


def max_score(course: Course, assignment: str) -> float:
    """The assignment's maximum (the first roster student's variants: points are fixed
    per problem in pset.toml, or the family's defaults)."""
    spec = course.assignment(assignment)
    roster = course.roster()
    sid = roster[0].student_id if roster else "x"
    return round(sum(p.max_score for p in problems_for(course, spec, sid)), 2)


def bundle_config(course: Course, assignment: str, wheel: str) -> dict:
    spec = course.assignment(assignment)
    s = settings(course)
    return {"assignment": assignment, "title": spec.title, "lang": s.lang,
            "visibility": s.visibility, "stdout_visibility": s.stdout_visibility,
            "limits": asdict(grade_limits()), "wheel": wheel,
            "max_score": max_score(course, assignment),
            "convpset_version": convpset.__version__}


def frozen_constraints() -> str:
    """constraints.txt for the checkout's dependencies, from this environment."""
    root = checkout_root()
    deps = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    try:
        return constraints_text(deps["project"]["dependencies"])
    except FreezeError as err:
        raise CourseError(say("freeze_failed", error=err)) from None


def check_mapping(course: Course) -> None:
    """The roster's ``gradescope_email`` column names one student per address."""
    try:
        gradescope_emails(course.roster_path.read_text(encoding="utf-8"), course.roster())
    except MappingError as err:
        raise CourseError(say("gradescope_mapping", roster=course.roster_path,
                              error=err)) from None


def _roster_name(course: Course) -> str:
    try:
        return course.roster_path.resolve().relative_to(course.root.resolve()).as_posix()
    except ValueError:
        raise CourseError(say("roster_outside", roster=course.roster_path,
                              course=course.root)) from None


def _add(z: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, _FIXED_TIME)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)


def build_bundle(course: Course, assignment: str, out_dir: Path) -> Path:
    """Write ``out_dir/autograder.zip``; returns its path."""
    course.assignment(assignment)
    course.roster()                      # a broken roster fails here, not on Gradescope
    check_mapping(course)
    roster = _roster_name(course)
    constraints = frozen_constraints()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / BUNDLE_NAME
    with tempfile.TemporaryDirectory(prefix="convpset-wheel-") as tmp:
        wheel = build_wheel(Path(tmp))
        config = bundle_config(course, assignment, wheel.name)
        tmp_zip = path.with_name(f".{BUNDLE_NAME}.tmp")
        with zipfile.ZipFile(tmp_zip, "w") as z:
            templates = resources.files("convpset.integrations.gradescope") / "templates"
            for name in SCRIPTS:
                _add(z, name, (templates / name).read_bytes(), 0o755)
            _add(z, wheel.name, wheel.read_bytes())
            _add(z, CONSTRAINTS_NAME, constraints.encode())
            _add(z, CONFIG_NAME, (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())
            _add(z, f"{COURSE_DIR}/{PSET_TOML}", (course.root / PSET_TOML).read_bytes(), 0o600)
            _add(z, f"{COURSE_DIR}/{roster}", course.roster_path.read_bytes(), 0o600)
            # the term: extensions and overrides apply on Gradescope as in `grade`
            for extra in ("extensions.csv", "overrides.jsonl"):
                if (course.root / extra).is_file():
                    _add(z, f"{COURSE_DIR}/{extra}", (course.root / extra).read_bytes(), 0o600)
        tmp_zip.replace(path)
    return path
