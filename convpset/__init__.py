"""convpset: personalized convolution problem sets for Jupyter/nbgrader that grade themselves.

One import root. The subpackages follow the data flow, each a top-level folder of the
repository mapped into this package:

* :mod:`convpset.problems`   -- what is asked: one module per problem family;
* :mod:`convpset.solutions`  -- the truth: loops, numpy and torch references;
* :mod:`convpset.notebooks`  -- course, roster, variants, the notebooks handed out;
* :mod:`convpset.autograder` -- sandbox, judging, grades, feedback, reports, exports;
* :mod:`convpset.cli`        -- the ``pset`` and ``grade`` command lines.

Importing this package is cheap (no numpy, no torch): the sandbox's template process
imports it first.
"""

from __future__ import annotations

__version__ = "0.2.0"
