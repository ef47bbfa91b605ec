"""The sandbox's seams (issue 16, item 4): the nbgrader bridge imports only the answer
conversion, the public API stays where it was, and the wire format has one home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["Limits", "Answer", "CellError", "ExecResult", "run_cells", "run_many", "shutdown",
          "isolation_report", "zygote_socket", "attach_zygote", "prewarm_torch",
          "landlock_available"]


def test_public_api_is_unchanged():
    from convpset.autograder import sandbox

    for name in PUBLIC:
        assert callable(getattr(sandbox, name)) or isinstance(getattr(sandbox, name), type), name


def test_nbgrader_bridge_does_not_import_the_child():
    """A real Jupyter kernel (nbgrader autograde) imports the bridge: it must get the
    conversion, not the child's isolation code, the zygote or the seccomp machinery."""
    code = ("import sys, json; import convpset.autograder.nbgrader_bridge as b; "
            "b.submitted_from({'x': [1, 2]}, 'x'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('convpset.autograder'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    mods = set(json.loads(out.stdout))
    assert "convpset.autograder.sandbox.convert" in mods
    for heavy in ("child", "zygote", "seccomp", "landlock", "namespaces"):
        assert f"convpset.autograder.sandbox.{heavy}" not in mods, mods


def test_no_bare_protocol_numbers_outside_protocol():
    """Exit codes and message kinds are named constants in protocol.py only."""
    folder = ROOT / "autograder" / "sandbox"
    for f in folder.glob("*.py"):
        if f.name == "protocol.py":
            continue
        text = f.read_text()
        for bare in ("111", "112", 'b"AGSB"', '"<qdq"', 'b"X"', 'b"P"', "9 + 25"):
            assert bare not in text, (f.name, bare)
