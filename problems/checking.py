"""Judge a student's answers against a variant: written once for every family.

The order follows PrairieLearn: a missing variable or a value of the wrong type is a
*format error*, reported apart from a wrong value; shapes are checked before values;
a wrong value that equals what a listed mistake produces is named in the feedback.
The grading process only ever sees plain numpy data here, never student objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from convpset.problems.base import LANGS, Mistake, Part, PartResult, Variant
from convpset.problems.details import detail_text
from convpset.problems.text import has, render, render_all

if TYPE_CHECKING:
    from convpset.problems.contract import Family


@dataclass(frozen=True)
class Submitted:
    """A student's answer as the grader received it (plain data only).

    ``value`` is a base-class ndarray (bool/int64/float64) or None when the object could
    not be converted; ``rows`` carries ragged lists (e.g. shapes of different lengths).
    """

    present: bool
    source_type: str = ""
    value: np.ndarray | None = None
    error: str | None = None
    rows: Sequence[np.ndarray] | None = None
    # the normalised form per (part kind, dtype), computed once: the judge and the
    # similarity prints both need it, and a second pass over a large answer doubled its cost
    _normal: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, obj: Any) -> Submitted:
        """Build from a trusted in-process object (tests, references, nbgrader bridge)."""
        if obj is None:
            return cls(present=False)
        try:
            arr = np.asarray(obj)
        except ValueError:
            arr = None
        if arr is None or arr.dtype == object:
            try:
                rows = tuple(np.asarray(r, dtype=float) for r in obj)
            except (TypeError, ValueError):
                return cls(True, type(obj).__name__, None, "not a number or array")
            return cls(True, type(obj).__name__, None, None, rows)
        if arr.dtype.kind not in "biuf":
            return cls(True, type(obj).__name__, None, f"values of dtype {arr.dtype}")
        return cls(True, type(obj).__name__, arr.astype(float))


# ---------------------------------------------------------------------------- caps
# An answer can need no more rows or entries than the key (or a listed mistake) has, give
# or take: beyond CAP_FACTOR times that plus CAP_SLACK it is judged "too large" before any
# per-element Python work. The answer cap of the sandbox is in bytes (20 MB), which let a
# ragged list of 1.6 M rows through and cost the grading process minutes.
CAP_FACTOR = 4
CAP_SLACK = 16


@dataclass(frozen=True)
class Cap:
    """The most rows (ragged answers) and entries an answer is read with."""

    rows: int
    entries: int

    @classmethod
    def of(cls, part: Part, *values: Any) -> Cap:
        """The cap for answers to ``part`` whose plausible values are ``values`` (the key
        and, when needed, the mistakes' answers)."""
        rows = entries = 0
        for v in values:
            r, e = _extent(part, v)
            rows, entries = max(rows, r), max(entries, e)
        return cls(CAP_FACTOR * rows + CAP_SLACK, CAP_FACTOR * entries + CAP_SLACK)


def _extent(part: Part, value: Any) -> tuple[int, int]:
    """(rows, entries) of a trusted value (a key or a mistake's answer)."""
    if part.kind == "shapes":
        rows = list(value)
        return len(rows), sum(int(np.size(r)) for r in rows)
    arr = np.asarray(value)
    return (arr.shape[0] if arr.ndim else 1), int(arr.size)


def submitted_extent(sub: Submitted) -> tuple[int, int]:
    """(rows, entries) of a submission without touching its elements one by one."""
    if sub.rows is not None:
        flat = getattr(sub.rows, "flat", None)     # the sandbox's Ragged: one flat array
        if isinstance(flat, np.ndarray):
            return len(sub.rows), int(flat.size)
        return len(sub.rows), sum(int(np.size(r)) for r in sub.rows)
    if sub.value is None:
        return 0, 0
    return (sub.value.shape[0] if sub.value.ndim else 1), int(sub.value.size)


def over_cap(sub: Submitted, cap: Cap) -> tuple[str, int, int] | None:
    """("rows" | "entries", found, cap) when ``sub`` is larger than ``cap`` allows."""
    rows, entries = submitted_extent(sub)
    if sub.rows is not None and rows > cap.rows:
        return "rows", rows, cap.rows
    if entries > cap.entries:
        return "entries", entries, cap.entries
    return None


# ---------------------------------------------------------------------------- normalizers
class FormatError(Exception):
    def __init__(self, key: str, **args: Any) -> None:
        super().__init__(key)
        self.key = key
        self.args_ = args


def _finite(arr: np.ndarray, part: Part) -> np.ndarray:
    arr = np.asarray(arr, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise FormatError("format.not_finite", part=part)
    return arr


def _integral(arr: np.ndarray, part: Part) -> np.ndarray:
    if np.any(np.abs(arr - np.round(arr)) > 1e-9):
        raise FormatError("format.not_integer", part=part)
    return np.round(arr)


def normalize(part: Part, sub: Submitted,
              cap: Cap | None = None) -> np.ndarray | tuple[tuple[int, ...], ...]:
    """Plain comparable value of a submission, or raise FormatError naming what was wrong.

    With ``cap``, an answer larger than it is a format error ("too large") before any of
    its elements is looked at. The result (or the error) is kept on ``sub``: the
    similarity prints ask again for the answer the judge normalised, and get it for free.
    """
    if sub.error is not None and sub.value is None and sub.rows is None:
        raise FormatError("format.type", part=part, found=sub.source_type, detail=sub.error)
    if cap is not None and (big := over_cap(sub, cap)) is not None:
        what, found, most = big
        raise FormatError(f"format.too_many_{what}", part=part, found=found, cap=most)
    memo = (part.kind, part.dtype)
    if memo not in sub._normal:
        try:
            sub._normal[memo] = _normalize(part, sub)
        except FormatError as err:
            sub._normal[memo] = err
    done = sub._normal[memo]
    if isinstance(done, FormatError):
        raise done
    return done


def _normalize(part: Part, sub: Submitted) -> np.ndarray | tuple[tuple[int, ...], ...]:
    if part.kind == "shapes":
        return _shapes(part, sub)
    if sub.value is None and sub.rows is not None:      # rows of different lengths
        lengths = sorted({len(r) for r in sub.rows})
        shown = ", ".join(map(str, lengths[:5])) + (", …" if len(lengths) > 5 else "")
        raise FormatError("format.ragged", part=part, lengths=shown)
    if sub.value is None:
        raise FormatError("format.type", part=part, found=sub.source_type, detail=sub.error or "")
    arr = _finite(sub.value, part)
    if part.kind in ("int", "float"):
        if arr.size != 1:
            raise FormatError("format.scalar", part=part, found=tuple(arr.shape))
        arr = arr.reshape(())
    if part.dtype == "int":
        arr = _integral(arr, part)
    return arr


def _shapes(part: Part, sub: Submitted) -> tuple[tuple[int, ...], ...]:
    """A shapes answer as a tuple of int tuples. The numbers are checked as one array
    (finite, whole), then split into rows: no numpy object per row."""
    rows = sub.rows
    if rows is None:
        arr = sub.value
        if arr is None or arr.ndim not in (1, 2):
            raise FormatError("format.shapes", part=part, found=sub.source_type)
        if arr.ndim == 1:               # [6, 12, 864]: one 1-d shape per entry
            arr = arr[:, None]
        lengths = [arr.shape[1]] * arr.shape[0]
        flat = arr.reshape(-1)
    elif isinstance(getattr(rows, "flat", None), np.ndarray):   # the sandbox's Ragged
        lengths, flat = np.diff(rows.offsets).tolist(), rows.flat
    else:                               # a trusted tuple of rows (Submitted.of)
        pieces = [np.atleast_1d(np.asarray(r, dtype=float)) for r in rows]
        if any(r.ndim != 1 for r in pieces):
            raise FormatError("format.shapes", part=part, found=sub.source_type)
        lengths = [r.size for r in pieces]
        flat = np.concatenate(pieces) if pieces else np.zeros(0)
    # exact Python ints (a float such as 1e300 has no int64); the caller capped the count
    values = [int(v) for v in _integral(_finite(flat, part), part).tolist()]
    out, at = [], 0
    for n in lengths:
        out.append(tuple(values[at:at + n]))
        at += n
    return tuple(out)


def _format_message(err: FormatError) -> dict[str, str]:
    """The format error in every language, the sandbox's detail in that language too."""
    if "detail" not in err.args_:
        return render_all("feedback." + err.key, **err.args_)
    return {lang: render(lang, "feedback." + err.key,
                         **{**err.args_, "detail": detail_text(lang, err.args_["detail"])})
            for lang in LANGS}


def _expected(part: Part, value: Any) -> np.ndarray | tuple[tuple[int, ...], ...]:
    if part.kind == "shapes":
        return tuple(tuple(int(v) for v in row) for row in value)
    return np.asarray(value, dtype=float)


def _fit_shape(part: Part, got: np.ndarray, want: np.ndarray) -> np.ndarray | None:
    """Accept a shape that differs only by singleton axes (e.g. a kept batch dimension)."""
    if got.shape == want.shape:
        return got
    if got.size == want.size and np.squeeze(got).shape == np.squeeze(want).shape:
        return got.reshape(want.shape)
    return None


def _close(part: Part, got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """``np.isclose(got, want, rtol, atol)`` for finite arrays (both are finite here:
    normalize rejects NaN/inf), without isclose's special-value handling, which was the
    largest single cost of judging."""
    return np.abs(got - want) <= part.atol + part.rtol * np.abs(want)


def _equal(part: Part, got: Any, want: Any) -> bool:
    if part.kind == "shapes":
        return got == want
    if got.shape != want.shape:
        return False
    if part.dtype == "int":
        return bool(np.array_equal(got, want))
    return bool(_close(part, got, want).all())


def element_fraction(part: Part, got: Any, want: Any) -> float:
    """Share of correct entries, counted over the union of non-zero positions.

    Counting over the union support keeps an all-zero answer from earning the structural
    zeros of a sparse matrix such as the convolution matrix ``W``.
    """
    if part.kind == "shapes":
        n = max(len(want), len(got))
        return sum(a == b for a, b in zip(got, want, strict=False)) / n if n else 1.0
    if part.dtype == "int":
        ok = got == want
    else:
        ok = _close(part, got, want)
    support = (got != 0) | (want != 0)
    if not support.any():
        return 1.0
    return float(ok[support].mean())


def _score(points: float, fraction: float) -> float:
    return round(points * fraction, 2)


def _mistake_args(m: Mistake) -> dict[str, Any]:
    return dict(m.args)


def mistake_score(policy: str | float, points: float, element_score: float) -> float:
    """The score of an answer that matches a named misconception under the course's
    ``mistake_credit`` policy: "partial" keeps the element-wise score, "none" gives 0, a
    number gives that fixed share of the part's points."""
    if policy == "partial":
        return element_score
    if policy == "none":
        return 0.0
    return _score(points, float(policy))


def _credit_note(policy: str | float) -> dict[str, str]:
    if policy in ("partial", "none"):
        return render_all(f"credit.{policy}")
    return render_all("credit.share", percent=round(float(policy) * 100))


def check_part(part: Part, sub: Submitted | None, want: Any,
               mistakes: Sequence[Mistake] | Callable[[], Sequence[Mistake]], family: str,
               answer_key: str | None = None,
               mistake_credit: str | float = "partial",
               accept: Callable[[Any], bool] | None = None) -> PartResult:
    """Verdict for one part. Pure: the same inputs give the same verdict everywhere.

    ``answer_key`` is the family's own part name when ``part`` was renamed for a notebook
    (``W_1`` for ``W``); mistakes are keyed by the family's names. ``mistakes`` may be a
    zero-argument function: they are then computed only for a wrong answer (most answers
    in a batch are right, and computing every misconception costs as much as the key).
    ``mistake_credit`` is the course's policy for an answer that matches a named mistake
    (see :func:`mistake_score`); the feedback says which rule applied. ``accept`` says
    whether a normalized answer that differs from ``want`` is right too (the family's
    :meth:`~convpset.problems.contract.Family.accepts`: several valid answers).
    """
    def all_mistakes() -> Sequence[Mistake]:
        return mistakes() if callable(mistakes) else mistakes

    pts = float(part.points)
    ak = answer_key or part.name
    if sub is None or not sub.present:
        return PartResult(part.name, 0.0, pts, "missing", render_all("feedback.missing", part=part))
    if sub.source_type == "ellipsis" and sub.value is None and sub.rows is None:
        # the notebook's placeholder left in place: not answered, not a format error
        return PartResult(part.name, 0.0, pts, "missing", render_all("page.not_answered", part=part))
    want_v = _expected(part, want)
    cap = Cap.of(part, want_v)
    if over_cap(sub, cap) is not None:   # a listed mistake's answer may be larger than the key
        cap = Cap.of(part, want_v, *(m.answers[ak] for m in all_mistakes() if ak in m.answers))
    try:
        got = normalize(part, sub, cap)
    except FormatError as err:
        return PartResult(part.name, 0.0, pts, "format_error", _format_message(err))

    def named(m: Mistake, score: float, status: str) -> PartResult:
        key = f"{family}.mistake.{m.key}"
        if not has("en", key):
            key = f"mistake.common.{m.key}"
        score = mistake_score(mistake_credit, pts, score)
        status = "partial" if score > 0 else "wrong"
        text = render_all(key, part=part, **_mistake_args(m))
        rule = _credit_note(mistake_credit)
        message = {lang: f"{text[lang]} {rule[lang]}" for lang in text}
        return PartResult(part.name, score, pts, status,  # type: ignore[arg-type]
                          message, mistake=m.key)

    if part.kind == "array":
        fitted = _fit_shape(part, got, want_v)
        if fitted is None:
            for m in all_mistakes():
                if ak in m.answers:
                    wrong = _expected(part, m.answers[ak])
                    if got.shape == wrong.shape and _equal(part, got, wrong):
                        return named(m, 0.0, "wrong")
            return PartResult(part.name, 0.0, pts, "wrong",
                              render_all("feedback.shape", part=part, got=tuple(got.shape),
                                         want=tuple(want_v.shape)))
        got = fitted
    if _equal(part, got, want_v) or (accept is not None and accept(got)):
        return PartResult(part.name, pts, pts, "correct", render_all("feedback.correct", part=part))
    frac = element_fraction(part, got, want_v) if part.per_element else 0.0
    score = _score(pts, frac)
    status = "partial" if score > 0 else "wrong"
    for m in all_mistakes():
        if ak in m.answers and _equal(part, got, _expected(part, m.answers[ak])):
            return named(m, score, status)
    key = "feedback.partial" if status == "partial" else "feedback.wrong"
    return PartResult(part.name, score, pts, status,
                      render_all(key, part=part, fraction=round(frac * 100)))


def solved(family: Family, v: Variant) -> Mapping[str, Any]:
    """Reference answers of ``v``, computed once per variant object."""
    return v.cached("solve", lambda: family.solve(v))


def parts_of(family: Family, v: Variant) -> list[Part]:
    """The answer contract of ``v``, computed once per variant object (some families
    derive shapes from a forward pass)."""
    return list(v.cached("parts", lambda: family.parts(v)))


def mistakes_of(family: Family, v: Variant) -> list[Mistake]:
    return v.cached("mistakes", lambda: family.mistakes(v))


def check(family: Family, v: Variant, answers: Mapping[str, Submitted | None],
          key: Mapping[str, Any] | None = None) -> list[PartResult]:
    """Judge every part of ``v``; ``key`` may be passed when already solved."""
    key = solved(family, v) if key is None else key
    return [check_part(p, answers.get(p.name), key[p.name], lambda: mistakes_of(family, v),
                       v.family, accept=acceptor(family, v, p.name))
            for p in parts_of(family, v)]


def acceptor(family: Family, v: Variant, name: str) -> Callable[[Any], bool]:
    """The family's judgement whether another answer to part ``name`` is right too."""
    return lambda got: bool(family.accepts(v, name, got))


def mistake_collisions(family: Family, v: Variant) -> list[tuple[str, str]]:
    """(mistake, part) pairs that would make the feedback wrong or ambiguous.

    A pair is listed when a misconception gives the right answer (the grader could not
    tell it from the truth) or the same answer as another listed misconception (the
    feedback could not say which one), or one the family accepts as another valid
    answer. The generator rejects such variants: this is the distractor screen.
    """
    key = solved(family, v)
    parts = {p.name: p for p in parts_of(family, v)}
    out = []
    seen: dict[str, list[tuple[str, Any]]] = {}
    for m in mistakes_of(family, v):
        for name, wrong in m.answers.items():
            part = parts[name]
            w, k = _expected(part, wrong), _expected(part, key[name])
            if (part.kind != "array" or w.shape == k.shape) and family.accepts(v, name, w):
                out.append((m.key, name))
            candidates = [("<truth>", k), *seen.get(name, [])]
            for other, value in candidates:
                if part.kind == "array" and w.shape != value.shape:
                    continue
                if _equal(part, w, value):
                    out.append((m.key if other == "<truth>" else f"{m.key}={other}", name))
            seen.setdefault(name, []).append((m.key, w))
    return out
