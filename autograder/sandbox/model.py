"""The sandbox's public data: the limits a notebook runs under and what comes back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Limits:
    wall_s: float = 20.0
    cell_s: float = 5.0       # wall seconds per cell (SIGALRM): a sleeping cell fails alone
    cell_cpu_s: float = 1.0   # CPU seconds per cell (SIGPROF): a looping cell fails alone,
                              # and a loaded machine cannot make a quick cell time out
    import_cpu_s: float = 5.0  # CPU seconds per notebook for first-time imports, kept off
                               # the cells' clocks (matplotlib alone takes ~1 s)
    convert_cpu_s: float = 2.0  # CPU seconds per answer for its conversion to plain data
    cpu_s: int = 10
    memory_mb: int = 512
    output_bytes: int = 1_000_000
    file_bytes: int = 10_000_000
    disk_bytes: int = 64_000_000  # everything a notebook writes, in sum (its own tmpfs)
    nproc: int = 16
    answer_bytes: int = 20_000_000


@dataclass(frozen=True)
class Answer:
    name: str
    present: bool
    source_type: str
    value: np.ndarray | None
    error: str | None
    rows: Sequence[np.ndarray] | None = None   # ragged lists, e.g. [(6, 24, 24), (256,)]


@dataclass(frozen=True)
class CellError:
    index: int
    ename: str
    evalue: str
    traceback_tail: str


@dataclass(frozen=True)
class ExecResult:
    """What one notebook's run gave. ``status`` is one of :data:`.protocol.STATUSES`;
    ``detail`` a machine word that qualifies it (a signal name, an exit code, a
    :mod:`.protocol` ``DETAIL_*``), never a sentence: the text tables phrase both.
    ``isolation`` is the child's record of the isolation steps it applied."""

    status: str
    detail: str
    answers: dict[str, Answer]
    cell_errors: tuple[CellError, ...]
    stdout_tail: str
    duration_s: float
    isolation: dict = field(default_factory=dict, repr=False, compare=False)


class Ragged(Sequence):
    """Ragged rows as one flat float64 array and row offsets: what the result channel
    gives for a ragged list.

    Why not a tuple of arrays: a legal answer may have millions of rows (the answer cap
    is in bytes), and one numpy object per row cost the grading process minutes and
    hundreds of MB before anything could look at how many rows there are. Here ``len``
    is free, and rows are sliced only when someone asks for them (a judge that has
    already checked ``len`` against its cap).
    """

    def __init__(self, flat: np.ndarray, lengths: np.ndarray) -> None:
        self.flat = flat
        self.offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, dtype=np.int64, out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.flat[self.offsets[i]:self.offsets[i + 1]]

    def __repr__(self) -> str:
        return f"Ragged({len(self)} rows, {self.flat.size} entries)"
