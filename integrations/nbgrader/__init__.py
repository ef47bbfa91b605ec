"""nbgrader integration: a personal exchange (each student fetches their own notebook),
the gradebook and autograded notebooks written from `grade`'s results (so formgrader and
`nbgrader generate_feedback` show our verdicts). The course-side pieces live with the
course: the two nbgrader configs (:mod:`convpset.notebooks.nbgrader_config`) and the
format checks behind `nbgrader validate` (:mod:`convpset.notebooks.format_check`).

Importing this package imports nothing from nbgrader; only ``exchange`` and
``gradebook`` do, when used.
"""
