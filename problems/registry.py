"""Where families come from: this package, other installed packages, a course folder.

* built-in families are the modules listed in :data:`BUILTIN`;
* another package can add families through the entry point group ``convpset.families``
  (``name = "pkg.module"``: a module with a ``FAMILY`` instance);
* a course can keep its own exercises in ``COURSE/families/NAME.py`` (+ ``NAME.toml``),
  loaded when the course is (:func:`register_folder`), so an instructor extends the
  package without forking it.

Every family is checked against the contract when it is registered; a family that breaks
it fails with one line naming the family and what is wrong.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from convpset.problems.contract import Family

BUILTIN: tuple[str, ...] = (
    "conv_as_matrix",
    "param_count",
    "output_shape",
    "conv_backward",
    "pooling",
    "receptive_field", "transposed_conv", "conv_cost",
    "im2col", "conv_design", "stacked_kernels",
    "conv_memory",
    "batchnorm",
)
ENTRY_POINT_GROUP = "convpset.families"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class FamilyError(KeyError):
    """A family that is unknown or breaks the contract; ``str()`` is one line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_families: dict[str, Family] = {}
_origins: dict[str, str] = {}
_loaded_builtin = False
_loaded_entry_points = False


def _family_of(module: ModuleType, origin: str) -> Family:
    fam = getattr(module, "FAMILY", None)
    if not isinstance(fam, Family):
        raise FamilyError(f"{origin}: defines no FAMILY = <a convpset.problems.contract.Family "
                          f"subclass instance>")
    if fam.text_path is None and module.__file__:
        fam.text_path = Path(module.__file__).with_suffix(".toml")
    return fam


def contract_problems(fam: Family) -> list[str]:
    """What is wrong with ``fam`` against the contract (empty when nothing)."""
    from convpset.problems.text import LANGS, family_keys

    out = []
    name = getattr(fam, "name", None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        return [f"name must be lower_snake_case letters/digits (found {name!r})"]
    levels = getattr(fam, "levels", ())
    if not levels or not all(isinstance(lv, int) and lv >= 1 for lv in levels):
        out.append(f"levels must be positive ints (found {levels!r})")
    if fam.text_path is None or not Path(fam.text_path).is_file():
        out.append(f"no text table {fam.text_path} (an [en] and a [ru] table)")
        return out
    for lang in LANGS:
        keys = family_keys(fam, lang)
        if keys is None:
            out.append(f"{fam.text_path}: no [{lang}] table")
            continue
        for need in ("statement", "explain"):
            if need not in keys:
                out.append(f"{fam.text_path}: [{lang}] lacks {need!r}")
    for method in ("generate", "parts", "solve", "mistakes", "context", "data_code",
                   "statement", "explain"):
        if not callable(getattr(fam, method, None)):
            out.append(f"{method} is not a method")
    return out


def _add(fam: Family, origin: str) -> Family:
    from convpset.problems.text import register_family_text

    known = _origins.get(getattr(fam, "name", None))
    if known is not None and known != origin:
        raise FamilyError(f"family {fam.name} is defined twice: {known} and {origin}")
    problems = contract_problems(fam)
    if problems:
        raise FamilyError(f"family {getattr(fam, 'name', '?')} ({origin}): {problems[0]}")
    _families[fam.name] = fam
    _origins[fam.name] = origin
    register_family_text(fam)
    return fam


def _load_builtin() -> None:
    global _loaded_builtin
    if _loaded_builtin:
        return
    _loaded_builtin = True
    for name in BUILTIN:
        mod = importlib.import_module(f"convpset.problems.{name}")
        _add(_family_of(mod, f"convpset.problems.{name}"), f"convpset.problems.{name}")


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            mod = ep.load()
        except Exception as err:  # noqa: BLE001 -- a broken plugin is reported, not fatal
            raise FamilyError(f"entry point {ep.name} = {ep.value}: cannot import "
                              f"({type(err).__name__}: {err})") from None
        if isinstance(mod, Family):
            fam = mod
        else:
            fam = _family_of(mod, f"entry point {ep.value}")
        _add(fam, f"entry point {ep.value}")


def register_folder(folder: Path) -> list[str]:
    """Load every ``NAME.py`` of a course's ``families/`` folder; returns the names.

    The modules are the instructor's own code (trusted like pset.toml); they are imported
    under a private name so two courses' families never clash in ``sys.modules``.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        return []
    families()  # built-ins and plugins first: a course family reusing a name is the error
    tag = hashlib.sha256(str(folder).encode()).hexdigest()[:10]
    names = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        modname = f"convpset_course_families_{tag}.{path.stem}"
        mod = sys.modules.get(modname)
        if mod is None:
            spec = importlib.util.spec_from_file_location(modname, path)
            if spec is None or spec.loader is None:
                raise FamilyError(f"{path}: not a Python module")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            try:
                spec.loader.exec_module(mod)
            except Exception as err:  # noqa: BLE001 -- the course's own code: one line
                del sys.modules[modname]
                raise FamilyError(f"{path}: cannot import ({type(err).__name__}: {err})") from None
        fam = _add(_family_of(mod, str(path)), str(path))
        names.append(fam.name)
    return names


def families() -> dict[str, Family]:
    """Every registered family by name: built-ins first, then plugins, then courses."""
    _load_builtin()
    _load_entry_points()
    return dict(_families)


def family_names() -> tuple[str, ...]:
    return tuple(families())


def get_family(name: str) -> Family:
    """The family called ``name``; FamilyError (one line) lists the known ones."""
    fam = _families.get(name)       # the hot path: every judged part asks
    if fam is not None:
        return fam
    fams = families()
    if name not in fams:
        raise FamilyError(f"unknown problem family {name!r}; known: {', '.join(fams)}")
    return fams[name]
