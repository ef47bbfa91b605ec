"""The contract every problem family implements, in one place.

A family is one module that defines one subclass of :class:`Family` and an instance of it
called ``FAMILY``; its student-facing text lives beside it in ``<module>.toml`` (an
``[en]`` and a ``[ru]`` table). PrairieLearn's per-question ``server.py`` is the model:
a few small methods over one frozen :class:`~convpset.problems.base.Variant`, randomness
only from the seeded generator, format errors apart from wrong answers, feedback per part.

Everything else -- judging, the distractor screen, notebooks, grading, the report's
fairness analysis, simulated returns -- is written once on top of this interface, so
adding a family touches its module, its text and its tests, and nothing else. The
registry (:mod:`convpset.problems.registry`) finds built-in families, families of other
packages (entry point group ``convpset.families``) and a course's own ``families/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from convpset.problems.base import Kind, Mistake, Part, Variant


class Family(ABC):
    """One kind of exercise: generation, the key, the named mistakes, the text.

    Subclasses set :attr:`name` (the id used in ``pset.toml`` and in text keys) and
    :attr:`levels`, and implement the abstract methods. The optional hooks have
    defaults that a simple family never needs to touch.
    """

    name: ClassVar[str]
    levels: ClassVar[tuple[int, ...]] = (1, 2, 3)
    #: where the family's text table lives; set by the registry from the module's file
    text_path: Path | None = None

    # ------------------------------------------------------------------ required
    @abstractmethod
    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        """A candidate variant drawn from ``rng`` only (the screen may reject it)."""

    @abstractmethod
    def parts(self, v: Variant) -> list[Part]:
        """The answer contract: one :class:`Part` per variable the student defines."""

    @abstractmethod
    def solve(self, v: Variant) -> Mapping[str, Any]:
        """The key: one reference answer per part, computed via ``solutions/``."""

    @abstractmethod
    def mistakes(self, v: Variant) -> list[Mistake]:
        """What each known misconception would answer (only the parts it changes).

        Each key once, the whole-network form of the slip (the distractor screen holds
        it to differ from the truth and from the others); after all of them, the same key
        may come again with the answers of a narrower scope of that slip (made in some
        layers only), kept only where they differ from everything listed before.
        """

    @abstractmethod
    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        """Template variables of the statement and the worked solution."""

    @abstractmethod
    def data_code(self, v: Variant) -> str:
        """Python source of the notebook cell that defines the student's numbers."""

    # ------------------------------------------------------------------ text
    def part(self, name: str, kind: Kind, points: float, **kw: Any) -> Part:
        """A :class:`Part` whose label comes from the family's text (``label.NAME``)."""
        from convpset.problems.text import fixed_all

        return Part(name, kind, points, fixed_all(f"{self.name}.label.{name}"), **kw)

    def statement(self, v: Variant, lang: str, parts: Sequence[Part] | None = None) -> str:
        """The problem as the student reads it (markdown with TeX).

        ``parts`` are the answers as the notebook names and scores them (``W_1``, the
        course's points); by default the family's own.
        """
        from convpset.problems.text import render

        shown = list(parts) if parts is not None else self.parts(v)
        return render(lang, f"{self.name}.statement", **self.context(v, lang), parts=shown)

    def explain(self, v: Variant, lang: str) -> str:
        """A short worked solution (solution notebooks, feedback with ``--reveal``)."""
        from convpset.problems.text import render

        return render(lang, f"{self.name}.explain", **self.context(v, lang),
                      **self.explain_context(v, lang), parts=self.parts(v))

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        """Extra template variables of the worked solution (the answers, usually)."""
        return {}

    # ------------------------------------------------------------------ optional hooks
    def features(self, v: Variant) -> dict[str, float]:
        """Numeric difficulty features of a variant, for the report's fairness test
        (labels: ``feature.NAME`` in the family's text). None by default."""
        return {}

    def traits(self, v: Variant) -> frozenset[str]:
        """The advertised features this variant draws (``padding``, ``stride``, ...):
        tests check every level draws what the README promises."""
        return frozenset()

    #: answer-cell code a student would write with torch, ``{s}`` standing for the
    #: notebook's suffix of the answer names (see :meth:`torch_answer`)
    torch_code: ClassVar[str | None] = None

    def torch_answer(self, v: Variant, suffix: str) -> str | None:
        """Answer-cell code a student would write with torch (simulated returns), with
        the answer variables named ``NAME{suffix}``; None when torch is no help. By
        default :attr:`torch_code` with its ``{s}`` filled in."""
        return None if self.torch_code is None else self.torch_code.replace("{s}", suffix)

    def accepts(self, v: Variant, part: str, value: np.ndarray) -> bool:
        """Whether ``value`` is a right answer to ``part`` too, though it differs from the
        key: for questions with several valid answers (a padding, a kernel/stride/padding
        that maps one size to another). ``value`` is the normalized answer (plain numpy
        numbers of the key's shape, never a student object); the screen also rejects a
        variant whose listed mistake would be accepted. By default only the key is right."""
        return False

    def oracle(self, v: Variant) -> Mapping[str, Any] | None:
        """The key computed an independent way (torch, closed form), for the tests;
        None when the family has no second route."""
        return None

    def size_budget(self, v: Variant) -> dict[str, float]:
        """Measures of hand work for this variant (entries to write, largest number):
        the tests hold every level to :attr:`budgets`."""
        return {}

    #: level -> measure -> maximum (see :meth:`size_budget`)
    budgets: ClassVar[Mapping[int, Mapping[str, float]]] = {}

    #: level -> advertised trait -> (min, max) share of seeds that draw it (README's
    #: families table; ``pset list``); tests draw 200 seeds per level and hold the
    #: family to these ranges (see :meth:`traits`)
    advertised: ClassVar[Mapping[int, Mapping[str, tuple[float, float]]]] = {}

    #: level -> every mistake key the family can name at that level (``pset list``);
    #: tests check the declaration against the mistakes 200 seeds really list
    mistake_names: ClassVar[Mapping[int, tuple[str, ...]]] = {}

    def __repr__(self) -> str:
        return f"<family {self.name} levels={self.levels}>"


# --------------------------------------------------------------------- helpers for families
def array_answers_budget(key: Mapping[str, Any]) -> dict[str, float]:
    """Hand work of a key made of arrays: entries to write in all, the largest |number|."""
    arrays = [np.asarray(a, dtype=float) for a in key.values()]
    return {"entries": float(sum(a.size for a in arrays)),
            "largest": float(max(np.abs(a).max() for a in arrays))}


def input_kernel_features(v: Variant) -> dict[str, float]:
    """Difficulty features of a convolution variant: entries of the input and the kernel."""
    return {"input_size": float(np.asarray(v.params["x"]).size),
            "kernel_size": float(np.asarray(v.params["kernel"]).size)}


def answer_entries(key: Mapping[str, Any]) -> int:
    """Every number a student writes by hand for ``key``: the entries of its arrays, the
    items of its (possibly ragged) lists, 1 per scalar. The common measure of hand work
    across families (``benchmarks/hand_work.py``, ``tests/test_budgets.py``)."""

    def count(value: Any) -> int:
        if isinstance(value, np.ndarray) and value.dtype != object:
            return int(value.size)
        if isinstance(value, Mapping):
            return sum(count(x) for x in value.values())
        if isinstance(value, (list, tuple, np.ndarray)):
            return sum(count(x) for x in value)
        return 1

    return sum(count(x) for x in key.values())
