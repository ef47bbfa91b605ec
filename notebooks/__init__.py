"""Assignments as notebooks: course config, roster, personal variants, stamps and the
nbgrader-compatible notebooks built from them (problems → notebooks → submissions)."""
