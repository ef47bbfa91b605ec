c = get_config()  # noqa: F821 -- provided by nbgrader
c.CourseDirectory.course_id = 'sample-course'
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.Execute.timeout = 120
c.OverwriteCells.add_missing_cells = True
