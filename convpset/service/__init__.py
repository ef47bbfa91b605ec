"""The "check my answer" service: ``pset serve`` judges a student's own variant on request.

A check sends numbers, never code: the server recomputes the student's variant from the
course secret and runs the same judge as ``grade``. Modules: :mod:`.policy` (pset.toml's
``[check]`` and ``[assignments.X.check]``), :mod:`.tokens` (signed, revocable per-student
tokens), :mod:`.wire` (bounded JSON parsing), :mod:`.store` (attempts in SQLite),
:mod:`.judge` (one attempt, start to finish), :mod:`.app` (the tornado HTTP server).
"""
