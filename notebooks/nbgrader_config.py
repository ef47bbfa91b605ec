"""The two nbgrader configs of a course: the instructor's ``nbgrader_config.py`` (course
folder) and ``student_nbgrader_config.py`` (what a JupyterHub admin installs as the
students' global nbgrader config, e.g. ``/etc/jupyter/nbgrader_config.py``).

Both name this package's exchange classes by import path (traitlets ``Type`` traits
accept a dotted string), so the students' image needs ``convpset`` installed, and
neither holds anything secret: the course secret stays in ``pset.toml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from convpset.problems.text import render

DEFAULT_EXCHANGE_ROOT = "/usr/local/share/nbgrader/exchange"   # nbgrader's own default
INSTRUCTOR_FILE, STUDENT_FILE = "nbgrader_config.py", "student_nbgrader_config.py"
EXCHANGE = "convpset.integrations.nbgrader.exchange"
RELEASE, FETCH, COLLECT = (f"{EXCHANGE}.PersonalReleaseAssignment",
                           f"{EXCHANGE}.PersonalFetchAssignment", f"{EXCHANGE}.RosterCollect")
RELEASE_FEEDBACK = f"{EXCHANGE}.SafeReleaseFeedback"
LIST = f"{EXCHANGE}.PersonalList"
AUTOGRADE = "convpset.integrations.nbgrader.autograde"


def _comment(lang: str, key: str, **ctx: object) -> str:
    return "\n".join(f"# {line}".rstrip() for line in render(lang, key, **ctx).splitlines())


def instructor_config(course_id: str, exchange_root: str, lang: str) -> str:
    """The course folder's nbgrader_config.py: our source notebooks' settings plus the
    personal exchange (release publishes every roster student's notebook, collect files
    each submission under the roster student whose login made it, release_feedback
    skips a broken submission instead of failing the class)."""
    return "\n".join([
        "c = get_config()  # noqa: F821 -- provided by nbgrader",
        _comment(lang, "nbgrader.config_instructor"),
        f"c.CourseDirectory.course_id = {course_id!r}",
        'c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}',
        "c.Execute.timeout = 120",
        "c.OverwriteCells.add_missing_cells = True",
        f"c.Exchange.root = {exchange_root!r}",
        f"c.ExchangeFactory.release_assignment = {RELEASE!r}",
        f"c.ExchangeFactory.fetch_assignment = {FETCH!r}",
        f"c.ExchangeFactory.collect = {COLLECT!r}",
        f"c.ExchangeFactory.release_feedback = {RELEASE_FEEDBACK!r}",
        f"c.ExchangeFactory.list = {LIST!r}",
        # `nbgrader autograde` and formgrader's Autograde button: our verdicts, no
        # hidden test code in the autograded notebook, no false checksum warnings
        f"c.Autograde.sanitize_preprocessors = {autograde_sanitize()!r}",
        f"c.Autograde.autograde_preprocessors = {autograde_steps()!r}",
        f"c.PersonalReleaseAssignment.lang = {lang!r}",
        f"c.RosterCollect.lang = {lang!r}",
        f"c.SafeReleaseFeedback.lang = {lang!r}",
        ""])


def autograde_sanitize() -> list[str]:
    """nbgrader's sanitize steps, with its OverwriteCells replaced by ours."""
    return ["nbgrader.preprocessors.ClearOutput", "nbgrader.preprocessors.DeduplicateIds",
            "nbgrader.preprocessors.OverwriteKernelspec", f"{AUTOGRADE}.OverwriteOurCells",
            "nbgrader.preprocessors.CheckCellMetadata"]


def autograde_steps() -> list[str]:
    """nbgrader's autograde steps, then ours: the notebook as ``grade`` writes it."""
    return ["nbgrader.preprocessors.Execute", "nbgrader.preprocessors.IgnorePattern",
            "nbconvert.preprocessors.ClearMetadataPreprocessor",
            "nbgrader.preprocessors.LimitOutput", "nbgrader.preprocessors.SaveAutoGrades",
            "nbgrader.preprocessors.AssignLatePenalties", f"{AUTOGRADE}.ShowOurVerdicts",
            "nbgrader.preprocessors.CheckCellMetadata"]


def student_config(course_id: str, exchange_root: str, lang: str) -> str:
    """The students' global nbgrader config: which course, where the exchange is, and the
    fetch class that hands each student their own notebook."""
    return "\n".join([
        "c = get_config()  # noqa: F821 -- provided by nbgrader",
        _comment(lang, "nbgrader.config_student"),
        f"c.CourseDirectory.course_id = {course_id!r}",
        f"c.Exchange.root = {exchange_root!r}",
        f"c.ExchangeFactory.fetch_assignment = {FETCH!r}",
        f"c.PersonalFetchAssignment.lang = {lang!r}",
        ""])


@dataclass(frozen=True)
class Written:
    path: Path
    backup: Path | None     # the previous, different file, kept beside it


def _write(path: Path, text: str) -> Written:
    backup = None
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if old == text:
            return Written(path, None)
        backup = path.with_name(path.name + ".bak")
        backup.write_text(old, encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    return Written(path, backup)


def write_configs(root: Path, course_id: str, language: str,
                  exchange_root: str = DEFAULT_EXCHANGE_ROOT) -> list[Written]:
    """Write both configs into the course folder. Only these two files are touched (never
    ``pset.toml`` or the roster), and a previous, different file is kept as ``.bak``: an
    existing course gets the files again without losing anything."""
    root = Path(root)
    return [_write(root / INSTRUCTOR_FILE, instructor_config(course_id, exchange_root, language)),
            _write(root / STUDENT_FILE, student_config(course_id, exchange_root, language))]


_SETTING = re.compile(r"^c\.(CourseDirectory\.course_id|Exchange\.root)\s*=\s*(['\"])(.*?)\2\s*$",
                      re.M)


def existing_settings(root: Path) -> dict[str, str]:
    """Course id and exchange root of the course's current nbgrader_config.py (literal
    string assignments only), so that writing the files again keeps them."""
    try:
        text = (Path(root) / INSTRUCTOR_FILE).read_text(encoding="utf-8")
    except OSError:
        return {}
    return {m.group(1).split(".")[1]: m.group(3) for m in _SETTING.finditer(text)}


def refresh_configs(root: Path, course_name: str, language: str, course_id: str | None = None,
                    exchange_root: str | None = None) -> list[Written]:
    """Both configs for an existing course: explicit values first, then what its current
    nbgrader_config.py says, then the defaults (course id = the course's name)."""
    old = existing_settings(root)
    return write_configs(root, course_id or old.get("course_id") or course_name, language,
                         exchange_root or old.get("root") or DEFAULT_EXCHANGE_ROOT)
