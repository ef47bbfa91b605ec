"""The data every problem family exchanges: variants, answer parts, mistakes, verdicts.

The family interface itself is :class:`convpset.problems.contract.Family`; judging
(:mod:`convpset.problems.checking`) and the distractor screen
(:func:`convpset.problems.make_variant`) are written once for all families on top of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

Kind = Literal["int", "float", "array", "shapes"]
LANGS: tuple[str, ...] = ("en", "ru")


# Exact-type checks first: params are plain JSON-like data, and the abstract Mapping check
# is slow enough to dominate reading a stamp (tens of thousands of values per batch).
_SCALARS = (int, float, str, bool, type(None))


def _freeze(obj: Any) -> Any:
    t = type(obj)
    if t in _SCALARS:
        return obj
    if t is dict or t is MappingProxyType or isinstance(obj, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in obj.items()})
    if t is list or t is tuple or isinstance(obj, list | tuple):
        return tuple(_freeze(v) for v in obj)
    return obj


def _thaw(obj: Any) -> Any:
    t = type(obj)
    if t in _SCALARS:
        return obj
    if t is dict or t is MappingProxyType or isinstance(obj, Mapping):
        return {k: _thaw(v) for k, v in obj.items()}
    if t is list or t is tuple or isinstance(obj, list | tuple):
        return [_thaw(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@dataclass(frozen=True)
class Variant:
    """Everything that defines one student's instance of a family; JSON-serializable.

    ``params`` holds only plain ints, floats, strings, lists and dicts, so that the
    variant can be stamped into a notebook and hashed reproducibly.
    """

    family: str
    level: int
    params: Mapping[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _freeze(self.params))

    def cached(self, key: str, compute: Any) -> Any:
        """Memoize a derived value (arrays, solutions) on this immutable variant."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "level": self.level, "params": _thaw(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Variant:
        return cls(family=str(data["family"]), level=int(data["level"]), params=data["params"])

    def digest(self) -> str:
        """Stable hash of the variant: what a notebook stamp signs."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def plain(self, key: str) -> Any:
        """A parameter as plain lists/dicts (the frozen form is read-only)."""
        return _thaw(self.params[key])

    def array(self, key: str, dtype: type = float) -> np.ndarray:
        """A parameter as a fresh array (callers may modify it)."""
        base = self.cached(f"array:{key}:{dtype.__name__}",
                           lambda: np.array(_thaw(self.params[key]), dtype=dtype))
        return base.copy()


@dataclass(frozen=True)
class Part:
    """One answer the student must define: a variable in the notebook."""

    name: str
    kind: Kind
    points: float
    label: Mapping[str, str]
    shape: tuple[int, ...] | None = None   # arrays: exact expected shape
    dtype: Literal["int", "float"] = "float"
    rtol: float = 1e-6
    atol: float = 1e-6
    per_element: bool = False              # partial credit per element / per layer

    def contract(self, lang: str) -> str:
        """Human text of the answer contract, e.g. ``W: float array of shape (4, 16)``."""
        from convpset.problems.text import render

        return render(lang, "contract." + self.kind, part=self)


def suffixed(parts: list[Part], suffix: str) -> list[Part]:
    """The parts renamed for a notebook where several problems share one namespace."""
    return [replace(p, name=p.name + suffix) for p in parts] if suffix else parts


@dataclass(frozen=True)
class Mistake:
    """A named misconception and the answers it leads to (only parts it changes)."""

    key: str
    answers: Mapping[str, Any]
    args: Mapping[str, Any] = field(default_factory=dict)  # for the message template


@dataclass(frozen=True)
class PartResult:
    """Verdict on one part: PrairieLearn's partial score + feedback, per part."""

    part: str
    score: float
    max_score: float
    status: Literal["correct", "partial", "wrong", "format_error", "missing"]
    message: Mapping[str, str]             # lang -> text
    mistake: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "score": self.score,
            "max_score": self.max_score,
            "status": self.status,
            "message": dict(self.message),
            "mistake": self.mistake,
        }
