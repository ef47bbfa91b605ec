c = get_config()  # noqa: F821 -- provided by nbgrader
# The students' global nbgrader config (e.g. /etc/jupyter/nbgrader_config.py on
# JupyterHub), written by `pset nbgrader config`: the course, the exchange, and the
# fetch class that gives each student their own notebook (needs convpset installed).
c.CourseDirectory.course_id = 'sample-course'
c.Exchange.root = '/usr/local/share/nbgrader/exchange'
c.ExchangeFactory.fetch_assignment = 'convpset.integrations.nbgrader.exchange.PersonalFetchAssignment'
c.PersonalFetchAssignment.lang = 'en'
