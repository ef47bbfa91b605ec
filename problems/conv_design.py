"""Designing a convolution: solve for the hyperparameters instead of the output.

The course notes compute a layer's output size from its kernel, stride and padding; a
practitioner more often needs the reverse. Four questions, every level:

* the padding that keeps the size ("same", stride 1): ``(k-1)/2`` per side for an odd kernel;
  an even kernel (or a dilated one with ``d(k-1)`` odd) needs ``d(k-1)`` zeros in all, which
  no symmetric ``padding=p`` gives -- the extra row goes to one side (torch's
  ``padding='same'`` and TensorFlow put it after: bottom/right);
* whether a stride fits an input exactly: the last window ends on the last (padded) row,
  ``(n + 2p - k) % s == 0``, so no row is silently dropped by the floor;
* a kernel/stride/padding mapping a given input size to a given output size, within stated
  ranges (kernel 1-7, stride 1-3, ``0 ≤ p ≤ k//2``) -- usually several: every valid triple
  is accepted (:meth:`ConvDesign.accepts`), the key is one of them;
* which choices are impossible (level 3: kernel/stride pairs no padding in range makes work).

The key is closed form; the oracle asks torch for the output shape of ``F.conv2d`` on a
tensor of zeros (``padding='same'`` for the split of an even kernel's padding).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from convpset.problems.base import Mistake, Part, Variant
from convpset.problems.contract import Family, answer_entries
from convpset.problems.text import ru_plural

NAME = "conv_design"
KERNELS = range(1, 8)           # the ranges a design may use (stated in the statement)
STRIDES = range(1, 4)
#: the order the key tries kernels in: the common odd sizes first
PREFERENCE = (3, 5, 1, 7, 2, 4, 6)
FIT_STRIDES = (2, 3, 4)


def out_size(n: int, k: int, s: int = 1, p: int = 0, d: int = 1, p_after: int | None = None) -> int:
    """Conv2d's output size along one axis (``p_after``: the padding after, when asymmetric)."""
    after = p if p_after is None else p_after
    return (n + p + after - d * (k - 1) - 1) // s + 1


def same_split(k: int, d: int = 1) -> tuple[int, int]:
    """torch's ``padding='same'`` (stride 1): ``d(k-1)`` zeros, the extra one after."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def fits(n: int, k: int, p: int, s: int) -> bool:
    """Whether the last window of stride ``s`` ends on the last padded row."""
    return (n + 2 * p - k) % s == 0


def valid_design(n: int, m: int, k: int, s: int, p: int) -> bool:
    """A kernel/stride/padding within the stated ranges that maps ``n`` to ``m``."""
    return (k in KERNELS and s in STRIDES and 0 <= p <= k // 2 and n + 2 * p >= k
            and out_size(n, k, s, p) == m)


def designs(n: int, m: int) -> list[tuple[int, int, int]]:
    """Every valid (k, s, p), in the key's order of preference."""
    return [(k, s, p) for k in PREFERENCE for s in STRIDES for p in range(k // 2 + 1)
            if valid_design(n, m, k, s, p)]


def possible(n: int, m: int, k: int, s: int, pad: bool = True, exact: bool = False) -> bool:
    """Whether some padding ``0 ≤ p ≤ k//2`` maps ``n`` to ``m`` with kernel ``k``, stride
    ``s`` (``pad=False``: only p = 0; ``exact``: only paddings the stride fits exactly)."""
    return any(valid_design(n, m, k, s, p) and (not exact or fits(n, k, p, s))
               for p in range(k // 2 + 1 if pad else 1))


def symmetric_ok(k: int, d: int = 1) -> bool:
    """Whether an integer ``padding=p`` on both sides keeps the size (stride 1)."""
    return d * (k - 1) % 2 == 0


def _int_row(value: Any) -> list[int] | None:
    arr = np.asarray(value, dtype=float).ravel()
    if not np.all(arr == np.round(arr)):
        return None
    return [int(a) for a in arr]


def _answers(v: Variant) -> dict[str, Any]:
    p = v.params
    out: dict[str, Any] = {}
    k, d = p["same"]["k"], p["same"].get("d", 1)
    out["pad_same"] = (k - 1) // 2 if v.level == 1 else np.array(same_split(k, d))
    if v.level >= 2:
        out["symmetric"] = np.array([int(symmetric_ok(c["k"], c.get("d", 1)))
                                     for c in p["symmetric"]])
    f = p["fit"]
    out["stride_fits"] = np.array([int(fits(f["n"], f["k"], f["p"], s)) for s in FIT_STRIDES])
    g = p["design"]
    out["design"] = np.array(designs(g["n"], g["m"])[0])
    if v.level == 3:
        q = p["impossible"]
        out["impossible"] = np.array([int(not possible(q["n"], q["m"], c["k"], c["s"]))
                                      for c in q["choices"]])
    return out


def _literal(d: Any) -> str:
    """A dict of the data cell in a fixed key order (the stamp's JSON sorts its keys)."""
    order = ("n", "m", "k", "s", "p", "d")
    return "{" + ", ".join(f"{key!r}: {d[key]!r}" for key in order if key in d) + "}"


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


class ConvDesign(Family):
    name = NAME
    levels = (1, 2, 3)
    advertised = {1: {"odd_kernel": (0.9, 1.0), "several_designs": (0.6, 0.9)},
                  2: {"even_kernel": (0.9, 1.0), "padding": (0.9, 1.0),
                      "stride_needed": (0.9, 1.0), "several_designs": (0.6, 1.0)},
                  3: {"dilation": (0.9, 1.0), "asymmetric": (0.2, 0.5),
                      "impossible": (0.9, 1.0), "several_designs": (0.6, 1.0)}}
    mistake_names = {
        1: ("total_as_side", "divides_input", "one_side_padding"),
        2: ("total_as_side", "same_both_floor", "same_both_ceil", "same_string",
            "divides_input", "ignore_kernel", "ignore_padding", "one_side_padding"),
        3: ("total_as_side", "same_both_floor", "same_both_ceil", "ignore_dilation",
            "same_string", "divides_input", "ignore_kernel", "ignore_padding",
            "one_side_padding", "exact_fit_only", "no_padding"),
    }
    budgets = {1: {"entries": 8, "largest": 32}, 2: {"entries": 12, "largest": 32},
               3: {"entries": 16, "largest": 32}}

    def generate(self, rng: np.random.Generator, level: int) -> Variant:
        """Level 1: an odd kernel, stride 1, no padding in the fit question. Level 2: an
        even kernel, padding 1, an output size that needs a stride. Level 3: dilation,
        and kernel/stride pairs of which some cannot reach the output."""
        n = int(rng.integers(8, 33))
        if level == 1:
            same = {"n": n, "k": int(_pick(rng, (3, 5, 7)))}
        elif level == 2:
            same = {"n": n, "k": int(_pick(rng, (2, 4, 6)))}
        else:
            same = {"n": n, "k": int(_pick(rng, (2, 3, 4))), "d": int(_pick(rng, (2, 3)))}
        fit = {"n": int(rng.integers(9, 25)), "k": int(_pick(rng, (3, 5))),
               "p": 0 if level == 1 else 1}
        dn = int(rng.integers(10, 33))
        if level == 1:
            dm = dn - int(_pick(rng, (2, 4, 6)))
        else:
            dm = int(_pick(rng, (dn // 2, (dn + 1) // 2, dn // 3, (dn + 2) // 3)))
        params: dict[str, Any] = {"same": same, "fit": fit, "design": {"n": dn, "m": dm}}
        if level >= 2:
            pairs = [(3, 1), (2, 1), (4, 1), (5, 1), (6, 1), (7, 1), (1, 1)] if level == 2 \
                else [(2, 2), (3, 2), (2, 3), (3, 3), (4, 2), (5, 2), (1, 2)]
            idx = rng.choice(len(pairs), size=4, replace=False)
            params["symmetric"] = [{"k": pairs[i][0]} | ({"d": pairs[i][1]} if level == 3 else {})
                                   for i in sorted(idx)]
        if level == 3:
            qn = int(rng.integers(10, 25))
            qm = int(_pick(rng, (qn // 2, (qn + 1) // 2, qn // 3)))
            choices = [(1, 2), (3, 2), (5, 2), (7, 2), (1, 3), (3, 3), (5, 3), (7, 3)]
            idx = rng.choice(len(choices), size=4, replace=False)
            params["impossible"] = {"n": qn, "m": qm, "choices": [
                {"k": choices[i][0], "s": choices[i][1]} for i in sorted(idx)]}
        return Variant(NAME, level, params)

    def parts(self, v: Variant) -> list[Part]:
        out = [self.part("pad_same", "int", 1.0, dtype="int") if v.level == 1 else
               self.part("pad_same", "array", 1.0, shape=(2,), dtype="int")]
        if v.level >= 2:
            out.append(self.part("symmetric", "array", 1.0, shape=(4,), dtype="int",
                                 per_element=True))
        out.append(self.part("stride_fits", "array", 1.0, shape=(3,), dtype="int",
                             per_element=True))
        out.append(self.part("design", "array", 1.0, shape=(3,), dtype="int"))
        if v.level == 3:
            out.append(self.part("impossible", "array", 1.0, shape=(4,), dtype="int",
                                 per_element=True))
        return out

    def solve(self, v: Variant) -> dict[str, Any]:
        return _answers(v)

    def accepts(self, v: Variant, part: str, value: np.ndarray) -> bool:
        """Any valid answer is right: a split of the 'same' padding (levels 2-3) and any
        kernel/stride/padding within the ranges that maps n to m."""
        row = _int_row(value)
        if row is None:
            return False
        if part == "pad_same" and v.level >= 2 and len(row) == 2:
            same = v.params["same"]
            before, after = row
            return (before >= 0 and after >= 0
                    and out_size(same["n"], same["k"], 1, before, same.get("d", 1), after)
                    == same["n"])
        if part == "design" and len(row) == 3:
            g = v.params["design"]
            return valid_design(g["n"], g["m"], *row)
        return False

    def mistakes(self, v: Variant) -> list[Mistake]:
        p, truth = v.params, _answers(v)
        k, d = p["same"]["k"], p["same"].get("d", 1)
        total = d * (k - 1)
        out: list[Mistake] = []

        def add(key: str, answers: dict[str, Any]) -> None:
            changed = {n: a for n, a in answers.items()
                       if not np.array_equal(np.asarray(a), np.asarray(truth[n]))}
            if changed:
                out.append(Mistake(key, changed))

        if v.level == 1:
            add("total_as_side", {"pad_same": total})
        else:
            if total > 1:     # (1, 1) for a 2×2 kernel is the both-sides-ceil slip
                add("total_as_side", {"pad_same": np.array([total, total])})
            if total % 2:
                add("same_both_floor", {"pad_same": np.array([total // 2] * 2)})
                add("same_both_ceil", {"pad_same": np.array([total - total // 2] * 2)})
            add("same_string", {"symmetric": np.ones(4, dtype=int)})
        if v.level == 3:      # one slip, both parts: the kernel's span taken as k
            add("ignore_dilation", {"pad_same": np.array(same_split(k)),
                                    "symmetric": np.array([int(symmetric_ok(c["k"]))
                                                           for c in p["symmetric"]])})
        f = p["fit"]
        add("divides_input", {"stride_fits": np.array([int(f["n"] % s == 0)
                                                        for s in FIT_STRIDES])})
        if f["p"]:        # without padding, n + 2p is n: the divides_input slip
            add("ignore_kernel", {"stride_fits": np.array([int((f["n"] + 2 * f["p"]) % s == 0)
                                                            for s in FIT_STRIDES])})
            add("ignore_padding", {"stride_fits": np.array([int((f["n"] - f["k"]) % s == 0)
                                                             for s in FIT_STRIDES])})
        dk, ds, dp = (int(a) for a in truth["design"])
        if dp:
            add("one_side_padding", {"design": np.array([dk, ds, 2 * dp])})
        if v.level == 3:
            q = p["impossible"]
            for key, kw in (("exact_fit_only", {"exact": True}), ("no_padding", {"pad": False})):
                add(key, {"impossible": np.array([int(not possible(q["n"], q["m"], c["k"],
                                                                     c["s"], **kw))
                                                  for c in q["choices"]])})
        # a listed slip whose answer is another valid one is no slip: leave it out (the
        # screen would reject the variant); the accepted answers are the family's own
        return [m for m in out
                if not any(self.accepts(v, n, np.asarray(a, dtype=float))
                           for n, a in m.answers.items())]

    def context(self, v: Variant, lang: str) -> dict[str, Any]:
        p = v.params
        ctx: dict[str, Any] = {"v": v, "level": v.level, "same": p["same"],
                               "d": p["same"].get("d", 1), "fit": p["fit"],
                               "strides": FIT_STRIDES, "design": p["design"],
                               "kmax": max(KERNELS), "smax": max(STRIDES)}
        ctx["symmetric"] = p.get("symmetric")
        ctx["impossible"] = p.get("impossible")
        return ctx

    def explain_context(self, v: Variant, lang: str) -> dict[str, Any]:
        p, ans = v.params, _answers(v)
        k, d = p["same"]["k"], p["same"].get("d", 1)
        g = p["design"]
        f = p["fit"]
        valid = designs(g["n"], g["m"])
        return {"ans": ans, "total": d * (k - 1), "split": same_split(k, d),
                "span": f["n"] + 2 * f["p"] - f["k"],
                "span_rows": ru_plural(f["n"] + 2 * f["p"] - f["k"], "строка", "строки", "строк"),
                "valid": valid[:8], "n_valid": len(valid),
                "choice": tuple(int(a) for a in ans["design"]),
                "sym": [(c["k"], c.get("d", 1), c.get("d", 1) * (c["k"] - 1), ok)
                        for c, ok in zip(p.get("symmetric") or [], ans.get("symmetric", []),
                                         strict=False)],
                "imp": [(c["k"], c["s"], ok) for c, ok in
                        zip((p.get("impossible") or {}).get("choices", []),
                            ans.get("impossible", []), strict=False)]}

    def data_code(self, v: Variant) -> str:
        p = v.params
        lines = [f"same = {_literal(p['same'])}  # keep n×n, stride 1",
                 f"fit = {_literal(p['fit'])}  # which of the strides fits exactly",
                 f"strides = {list(FIT_STRIDES)!r}",
                 f"design = {_literal(p['design'])}  # n -> m"]
        if "symmetric" in p:
            lines.append(f"symmetric = [{', '.join(_literal(c) for c in p['symmetric'])}]")
        if "impossible" in p:
            q = p["impossible"]
            lines.append(f"impossible = {{'n': {q['n']}, 'm': {q['m']}, 'choices': "
                         f"[{', '.join(_literal(c) for c in q['choices'])}]}}")
        return "\n".join(lines)

    def features(self, v: Variant) -> dict[str, float]:
        g = v.params["design"]
        return {"valid_designs": float(len(designs(g["n"], g["m"])))}

    def traits(self, v: Variant) -> frozenset[str]:
        p = v.params
        k, d = p["same"]["k"], p["same"].get("d", 1)
        g = p["design"]
        out = {"odd_kernel" if k % 2 else "even_kernel"}
        if d > 1:
            out.add("dilation")
        if d * (k - 1) % 2:
            out.add("asymmetric")
        if p["fit"]["p"]:
            out.add("padding")
        if len(designs(g["n"], g["m"])) > 1:
            out.add("several_designs")
        if not any(s == 1 for (_, s, _) in designs(g["n"], g["m"])):
            out.add("stride_needed")
        if "impossible" in p and any(_answers(v)["impossible"]):
            out.add("impossible")
        return frozenset(out)

    def size_budget(self, v: Variant) -> dict[str, float]:
        p = v.params
        return {"entries": float(answer_entries(_answers(v))),
                "largest": float(max(p["same"]["n"], p["fit"]["n"], p["design"]["n"]))}

    def torch_answer(self, v: Variant, suffix: str) -> str:
        code = TORCH_ANSWER.replace("{s}", suffix)
        if v.level == 1:
            code += f"\npad_same{suffix} = next(p for p in range(9) if _size(same['n'], same['k'], 1, p) == same['n'])"
        else:
            code += (f"\n_d = same.get('d', 1)\npad_same{suffix} = next((a, b) for a in range(20) "
                     f"for b in (a, a + 1) if same['n'] + a + b > _d * (same['k'] - 1) and "
                     f"_size(same['n'], same['k'], 1, 0, _d, (a, b)) == same['n'])")
            code += (f"\nsymmetric{suffix} = [int(any(same['n'] + 2 * p > c.get('d', 1) * (c['k'] - 1) "
                     f"and _size(same['n'], c['k'], 1, p, c.get('d', 1)) "
                     f"== same['n'] for p in range(9))) for c in symmetric]")
        if v.level == 3:
            code += (f"\nimpossible{suffix} = [int(not any(c['k'] <= impossible['n'] + 2 * p and "
                     f"_size(impossible['n'], c['k'], c['s'], p) == impossible['m'] "
                     f"for p in range(c['k'] // 2 + 1))) for c in impossible['choices']]")
        return code

    def oracle(self, v: Variant) -> dict[str, Any]:
        """The key with every size asked of torch (``F.conv2d`` on zeros), the split of an
        even kernel's padding taken from torch's own ``padding='same'``."""
        p = v.params
        same = p["same"]
        k, d, n = same["k"], same.get("d", 1), same["n"]
        out: dict[str, Any] = {}
        if v.level == 1:
            out["pad_same"] = next(q for q in range(k + 1) if torch_size(n, k, 1, q) == n)
        else:
            out["pad_same"] = np.array(torch_same_split(n, k, d))
            out["symmetric"] = np.array([int(any(
                n + 2 * q > c.get("d", 1) * (c["k"] - 1)
                and torch_size(n, c["k"], 1, q, c.get("d", 1)) == n for q in range(8)))
                for c in p["symmetric"]])
        f = p["fit"]
        sizes = [torch_size(f["n"], f["k"], s, f["p"]) for s in FIT_STRIDES]
        out["stride_fits"] = np.array([int((o - 1) * s + f["k"] == f["n"] + 2 * f["p"])
                                       for o, s in zip(sizes, FIT_STRIDES, strict=True)])
        g = p["design"]
        out["design"] = np.array(next(
            (kk, s, q) for kk in PREFERENCE for s in STRIDES for q in range(kk // 2 + 1)
            if g["n"] + 2 * q >= kk and torch_size(g["n"], kk, s, q) == g["m"]))
        if v.level == 3:
            q_ = p["impossible"]
            out["impossible"] = np.array([int(not any(
                q_["n"] + 2 * q >= c["k"] and torch_size(q_["n"], c["k"], c["s"], q) == q_["m"]
                for q in range(c["k"] // 2 + 1))) for c in q_["choices"]])
        return out


def torch_size(n: int, k: int, s: int = 1, p: int = 0, d: int = 1,
               pads: tuple[int, int] | None = None) -> int:
    """The output height torch gives for an n×n input of zeros (``pads``: before, after)."""
    import torch
    import torch.nn.functional as F

    x = torch.zeros(1, 1, n, n)
    if pads is not None:
        x, p = F.pad(x, (pads[0], pads[1], pads[0], pads[1])), 0
    return int(F.conv2d(x, torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d).shape[-2])


def torch_same_split(n: int, k: int, d: int = 1) -> tuple[int, int]:
    """How torch's ``padding='same'`` splits the zeros: the explicit padding (before, after)
    whose output equals it on a random input."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, n, n, generator=gen, dtype=torch.float64)
    w = torch.randn(1, 1, k, k, generator=gen, dtype=torch.float64)
    with warnings.catch_warnings():   # "may require a zero-padded copy": that is the point
        warnings.simplefilter("ignore", UserWarning)
        want = F.conv2d(x, w, padding="same", dilation=d)
    total = d * (k - 1)
    for before in range(total + 1):
        pads = (before, total - before, before, total - before)
        got = F.conv2d(F.pad(x, pads), w, dilation=d)
        if got.shape == want.shape and torch.allclose(got, want):
            return before, total - before
    raise AssertionError("padding='same' is no explicit padding")


# what a student answering with torch writes (simulated returns; `{s}`: the suffix)
TORCH_ANSWER = '''import torch
import torch.nn.functional as F


def _size(n, k, s=1, p=0, d=1, pads=None):
    x = torch.zeros(1, 1, n, n)
    if pads is not None:
        x, p = F.pad(x, (pads[0], pads[1], pads[0], pads[1])), 0
    return F.conv2d(x, torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d).shape[-1]


_o = [_size(fit['n'], fit['k'], s, fit['p']) for s in strides]
stride_fits{s} = [int((o - 1) * s + fit['k'] == fit['n'] + 2 * fit['p']) for o, s in zip(_o, strides)]
design{s} = next((k, s, p) for k in range(1, 8) for s in (1, 2, 3) for p in range(k // 2 + 1)
                 if k <= design['n'] + 2 * p and _size(design['n'], k, s, p) == design['m'])'''

FAMILY = ConvDesign()
