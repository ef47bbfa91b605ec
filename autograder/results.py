"""What grading produces for one student: plain data, JSON round-trippable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convpset.problems.base import PartResult
from convpset.problems.text import render_all


@dataclass(frozen=True)
class ProblemResult:
    number: int
    family: str
    level: int
    parts: tuple[PartResult, ...]
    notes: tuple[dict[str, str], ...] = ()   # problem-level notes (a cell raised, data edited)

    @property
    def score(self) -> float:
        return round(sum(p.score for p in self.parts), 2)

    @property
    def max_score(self) -> float:
        return round(sum(p.max_score for p in self.parts), 2)

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "family": self.family, "level": self.level,
                "parts": [p.to_json() for p in self.parts], "notes": [dict(n) for n in self.notes]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ProblemResult:
        parts = tuple(PartResult(p["part"], p["score"], p["max_score"], p["status"],
                                 p["message"], p.get("mistake")) for p in d["parts"])
        return cls(d["number"], d["family"], d["level"], parts, tuple(d.get("notes", ())))


@dataclass(frozen=True)
class StudentResult:
    student_id: str
    assignment: str
    path: str | None
    sha256: str
    problems: tuple[ProblemResult, ...]
    flags: tuple[str, ...] = ()                 # machine-readable: "timeout", "stamp:other_student"...
    notes: tuple[dict[str, str], ...] = ()      # messages for the student and staff (en/ru)
    exec_status: str = ""
    duration_s: float = 0.0
    stdout_tail: str = ""
    key_fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # points taken for lateness (:mod:`convpset.autograder.term`): ``score`` is the final
    # score every output shows, ``raw_score`` what the answers earned
    penalty: float = 0.0

    @property
    def raw_score(self) -> float:
        return round(sum(p.score for p in self.problems), 2)

    @property
    def score(self) -> float:
        return round(self.raw_score - self.penalty, 2)

    @property
    def max_score(self) -> float:
        return round(sum(p.max_score for p in self.problems), 2)

    def to_json(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: asdict deep-copies every nested message
        # and was the largest cost of writing the journal.
        return {"student_id": self.student_id, "assignment": self.assignment,
                "path": self.path, "sha256": self.sha256,
                "problems": [p.to_json() for p in self.problems],
                "flags": list(self.flags), "notes": [dict(n) for n in self.notes],
                "exec_status": self.exec_status, "duration_s": self.duration_s,
                "stdout_tail": self.stdout_tail, "key_fingerprint": self.key_fingerprint,
                "extra": dict(self.extra), "penalty": self.penalty, "score": self.score,
                "max_score": self.max_score}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StudentResult:
        return cls(d["student_id"], d["assignment"], d.get("path"), d.get("sha256", ""),
                   tuple(ProblemResult.from_json(p) for p in d["problems"]),
                   tuple(d.get("flags", ())), tuple(d.get("notes", ())), d.get("exec_status", ""),
                   d.get("duration_s", 0.0), d.get("stdout_tail", ""), d.get("key_fingerprint", ""),
                   d.get("extra", {}), float(d.get("penalty") or 0.0))


def note(key: str, **args: Any) -> dict[str, str]:
    """A student-facing note in every language."""
    return render_all(key, **args)
