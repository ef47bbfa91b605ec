"""Gradescope: an autograder bundle (``bundle``), the script it runs for each submission
(``run``), its results.json (``results``) and a local runner like ``otter run`` (``local``).

Gradescope's contract (gradescope-autograders.readthedocs.io, "specs"): a zip with
``setup.sh`` and ``run_autograder`` at its root; each submission runs in a fresh container
from ``/autograder`` and must leave ``/autograder/results/results.json``.
"""
