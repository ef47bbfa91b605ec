"""``pset solve`` never shows a traceback: whatever JSON it gets, it answers or says in
one line which field is wrong (exit code 2)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from convpset.cli.pset import pset_app
from convpset.solutions.from_params import MAX_ENTRIES, SOLVERS, SpecError, solve

FIELDS = ("input_shape", "kernel", "x", "grad_y", "stride", "padding", "dilation", "groups",
          "mode", "kernel_size", "input", "layers", "type", "out_channels", "out_features")
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 6), st.integers(),
                    st.floats(allow_nan=True), st.text(max_size=5),
                    st.sampled_from(["max", "avg", "same", "valid", "conv2d", "linear"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)),
    max_leaves=30)
PARAMS = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(SOLVERS)), params=st.one_of(PARAMS, JSON))
def test_random_json_is_solved_or_named(kind, params):
    try:
        out = solve(kind, params)
    except SpecError as err:
        assert err.field and "\n" not in f"{err.field}: {err.message}"
    else:
        assert isinstance(out, dict)
        json.dumps(out)


def _run(kind: str, params: dict) -> tuple[int, str]:
    r = CliRunner().invoke(pset_app, ["solve", kind, "--params", json.dumps(params)])
    return r.exit_code, r.output


def test_boolean_for_an_int_is_a_one_line_error():
    code, out = _run("conv_as_matrix", {"input_shape": [1, 4, 4], "kernel": [[[[1, 2], [3, 4]]]],
                                        "groups": True})
    assert code == 2 and "Traceback" not in out
    assert out.strip().splitlines() == ["error: groups: must be a positive int, found True"]


def test_oversized_input_is_refused_before_allocating():
    code, out = _run("conv_as_matrix", {"input_shape": [1, 150, 150],
                                        "kernel": [[[[1, 2], [3, 4]]]]})
    assert code == 2 and "Traceback" not in out
    assert out.strip().startswith("error: input_shape:") and str(MAX_ENTRIES) in out


def test_matrix_cap_names_the_field():
    code, out = _run("conv_as_matrix", {"input_shape": [1, 100, 100],
                                        "kernel": [[[[1]]]]})
    assert code == 2 and "W would have 100000000 entries" in out


def test_small_problem_still_solved():
    code, out = _run("conv_as_matrix", {"input_shape": [1, 3, 3], "kernel": [[[[1, 0], [0, 1]]]]})
    assert code == 0
    assert json.loads(out)["output_shape"] == [1, 2, 2]


def test_unforeseen_error_is_one_line(monkeypatch):
    def boom(params):
        raise RuntimeError("something odd\nsecond line")

    monkeypatch.setitem(SOLVERS, "pooling", boom)
    code, out = _run("pooling", {"x": [[[1]]]})
    assert code == 2 and "Traceback" not in out
    assert out.strip().splitlines() == ["error: params: cannot be solved (RuntimeError: "
                                        "something odd)"]
