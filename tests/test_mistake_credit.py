"""Credit for named mistakes is the course's policy (``mistake_credit`` per assignment in
pset.toml): element-wise partial credit (the default, unchanged), none, or a fixed share;
the feedback says which rule applied."""

from __future__ import annotations

import pytest

from convpset.notebooks.course import CourseError, init_course, load_course
from convpset.notebooks.variants import problems_for
from convpset.problems import Submitted, get_family, variant_from_seed
from convpset.problems.checking import check_part, mistakes_of, parts_of, solved


def _flipped_answer():
    """A conv_as_matrix variant and a W built with the flipped kernel (a named mistake)."""
    fam = get_family("conv_as_matrix")
    v = variant_from_seed("conv_as_matrix", 3, 1)
    flipped = next(m for m in mistakes_of(fam, v) if m.key == "flipped_kernel")
    part = next(p for p in parts_of(fam, v) if p.name == "W")
    return fam, v, part, Submitted.of(flipped.answers["W"])


def _judge(policy):
    fam, v, part, sub = _flipped_answer()
    kw = {} if policy is None else {"mistake_credit": policy}
    return check_part(part, sub, solved(fam, v)["W"], mistakes_of(fam, v), v.family, **kw)


def test_default_is_element_wise_and_unchanged():
    default, partial = _judge(None), _judge("partial")
    assert default.mistake == "flipped_kernel"
    assert 0 < default.score < default.max_score           # element-wise share, as before
    assert default.score == partial.score and default.message == partial.message
    assert "element by element" in default.message["en"]
    assert "поэлементно" in default.message["ru"]


def test_none_gives_zero_and_says_so():
    r = _judge("none")
    assert r.mistake == "flipped_kernel" and r.score == 0 and r.status == "wrong"
    assert "earns no credit" in r.message["en"] and "не получает" in r.message["ru"]
    assert "flipped the kernel" in r.message["en"]            # the mistake is still named


def test_fixed_share_gives_that_share():
    r = _judge(0.25)
    assert r.score == round(0.25 * r.max_score, 2) and r.status == "partial"
    assert "25%" in r.message["en"] and "25%" in r.message["ru"]
    assert _judge(0.0).score == 0


def test_wrong_answer_without_a_named_mistake_is_not_affected():
    fam, v, part, sub = _flipped_answer()
    junk = Submitted.of(sub.value + 100)
    results = {p: check_part(part, junk, solved(fam, v)["W"], mistakes_of(fam, v), v.family,
                             mistake_credit=p) for p in ("partial", "none", 0.5)}
    assert {r.score for r in results.values()} == {0.0}
    assert all(r.mistake is None for r in results.values())


def _course(tmp_path, line: str | None):
    c = init_course(tmp_path / "c", students=2, seed=1)
    if line is not None:
        toml = c.root / "pset.toml"
        text = toml.read_text().replace("[assignments.conv1]\n", f"[assignments.conv1]\n{line}\n")
        toml.write_text(text)
    return load_course(c.root)


@pytest.mark.parametrize(("line", "want"), [(None, "partial"), ('mistake_credit = "none"', "none"),
                                            ("mistake_credit = 0.25", 0.25),
                                            ("mistake_credit = 1", 1.0)])
def test_pset_toml_chooses_the_policy(tmp_path, line, want):
    c = _course(tmp_path, line)
    a = c.assignment("conv1")
    assert a.mistake_credit == want
    assert {p.mistake_credit for p in problems_for(c, a, "s001")} == {want}


@pytest.mark.parametrize("bad", ['"some"', "1.5", "-0.1", "true"])
def test_bad_policy_is_a_one_line_course_error(tmp_path, bad):
    with pytest.raises(CourseError) as err:
        _course(tmp_path, f"mistake_credit = {bad}")
    msg = str(err.value)
    assert "assignments.conv1: mistake_credit must be" in msg and "\n" not in msg


def test_policy_reaches_the_judge_through_problem(tmp_path):
    """Problem.judge (the path grade and the nbgrader bridge share) applies the policy."""
    c = _course(tmp_path, 'mistake_credit = "none"')
    prob = problems_for(c, c.assignment("conv1"), "s001")[0]
    fam, v = prob.fam, prob.variant
    flipped = next(m for m in mistakes_of(fam, v) if m.key == "flipped_kernel")
    answers = {f"W{prob.suffix}": Submitted.of(flipped.answers["W"]),
               f"y{prob.suffix}": Submitted.of(flipped.answers["y"])}
    res = {r.part: r for r in prob.judge(answers)}
    assert res[f"W{prob.suffix}"].mistake == "flipped_kernel"
    assert res[f"W{prob.suffix}"].score == 0 == res[f"y{prob.suffix}"].score


def test_named_mistake_message_is_the_sentence_then_the_rule():
    """Each language's message is that language's sentence followed by the rule (a merge
    once put the whole en/ru dict's repr into every message)."""
    from convpset.problems import Submitted, get_family, variant_from_seed
    from convpset.problems.checking import check_part
    from convpset.problems.text import render

    fam = get_family("conv_as_matrix")
    v = variant_from_seed("conv_as_matrix", 3, 1)
    m = next(m for m in fam.mistakes(v) if m.key == "transpose")
    part = next(p for p in fam.parts(v) if p.name == "W")
    for policy, rule in (("partial", "credit.partial"), ("none", "credit.none")):
        r = check_part(part, Submitted.of(m.answers["W"]), fam.solve(v)["W"], fam.mistakes(v),
                       fam.name, mistake_credit=policy)
        for lang in ("en", "ru"):
            assert r.message[lang] == " ".join([render(lang, "conv_as_matrix.mistake.transpose"),
                                                render(lang, rule)])


# ------------------------------------------------------------------ conversion details
def test_every_conversion_detail_the_sandbox_can_send_has_a_phrase():
    """The sandbox's vocabulary (every literal NotConvertible/error text in convert.py and
    child.py) is matched by problems/details.py, so no English phrase reaches a Russian
    page; an unknown detail is still shown, quoted."""
    import re
    from pathlib import Path

    from convpset.problems.details import VOCABULARY, detail_text

    root = Path(__file__).resolve().parents[1] / "autograder" / "sandbox"
    texts = []
    for name in ("convert.py", "child.py"):
        src = (root / name).read_text(encoding="utf-8")
        texts += re.findall(r'NotConvertible\(f?"([^"]+)"', src)
        texts += re.findall(r'ent\["error"\] = f?"([^"]+)"', src)
        texts += re.findall(r'msg = \(f?"([^"]+)"', src)
    assert len(texts) >= 15
    for text in texts:
        sample = re.sub(r"\{[^}]+\}", "1", text)   # an f-string's fields filled in
        assert any(p.match(sample) for p, _ in VOCABULARY), text
        assert detail_text("ru", sample) != f"`{sample}`", text
    assert detail_text("ru", "no such detail") == "`no such detail`"
    assert detail_text("ru", "complex values") == "комплексные числа"
    assert detail_text("en", "a str object, not numbers") == "an object of type `str`, not numbers"
