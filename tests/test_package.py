"""One import root: everything installs and imports under ``convpset``, nothing generic
lands at the top of site-packages, and a course folder's own ``solutions/`` or
``autograder/`` cannot shadow ours."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_has_one_top_level_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(ROOT), "-w", str(tmp_path)], check=True, cwd=tmp_path,
                   capture_output=True)
    (wheel,) = tmp_path.glob("convpset-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"convpset", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1]
                    + ".dist-info"}
    # the data files travel with the code
    assert "convpset/problems/text/en.toml" in names
    assert "convpset/autograder/templates/feedback.html.j2" in names
    for sub in ("problems", "solutions", "notebooks", "autograder", "cli"):
        assert f"convpset/{sub}/__init__.py" in names


def test_course_folders_do_not_shadow_the_package(tmp_path):
    """A course repository often has solutions/ and autograder/ folders of its own."""
    for name in ("solutions", "autograder", "problems", "notebooks"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the course folder')\n")
    code = ("import convpset.autograder.nbgrader_bridge as b, convpset.solutions as s; "
            "print(b.__name__, s.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["convpset.autograder.nbgrader_bridge", "convpset.solutions"]


def test_no_generic_top_level_modules_importable_from_elsewhere(tmp_path):
    code = ("import importlib.util as u; "
            "print([n for n in ('problems', 'solutions', 'notebooks', 'autograder') "
            "if u.find_spec(n) is not None])")
    out = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_generated_hidden_tests_import_only_convpset():
    for nb in (ROOT / "source_notebooks").rglob("*.ipynb"):
        text = nb.read_text(encoding="utf-8")
        assert "from convpset." in text
        for name in ("problems", "solutions", "notebooks", "autograder"):
            assert f"from {name}" not in text and f"import {name}" not in text, nb


def test_the_grading_path_imports_no_heavy_library(tmp_path):
    """`grade` on a course without nbgrader never loads nbformat (its schema grammars take
    seconds per process), nbgrader, torch, matplotlib or dask: the library's own grading
    entry points, imported the way the command line imports them."""
    code = ("import sys, convpset.jobs, convpset.cli.grade, "
            "convpset.integrations.nbgrader.gradebook, convpset.autograder.batch; "
            "print(sorted(m for m in ('nbformat', 'jsonschema', 'nbgrader', 'torch', "
            "'matplotlib', 'dask') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
