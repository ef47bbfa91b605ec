"""A course's own exercise: the output size of one convolution layer.

This file is an example of a family kept in a course repository (COURSE/families/),
loaded by convpset when the course is, without forking the package. Its text is beside
it in ``conv_output_size.toml`` (an [en] and a [ru] table). Copy both files, rename
them and the ``name``, and adapt the five methods below. See README, "Writing a family".
"""

from __future__ import annotations

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family


def size(n: int, k: int, s: int, p: int, d: int = 1, *, sides: int = 2, ceil: bool = False,
         plus_one: bool = True) -> int:
    """⌊(n + 2p − d(k−1) − 1)/s⌋ + 1; the keywords model a student's slips."""
    span = n + sides * p - d * (k - 1) - 1
    q = -(-span // s) if ceil else span // s
    return q + (1 if plus_one else 0)


class ConvOutputSize(Family):
    name = "conv_output_size"
    levels = (1, 2)
    budgets = {1: {"largest": 64}, 2: {"largest": 64}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        """Level 1: kernel and padding. Level 2: stride and dilation too."""
        n = int(rng.integers(12, 33))
        if level == 1:
            k, p, s, d = int(rng.choice([3, 5, 7])), int(rng.integers(2, 4)), 1, 1
        else:  # chosen so that every slip below gives a different number
            k, p, s, d = int(rng.choice([5, 7])), 2, 2, 2
        return Variant(self.name, level, {"n": n, "k": k, "s": s, "p": p, "d": d})

    def parts(self, v: Variant) -> list[Part]:
        return [self.part("size", "int", 1.0, dtype="int")]

    def solve(self, v: Variant) -> dict[str, int]:
        q = v.params
        return {"size": size(q["n"], q["k"], q["s"], q["p"], q["d"])}

    def mistakes(self, v: Variant) -> list[Mistake]:
        q = v.params
        args = (q["n"], q["k"], q["s"], q["p"], q["d"])
        out = [Mistake("one_side_padding", {"size": size(*args, sides=1)})]
        if q["s"] == 1:
            out.append(Mistake("no_plus_one", {"size": size(*args, plus_one=False)}))
        else:
            out.append(Mistake("ceil", {"size": size(*args, ceil=True)}))
        if q["d"] > 1:
            out.append(Mistake("ignore_dilation", {"size": size(*args[:4])}))
        return out

    def context(self, v: Variant, lang: str) -> dict[str, object]:
        return dict(v.params)

    def explain_context(self, v: Variant, lang: str) -> dict[str, object]:
        return {"answer": self.solve(v)["size"]}

    def data_code(self, v: Variant) -> str:
        q = v.params
        return f"n, k, stride, padding, dilation = {q['n']}, {q['k']}, {q['s']}, {q['p']}, {q['d']}"

    def features(self, v: Variant) -> dict[str, float]:
        return {"input": float(v.params["n"])}

    def size_budget(self, v: Variant) -> dict[str, float]:
        return {"largest": float(v.params["n"] + 2 * v.params["p"])}

    def oracle(self, v: Variant) -> dict[str, int]:
        import torch

        q = v.params
        conv = torch.nn.Conv2d(1, 1, q["k"], q["s"], q["p"], q["d"])
        with torch.no_grad():
            return {"size": int(conv(torch.zeros(1, 1, q["n"], q["n"])).shape[-1])}

    def torch_answer(self, v: Variant, suffix: str) -> str:
        return ("import torch\n"
                "_conv = torch.nn.Conv2d(1, 1, k, stride, padding, dilation)\n"
                f"size{suffix} = _conv(torch.zeros(1, 1, n, n)).shape[-1]")


FAMILY = ConvOutputSize()
