"""Problem pools across a class: how many students hold each alternative, and a ``draw``
number that spreads the current roster evenly (``pset pools A [--balance]``).

A draw depends only on (secret, assignment, pool, ``draw``, student), so it cannot be
exactly even for every roster and also stay put when the roster grows (README, "Problem
pools"). ``--balance`` picks, once and before release, the ``draw`` number that splits
the roster of the moment as evenly as possible; written into pset.toml it is part of the
config from then on, so a student added later changes nobody's problems (their own draw
is then an independent one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from convpset.notebooks.course import AssignmentSpec, PoolSpec
from convpset.notebooks.variants import drawn, pool_keys, pool_weights

MAX_TRIES = 20_000   # draw numbers tried by --balance (the keys are hashed once; a try is numpy)


@dataclass(frozen=True)
class PoolUse:
    """How a roster spreads over one pool's alternatives."""

    entry: int                   # index of the pool in the assignment's problems
    numbers: tuple[int, ...]     # the problem numbers it fills
    counts: tuple[int, ...]      # students holding each alternative, in listed order
    draw: int

    @property
    def spread(self) -> int:
        """Most-held minus least-held alternative (0 or 1: as even as it gets)."""
        return max(self.counts) - min(self.counts)


def _numbers(spec: AssignmentSpec, entry: int) -> tuple[int, ...]:
    start = sum(e.count for e in spec.problems[:entry])
    return tuple(range(start + 1, start + spec.problems[entry].count + 1))


def _keys(secret: bytes, spec: AssignmentSpec, entry: int, pool: PoolSpec,
          students: Sequence[str]) -> np.ndarray:
    """students × alternatives: the secret keys the draw scrambles (see pool_draw)."""
    n = len(pool.alternatives)
    return np.array([pool_keys(secret, spec.name, entry, pool, sid) for sid in students],
                    dtype=np.uint64).reshape(len(students), n)


def _use(spec: AssignmentSpec, entry: int, pool: PoolSpec, keys: np.ndarray,
         draw: int) -> PoolUse:
    counts = drawn(pool_weights(keys, draw), pool.choose).sum(axis=0)
    return PoolUse(entry, _numbers(spec, entry), tuple(int(c) for c in counts), draw)


def pool_use(secret: bytes, spec: AssignmentSpec, entry: int, pool: PoolSpec,
             students: Sequence[str]) -> PoolUse:
    """How ``students`` spread over one pool under its own ``draw`` number (the same
    draws as :func:`convpset.notebooks.variants.pool_draw`, computed for all at once)."""
    return _use(spec, entry, pool, _keys(secret, spec, entry, pool, students), pool.draw)


def pool_uses(secret: bytes, spec: AssignmentSpec, students: Sequence[str]) -> list[PoolUse]:
    """Every pool of the assignment with the roster's counts under its current ``draw``."""
    return [pool_use(secret, spec, i, e, students) for i, e in enumerate(spec.problems)
            if isinstance(e, PoolSpec)]


def balanced_draw(secret: bytes, spec: AssignmentSpec, entry: int, students: Sequence[str],
                  tries: int = MAX_TRIES) -> PoolUse:
    """The first ``draw`` number from 0 whose counts differ by at most 1; the most even
    one of ``tries`` when none does (many alternatives, few students)."""
    pool = spec.problems[entry]
    assert isinstance(pool, PoolSpec)
    keys = _keys(secret, spec, entry, pool, students)
    best: PoolUse | None = None
    for draw in range(tries):
        use = _use(spec, entry, pool, keys, draw)
        if best is None or use.spread < best.spread:
            best = use
        if best.spread <= 1:
            break
    assert best is not None
    return best
