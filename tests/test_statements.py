"""Statements and worked solutions a careful student cannot misread (issue 23).

Each test pins one slip the audit found: what the text claims is checked against an
independent computation (numpy steps against torch for the backward recipe), or against
the layer the statement shows.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from convpset.problems import get_family, variant_from_seed
from convpset.problems.base import Variant
from convpset.problems.text import decimal, points_text, render

LANGS = ("en", "ru")


def _net(layers: list[dict]) -> dict:
    return {"input": [3, 12, 12], "layers": [*layers, {"type": "flatten"},
                                             {"type": "linear", "out_features": 10}]}


TRANSPOSED = {"type": "conv_transpose2d", "out_channels": 4, "kernel_size": 3, "stride": 2,
              "padding": 1, "output_padding": 1}
PADDED_CONV = {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}


@pytest.mark.parametrize("family", ["output_shape", "param_count"])
@pytest.mark.parametrize("lang", LANGS)
def test_transposed_padding_is_said_to_crop(family, lang):
    fam = get_family(family)
    only_t = fam.statement(Variant(family, 3, {"network": _net([TRANSPOSED])}), lang)
    both = fam.statement(Variant(family, 3, {"network": _net([PADDED_CONV, TRANSPOSED])}), lang)
    only_c = fam.statement(Variant(family, 3, {"network": _net([PADDED_CONV])}), lang)
    zeros = render(lang, "network.padding_note", numeric=True, same=False)
    crop = render(lang, "network.transposed_padding_note")
    assert crop in only_t and zeros not in only_t     # never "adds zeros" for a transposed layer
    assert crop in both and zeros in both
    assert zeros in only_c and crop not in only_c


@pytest.mark.parametrize("lang", LANGS)
def test_separable_is_named_as_the_table_writes_it(lang):
    for family in ("output_shape", "param_count"):
        fam = get_family(family)
        for seed in range(30):
            text = fam.statement(variant_from_seed(family, seed, 3), lang)
            assert "`separable_conv2d`" not in text
            if "SeparableConv2d(" in text:
                assert "`SeparableConv2d`" in text.split("|")[0]   # explained before the table


def test_bottleneck_is_a_different_layer_with_an_output_of_the_same_shape():
    fam = get_family("conv_cost")
    v = variant_from_seed("conv_cost", 3, 2)
    en, ru = fam.statement(v, "en"), fam.statement(v, "ru")
    assert "the same output is computed" not in en and "same shape" in en
    assert "бутылочн" in ru and "узк" not in ru and "тот же выход" not in ru


def _dx_by_the_recipe(v: Variant) -> tuple[np.ndarray, list[str]]:
    """dL/dX by the explanation's steps, in plain numpy, with the size after each step."""
    x, k, gy = v.array("x"), v.array("kernel"), v.array("grad_y")
    s, p, d = (int(v.params[n]) for n in ("stride", "padding", "dilation"))
    o_ch, c_ch, kh, kw = k.shape
    oh, ow = gy.shape[1:]
    h, w = x.shape[1:]
    dil = np.zeros((o_ch, (oh - 1) * s + 1, (ow - 1) * s + 1))
    dil[:, ::s, ::s] = gy                                              # step 1
    fh, fw = d * (kh - 1), d * (kw - 1)
    full = np.pad(dil, ((0, 0), (fh, fh), (fw, fw)))                   # step 2: pad ...
    span_h, span_w = fh + 1, fw + 1
    ch, cw = full.shape[1] - span_h + 1, full.shape[2] - span_w + 1
    corr = np.zeros((c_ch, ch, cw))
    for c in range(c_ch):                                              # ... and correlate
        for o in range(o_ch):
            turned = k[o, c, ::-1, ::-1]
            for i in range(ch):
                for j in range(cw):
                    win = full[o, i:i + span_h:d, j:j + span_w:d]
                    corr[c, i, j] += float((win * turned).sum())
    padded = np.zeros((c_ch, h + 2 * p, w + 2 * p))                    # step 3
    padded[:, :ch, :cw] = corr
    dx = padded[:, p:p + h, p:p + w]
    sizes = [f"{oh}×{ow}", f"{dil.shape[1]}×{dil.shape[2]}", f"{full.shape[1]}×{full.shape[2]}",
             f"{ch}×{cw}", f"{h}×{w}"]
    return dx, sizes


def test_backward_recipe_with_stride_padding_dilation_gives_torchs_dx():
    fam = get_family("conv_backward")
    checked = 0
    for level in (2, 3):
        for seed in range(80):
            v = variant_from_seed("conv_backward", seed, level)
            if (v.params["stride"], v.params["padding"], v.params["dilation"]) == (1, 0, 1):
                continue
            dx, sizes = _dx_by_the_recipe(v)
            np.testing.assert_allclose(dx, fam.oracle(v)["dX"], atol=1e-9)
            for lang in LANGS:
                text = fam.explain(v, lang)
                at = 0
                for size in sizes:            # the steps' sizes, in order
                    at = text.index(size, at)
                assert "full convolution of" not in text.split("transposed")[0] or lang == "ru"
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("lang", LANGS)
def test_transposed_conv_text(lang):
    fam = get_family("transposed_conv")
    v = variant_from_seed("transposed_conv", 1, 3)
    assert v.params["padding"]
    st, ex = fam.statement(v, lang), fam.explain(v, lang)
    assert ("numbered from 0" in st) if lang == "en" else ("нумеруются с 0" in st)
    assert "размнож" not in st + ex
    assert re.search(r"(Column|столбец) \$r\$", ex) and "$c$" not in ex
    assert ("cropped" in ex) if lang == "en" else ("обрезанная" in ex)
    msg = render(lang, "transposed_conv.mistake.padding_added")
    assert "added them" not in msg and "добавили" not in msg


@pytest.mark.parametrize("lang", LANGS)
def test_receptive_field_definition_counts_padding(lang):
    fam = get_family("receptive_field")
    st = fam.statement(variant_from_seed("receptive_field", 2, 2), lang)
    term = "*receptive field*" if lang == "en" else "*Рецептивное поле*"
    definition = st[st.index(term):].split("\n")[0]
    assert ("padding" in definition) if lang == "en" else ("паддинг" in definition)


@pytest.mark.parametrize(("n", "text"), [(1, "1 балл"), (2, "2 балла"), (4, "4 балла"),
                                         (5, "5 баллов"), (11, "11 баллов"), (12, "12 баллов"),
                                         (21, "21 балл"), (22, "22 балла"), (1.5, "1,5 балла"),
                                         (0.5, "0,5 балла"), (2.0, "2 балла"), (0, "0 баллов")])
def test_russian_points_plural(n, text):
    assert points_text(n, "ru") == text


def test_numbers_in_russian_text_use_a_decimal_comma():
    assert decimal(5.7, "ru") == "5,7" and decimal(5.7, "en") == "5.7" and decimal(3.0, "ru") == "3"
    fam = get_family("conv_cost")
    for seed in range(20):
        ru = fam.explain(variant_from_seed("conv_cost", seed, 2), "ru")
        assert not re.search(r"в \d+\.\d+ раза", ru)
        assert re.search(r"в \d+(,\d+)? раза", ru)
    for family in ("conv_cost", "pooling", "param_count"):
        ru = get_family(family).statement(variant_from_seed(family, 0, 2), "ru")
        assert "баллов:" not in ru and not re.search(r"\d\.\d балл", ru)


def test_pages_write_numbers_as_their_readers_do():
    from convpset.autograder.htmltext import page_number

    assert page_number(1.5, "ru") == "1,5" and page_number(1.5, "en") == "1.5"
    assert page_number(0.333, "ru", "%.2f") == "0,33" and page_number(21.0, "ru") == "21"
