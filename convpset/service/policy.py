"""Check policy from ``pset.toml``: where the service is, and per assignment what it allows.

```toml
[check]
url = "https://check.example.edu"      # the notebooks' check(N) posts here; unset: no check(N)

[assignments.conv1.check]
attempts = 3                             # "off" (default: exams), "unlimited" or N per problem
show = ["parts", "mistake", "credit"]    # per-part verdict, the named mistake, partial credit
closes = "2026-12-10T23:59:00+03:00"     # optional: no checks after this time
```

Read from the file itself (not :class:`~convpset.notebooks.course.Course`) so a course
without a service parses exactly as before. Every bad value is one :class:`CourseError`
line naming the setting.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from convpset.notebooks.course import CONFIG_NAME, Course, CourseError

SHOW = ("parts", "mistake", "credit")
SHOW_DEFAULT = ("parts", "mistake")
MAX_ATTEMPTS = 1000


def _say(key: str, **ctx: Any) -> str:
    from convpset.problems.text import render

    return render("en", f"serve.{key}", **ctx)


@dataclass(frozen=True)
class CheckPolicy:
    """What the service does for one assignment. ``attempts`` None means unlimited."""

    enabled: bool = False
    attempts: int | None = None
    show: tuple[str, ...] = SHOW_DEFAULT
    closes: datetime | None = None

    def closed(self, now: datetime) -> bool:
        return self.closes is not None and now >= self.closes


OFF = CheckPolicy()


@dataclass(frozen=True)
class CheckConfig:
    url: str | None
    policies: dict[str, CheckPolicy]

    def policy(self, assignment: str) -> CheckPolicy:
        return self.policies.get(assignment, OFF)


def parse_policy(raw: Any, where: str) -> CheckPolicy:
    """One assignment's ``check`` table (or the bare string "off"/"unlimited")."""
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        raw = {"attempts": raw}
    if not isinstance(raw, dict):
        raise CourseError(f"{where}: " + _say("bad_mode", found=repr(raw)))
    unknown = set(raw) - {"attempts", "show", "closes"}
    if unknown:
        raise CourseError(f"{where}: " + _say("unknown_keys", keys=sorted(unknown),
                                              allowed="attempts, show, closes"))
    mode = raw.get("attempts", "off")
    if mode == "off":
        return OFF
    if mode == "unlimited":
        attempts = None
    elif isinstance(mode, int) and not isinstance(mode, bool) and 1 <= mode <= MAX_ATTEMPTS:
        attempts = mode
    else:
        raise CourseError(f"{where}: " + _say("bad_mode", found=repr(mode)))
    show = raw.get("show", list(SHOW_DEFAULT))
    if not isinstance(show, list) or not all(s in SHOW for s in show):
        raise CourseError(f"{where}: " + _say("bad_show", allowed=", ".join(SHOW),
                                              found=repr(show)))
    return CheckPolicy(True, attempts, tuple(dict.fromkeys(show)),
                       _closes(raw.get("closes"), where))


def _closes(raw: Any, where: str) -> datetime | None:
    """An aware datetime: a closing time without a zone would mean a different instant on
    the server than the instructor meant."""
    if raw is None:
        return None
    when: Any = raw
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            when = None
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise CourseError(f"{where}: " + _say("bad_closes", found=repr(raw)))
    return when


def load_check_config(course: Course) -> CheckConfig:
    """The course's check settings; CourseError (one line) on any bad value."""
    path = course.root / CONFIG_NAME
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    section = data.get("check", {})
    if not isinstance(section, dict):
        section = {"url": section}
    unknown = set(section) - {"url"}
    if unknown:
        raise CourseError(f"{path}: [check]: " + _say("unknown_keys", keys=sorted(unknown),
                                                      allowed="url"))
    url = section.get("url")
    if url is not None and (not isinstance(url, str) or len(url) > 2000
                            or not url.startswith(("http://", "https://"))):
        raise CourseError(f"{path}: " + _say("bad_url", found=repr(url)))
    policies = {}
    for name, raw in data.get("assignments", {}).items():
        if isinstance(raw, dict) and "check" in raw:
            policies[name] = parse_policy(raw["check"], f"{path}: assignments.{name}.check")
    return CheckConfig(url.rstrip("/") if url else None, policies)
