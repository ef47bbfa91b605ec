"""The bundle's ``constraints.txt``: every distribution convpset needs, at the version
installed in the environment that builds (and tested) the bundle.

Why: Gradescope builds the autograder image when the bundle is uploaded, and again
whenever staff press *Update Autograder* or duplicate the assignment, months later. An
open ``pip install convpset.whl`` then resolves against whatever PyPI holds that day; a
new numpy or nbformat could change grades mid-course. setup.sh installs with ``pip
install --constraint constraints.txt``, so a rebuild gets the versions that were tested.

The closure is walked with :mod:`importlib.metadata` from the ``dependencies`` of the
checkout's ``pyproject.toml`` (what the wheel requires), following each installed
distribution's ``Requires-Dist`` whose environment marker holds here (with the extras
asked for). Markers are evaluated for this interpreter: the bundle is built on the
Python and platform Gradescope runs (CPython 3.11, Linux x86-64). Local version labels
(``2.13.0+cpu``) are dropped, since PyPI has no such versions; torch comes from
PyTorch's CPU index under the same public version (see setup.sh).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

CONSTRAINTS_NAME = "constraints.txt"
#: installed by setup.sh before anything else (the pip the bundle was built with)
TOOLS = ("pip",)


class FreezeError(ValueError):
    """A dependency is missing here, or installed at a version its dependant refuses."""


@dataclass(frozen=True)
class Pin:
    name: str            # canonical (PEP 503) name
    version: str         # public version: no local label

    def line(self) -> str:
        return f"{self.name}=={self.version}"


def public_version(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0`` (a local label is not on PyPI)."""
    try:
        return Version(version).public
    except InvalidVersion:
        return version.split("+", 1)[0]


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))


def _parse(parent: str, text: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as err:
        raise FreezeError(f"{parent}: {text!r}: {err}") from None


def closure(requirements: Iterable[str]) -> dict[str, Pin]:
    """Every installed distribution ``requirements`` need here, transitively."""
    pins: dict[str, Pin] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("pyproject.toml", req) for req in (_parse("pyproject.toml", r) for r in requirements)
            if _applies(req, frozenset())]
    while todo:
        parent, req = todo.pop()
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise FreezeError(f"{req.name} (required by {parent}) is not installed") from None
        version = dist.version
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            raise FreezeError(f"{req.name} {version} is installed but {parent} requires "
                              f"{req.name}{req.specifier}")
        pins[name] = Pin(name, public_version(version))
        extras = frozenset(canonicalize_name(e) for e in req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in dist.requires or []:
            sub = _parse(f"{name} {version}", text)
            if _applies(sub, extras):
                todo.append((f"{name} {version}", sub))
    return pins


def tool_pins() -> list[Pin]:
    out = []
    for tool in TOOLS:
        try:
            out.append(Pin(tool, public_version(metadata.version(tool))))
        except metadata.PackageNotFoundError:
            pass
    return out


def constraints_text(requirements: Iterable[str]) -> str:
    """The file: a header saying where the versions come from, then ``name==version``
    sorted (no date: the same environment gives the same bytes)."""
    pins = closure(requirements)
    for pin in tool_pins():
        pins.setdefault(pin.name, pin)
    head = (f"# convpset bundle: versions frozen from the environment that built it "
            f"(CPython {platform.python_version()}, {sys.platform} {platform.machine()}).\n"
            "# setup.sh: pip install --constraint constraints.txt; torch from PyTorch's CPU "
            "index at the version below.\n")
    return head + "".join(pins[n].line() + "\n" for n in sorted(pins))
