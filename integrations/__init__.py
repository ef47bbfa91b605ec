"""The edges to the tools a course already uses: nbgrader (exchange, gradebook,
feedback, validate), Gradescope (autograder bundle) and LMS grade imports (Canvas,
Moodle). Each subpackage adapts our results to one tool's own contract."""
