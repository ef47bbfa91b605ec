"""Why an answer could not be read as numbers, in the student's language.

The sandbox reports a conversion failure as a short detail from a fixed vocabulary
(``complex values``, ``a str object, not numbers``, ...; see
:mod:`convpset.autograder.sandbox.convert`): plain data that crosses the process boundary.
The grading process shows it through the text tables (``convert.*``), so a Russian page
never carries the English phrase; a detail outside the vocabulary is shown as it came, in
code quotes.
"""

from __future__ import annotations

import re

from convpset.problems.text import render

# (pattern of the sandbox's detail, text key); the groups become {{ arg }}
VOCABULARY: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), k) for p, k in (
        (r"^not defined$", "convert.not_defined"),
        (r"^value is None$", "convert.none"),
        (r"^complex values$", "convert.complex"),
        (r"^a string, not numbers$", "convert.string"),
        (r"^strings in nested list$", "convert.strings_in_list"),
        (r"^None in nested list$", "convert.none_in_list"),
        (r"^nested list too large$", "convert.nested_too_large"),
        (r"^nested list too deep$", "convert.nested_too_deep"),
        (r"^element of type (.+?)( in nested list)?$", "convert.element_type"),
        (r"^unsigned values too large for int64$", "convert.unsigned"),
        (r"^object dtype", "convert.object_dtype"),
        (r"^strings \(dtype (.+)\)$", "convert.strings_dtype"),
        (r"^unsupported dtype (.+)$", "convert.dtype"),
        (r"^numpy scalar subclass (.+)$", "convert.scalar_subclass"),
        (r"^tensor conversion failed: (.*)$", "convert.tensor_failed"),
        (r"^a (.+) object, not numbers$", "convert.object"),
        (r"^answer too large \((\d+) bytes\)$", "convert.too_large"),
        (r"^out of memory while extracting the answer$", "convert.oom"),
        (r"^converting the value took more than (\S+) s of CPU time\b.*$", "convert.cpu"),
        (r"^conversion failed: (.*)$", "convert.failed"),
    ))


def detail_text(lang: str, detail: str | None) -> str:
    """The sandbox's conversion detail as a phrase of ``lang`` ("" for none)."""
    if not detail:
        return ""
    for pattern, key in VOCABULARY:
        m = pattern.match(detail)
        if m:
            return render(lang, key, arg=m.group(1) if m.groups() else "")
    return f"`{detail}`"
