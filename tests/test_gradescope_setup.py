"""The Gradescope bundle's honesty: setup.sh claims only the base images it can work on,
installs the dependency versions frozen from this (tested) environment, and the image
it leaves grades a notebook.

No Ubuntu image can be pulled here, so the nearest honest check runs setup.sh's install
steps on this machine: a fresh virtual environment from this Python 3.11 (the apt/PPA
part is replaced by ``CONVPSET_PYTHON``), the bundle's constraints.txt, torch from a
local package index (``CONVPSET_TORCH_INDEX``; PyTorch's CPU index is out of reach
here), the wheel; then run_autograder in a Gradescope-shaped folder
(``CONVPSET_AUTOGRADER_DIR``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from convpset.integrations.gradescope.bundle import frozen_constraints  # noqa: E402
from convpset.integrations.gradescope.freeze import (  # noqa: E402
    FreezeError,
    closure,
    public_version,
)
from convpset.integrations.gradescope.local import layout  # noqa: E402
from convpset.integrations.lms.export import ExportRequest, export  # noqa: E402
from convpset.notebooks.course import load_course  # noqa: E402

EXAMPLE = ROOT / "examples" / "course"
SETUP = ROOT / "integrations" / "gradescope" / "templates" / "setup.sh"
TORCH = "2.13.0"


def pins(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            out[name] = version
    return out


def test_constraints_frozen_from_this_environment():
    """Every dependency of the wheel, transitively, at the version installed here."""
    frozen = pins(frozen_constraints())
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    for dep in deps:
        name = canonicalize_name(Requirement(dep).name)
        assert frozen[name] == public_version(metadata.version(name)), name
    assert frozen["torch"] == TORCH, "torch at its public version (no +cpu)"
    for transitive in ("traitlets", "markupsafe", "sympy", "jupyter-core", "pyparsing"):
        assert frozen[transitive] == metadata.version(transitive), transitive
    assert frozen["pip"] == metadata.version("pip")
    assert "convpset" not in frozen and "pytest" not in frozen, "no self, no test extras"
    assert frozen_constraints() == frozen_constraints(), "same environment, same bytes"


def test_freeze_refuses_what_it_cannot_pin():
    with pytest.raises(FreezeError, match="not-a-real-dist-xyz .*not installed"):
        closure(["not-a-real-dist-xyz>=1"])
    with pytest.raises(FreezeError, match="requires numpy<1"):
        closure(["numpy<1"])
    assert closure(['not-a-real-dist-xyz; python_version < "3"']) == {}
    with_extra = closure(["dask[distributed]"])
    assert "distributed" in with_extra and "distributed" not in closure(["dask"])


def _os_release(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "os-release"
    p.write_text(body)
    return p


def _setup(tmp_path: Path, os_release: Path, check_only: bool) -> subprocess.CompletedProcess:
    """setup.sh with apt-get, add-apt-repository and python3.11 stubbed on PATH: each
    stub records that it was called (a refused image must reach none of them)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for tool in ("apt-get", "add-apt-repository", "python3.11"):
        (stubs / tool).write_text(f"#!/bin/sh\necho {tool} >> {tmp_path}/called\nexit 1\n")
        (stubs / tool).chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "CONVPSET_OS_RELEASE": str(os_release),
           "CONVPSET_AUTOGRADER_DIR": str(tmp_path / "ag"), "CONVPSET_VENV": str(tmp_path / "v")}
    if check_only:
        env["CONVPSET_SETUP_CHECK_ONLY"] = "1"
    return subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("body,source", [
    ('NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="22.04"\n', "universe"),
    ('NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="24.04"\n', "deadsnakes"),
])
def test_setup_sh_supported_images(tmp_path, body, source):
    r = _setup(tmp_path, _os_release(tmp_path, body), check_only=True)
    assert r.returncode == 0, r.stderr
    assert f"python3.11 from {source}" in r.stdout
    assert not (tmp_path / "called").exists()


@pytest.mark.parametrize("body,why", [
    ('ID=ubuntu\nVERSION_ID="18.04"\n', "past its standard support"),
    ('ID=ubuntu\nVERSION_ID="20.04"\n', "past its standard support"),
    ('ID=fedora\nVERSION_ID="38"\n', "'fedora 38' is not supported"),
    ('ID=debian\nVERSION_ID="12"\n', "'debian 12' is not supported"),
    (None, "unknown base image"),
])
def test_setup_sh_refuses_other_images_before_installing(tmp_path, body, why):
    path = _os_release(tmp_path, body) if body is not None else tmp_path / "none"
    r = _setup(tmp_path, path, check_only=False)
    assert r.returncode == 1
    assert why in r.stderr and "supported base images: Ubuntu 22.04" in r.stderr
    assert not (tmp_path / "called").exists(), "nothing installed on a refused image"


def _find_links() -> list[Path]:
    """Folders of wheels pip is configured with here (where this machine keeps torch's
    CPU wheel: download.pytorch.org cannot be reached)."""
    raw = os.environ.get("PIP_FIND_LINKS", "")
    r = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                       text=True)
    for line in r.stdout.splitlines():
        if ".find-links=" in line:
            raw += " " + line.split("=", 1)[1].strip("'\"")
    return [Path(p.removeprefix("file://")) for p in raw.split() if p]


def _torch_index(tmp_path: Path) -> str | None:
    """A PEP 503 index holding only this machine's torch CPU wheel, as PyTorch's is."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for folder in _find_links():
        for wheel in sorted(folder.glob(f"torch-{TORCH}+cpu-{tag}-*.whl")):
            page = tmp_path / "torch-index" / "torch"
            page.mkdir(parents=True)
            (page / "index.html").write_text(
                f'<html><body><a href="{wheel.resolve().as_uri()}">{wheel.name}</a></body></html>')
            return (tmp_path / "torch-index").as_uri()
    return None


@pytest.mark.slow
def test_setup_sh_installs_frozen_versions_then_grades(tmp_path):
    index = _torch_index(tmp_path)
    if index is None:
        pytest.skip(f"no torch {TORCH}+cpu wheel in pip's find-links here "
                    "(PyTorch's CPU index is unreachable from this machine)")
    bundle = export(load_course(EXAMPLE), "conv1",
                    ExportRequest("gradescope-autograder", tmp_path / "g", tmp_path / "out")).path
    nb = next((EXAMPLE / "submitted" / "s002" / "conv1").glob("*.ipynb"))   # imports torch
    ag = layout(tmp_path / "gs", bundle, nb, "s002")
    venv = tmp_path / "opt-convpset"
    base_python = getattr(sys, "_base_executable", None) or shutil.which("python3.11")
    env = {**os.environ, "CONVPSET_AUTOGRADER_DIR": str(ag), "CONVPSET_VENV": str(venv),
           "CONVPSET_PYTHON": str(base_python), "CONVPSET_TORCH_INDEX": index}
    for var in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(var, None)
    r = subprocess.run(["bash", str(ag / "source" / "setup.sh")], env=env, capture_output=True,
                       text=True, timeout=1500)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]

    frozen = pins(zipfile.ZipFile(bundle).read("constraints.txt").decode())
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout
    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(d["name"]): d["version"] for d in json.loads(listed)}
    for name, version in frozen.items():
        assert public_version(installed.get(name, "missing")) == version, name
    assert installed["torch"] == f"{TORCH}+cpu"

    r = subprocess.run(["bash", str(ag / "run_autograder")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "CONVPSET_VENV": str(venv),
                            "CONVPSET_AUTOGRADER_DIR": str(ag)})
    assert r.returncode == 0, r.stderr
    (site,) = venv.glob("lib/python3.11/site-packages")
    assert str(site / "convpset") in r.stdout, r.stdout
    res = json.loads((ag / "results" / "results.json").read_text())
    simulated = {s["student_id"]: s for s in json.loads((EXAMPLE / "simulated.json").read_text())}
    assert res["score"] == pytest.approx(simulated["s002"]["expected_score"], abs=0.05)
    assert res["extra_data"]["student_id"] == "s002"
