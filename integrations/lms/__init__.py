"""Grades into a learning management system: import files for Canvas and Moodle, built
from our roster (``export``) or filled into the instructor's own gradebook export
(``canvas``, ``moodle``), and the per-student results archive."""
