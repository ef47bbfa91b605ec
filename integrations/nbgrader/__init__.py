"""nbgrader integration: a personal exchange (each student fetches their own notebook),
the two nbgrader configs, the gradebook and autograded notebooks written from `grade`'s
results (so formgrader and `nbgrader generate_feedback` show our verdicts), and the
format checks behind `nbgrader validate`.

Importing this package imports nothing from nbgrader; only ``exchange`` and
``gradebook`` do, when used.
"""
