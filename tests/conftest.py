"""Suite-wide settings: which tests are slow (the fast loop is ``pytest -m "not slow"``).

Tests mark themselves with ``@pytest.mark.slow`` where they are written; the older
tests listed here are marked centrally. Slow means seconds each: real nbgrader, whole
batches, worker pools, browsers, Dask clusters, many subprocesses. The fast loop still
touches every module (the quick tests of each file stay in it).
"""

from __future__ import annotations

import pytest

SLOW_MODULES = ("test_nbgrader.py", "test_dask.py", "test_grade_hostile.py")
SLOW_TESTS = (
    "test_notebooks.py::test_generate_bad_toml_and_unknown_assignment_exit_2",
    "test_notebooks.py::test_generate_bad_roster_exits_2",
    "test_notebooks.py::test_generate_jobs_2_equals_jobs_1",
    "test_notebooks.py::test_generated_notebook_runs_in_kernel",
    "test_notebooks.py::test_source_notebook_runs_hidden_tests_in_kernel",
    "test_notebooks.py::test_copy_of_sample_course_source_runs",
    "test_families.py::test_reference_matches_independent_computation",
    "test_grade.py::test_resume_after_sigkill",
    "test_export.py::",
    "test_report.py::",
    "test_sandbox.py::test_concurrent_sandboxes_cannot_talk_over_abstract_unix_sockets",
    "test_sandbox.py::test_cpu_limit",
    "test_sandbox.py::test_fork_bomb_contained_and_batch_continues",
    "test_sandbox.py::test_run_many_no_cross_contamination",
    "test_sandbox.py::test_first_imports_run_on_their_own_cpu_budget",
    "test_cli_pset.py::test_preview_english_differs_from_russian",
    "test_grade.py::test_sample_scores_match_simulation",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("/")[-1]
        if path.split("::")[0] in SLOW_MODULES or any(path.startswith(t) for t in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
