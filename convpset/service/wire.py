"""A check request, parsed with every limit enforced before any per-number work.

The body is hostile: its size is capped first (bytes), then its nesting depth (one
vectorised pass over the bytes, before the JSON parser recurses), and the JSON parser
itself counts numbers and refuses long integers, NaN and infinity as it meets them.
Only then are answers turned into the judge's :class:`Submitted` values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convpset.problems.checking import Submitted

MAX_BODY = 64 * 1024          # bytes: the largest answer (a conv matrix) is a few KiB
MAX_DEPTH = 8                 # body {answers: {name: 4-D array}} is 6 deep
MAX_NUMBERS = 10_000          # like `pset solve`'s input arrays
MAX_INT_DIGITS = 20           # a parameter count has ~10 digits
MAX_FLOAT_CHARS = 40
MAX_ANSWERS = 32
FIELDS = frozenset({"problem", "answers", "lang", "student", "assignment"})
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


class WireError(ValueError):
    """A refused request: ``reason`` is a ``serve.reason_*`` text key, ``args`` its values."""

    def __init__(self, reason: str, **args: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.args_ = args


@dataclass(frozen=True)
class CheckRequest:
    problem: int
    answers: dict[str, Any] = field(default_factory=dict)
    lang: str | None = None
    student: str | None = None
    assignment: str | None = None      # needed with hub auth (a hub token names no assignment)


def nesting_depth(body: bytes) -> int:
    """Deepest ``[``/``{`` nesting outside strings, without recursion."""
    bare = _STRING.sub(b'""', body)
    arr = np.frombuffer(bare, dtype=np.uint8)
    if arr.size == 0:
        return 0
    step = (np.isin(arr, (0x5B, 0x7B)).astype(np.int32)
            - np.isin(arr, (0x5D, 0x7D)).astype(np.int32))
    return int(np.cumsum(step).max())


def parse_body(body: bytes) -> CheckRequest:
    """The request, or WireError naming the first limit it broke."""
    return _request(loads_bounded(body))


def parse_answer_text(text: str) -> Any:
    """One answer typed in the practice form, as Python would read it: ``5``, ``[1, 2]``,
    ``[[1, 2], [3, 4]]``, shapes as ``(1, 28, 28), (6, 24, 24)``; the same limits."""
    raw = text.strip().replace("(", "[").replace(")", "]").encode("utf-8")
    try:
        value = loads_bounded(raw)
    except WireError as err:
        if err.reason != "reason_json":
            raise
        value = loads_bounded(b"[" + raw + b"]")
    if not _numbers(value):
        raise WireError("reason_type")
    return value


def loads_bounded(body: bytes) -> Any:
    """JSON with the size, depth, count, digit and finiteness limits."""
    if len(body) > MAX_BODY:
        raise WireError("reason_too_large", limit=MAX_BODY)
    if nesting_depth(body) > MAX_DEPTH:
        raise WireError("reason_depth", limit=MAX_DEPTH)
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] > MAX_NUMBERS:
            raise WireError("reason_elements", limit=MAX_NUMBERS)

    def as_int(text: str) -> int:
        tick()
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise WireError("reason_digits", limit=MAX_INT_DIGITS)
        return int(text)

    def as_float(text: str) -> float:
        tick()
        value = float(text[:MAX_FLOAT_CHARS + 1]) if len(text) <= MAX_FLOAT_CHARS else None
        if value is None:
            raise WireError("reason_digits", limit=MAX_FLOAT_CHARS)
        if not np.isfinite(value):
            raise WireError("reason_not_finite")
        return value

    def constant(text: str) -> Any:
        raise WireError("reason_not_finite")

    try:
        data = json.loads(body.decode("utf-8"), parse_int=as_int, parse_float=as_float,
                          parse_constant=constant)
    except WireError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WireError("reason_json") from None
    return data


def _request(data: Any) -> CheckRequest:
    if not isinstance(data, dict) or not set(data) <= FIELDS or "problem" not in data \
            or not isinstance(data.get("answers", {}), dict):
        raise WireError("reason_fields")
    problem, lang, student = data["problem"], data.get("lang"), data.get("student")
    if not isinstance(problem, int) or isinstance(problem, bool) or not 1 <= problem <= 1000:
        raise WireError("reason_fields")
    if lang is not None and lang not in ("en", "ru"):
        raise WireError("reason_fields")
    if student is not None and (not isinstance(student, str) or len(student) > 64):
        raise WireError("reason_fields")
    assignment = data.get("assignment")
    if assignment is not None and (not isinstance(assignment, str) or len(assignment) > 64):
        raise WireError("reason_fields")
    answers = data.get("answers", {})
    if len(answers) > MAX_ANSWERS or not all(isinstance(k, str) and len(k) <= 64
                                             for k in answers):
        raise WireError("reason_fields")
    for value in answers.values():
        if not _numbers(value):
            raise WireError("reason_type")
    return CheckRequest(problem, dict(answers), lang, student, assignment)


def _numbers(value: Any) -> bool:
    """Only numbers and lists of them (depth is already bounded by the byte scan)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, list) and all(_numbers(v) for v in value)


def submitted(value: Any) -> Submitted:
    """The judge's view of one answer (plain numbers: the same conversion as grading)."""
    return Submitted.of(value)
