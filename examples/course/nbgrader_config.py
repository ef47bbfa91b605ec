c = get_config()  # noqa: F821 -- provided by nbgrader
# Written by `pset init` / `pset nbgrader config` for this course folder.
# The exchange classes hand every student their own notebook; students need
# student_nbgrader_config.py (same course id and exchange root) and convpset installed.
c.CourseDirectory.course_id = 'sample-course'
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.Execute.timeout = 120
c.OverwriteCells.add_missing_cells = True
c.Exchange.root = '/usr/local/share/nbgrader/exchange'
c.ExchangeFactory.release_assignment = 'convpset.integrations.nbgrader.exchange.PersonalReleaseAssignment'
c.ExchangeFactory.fetch_assignment = 'convpset.integrations.nbgrader.exchange.PersonalFetchAssignment'
c.ExchangeFactory.collect = 'convpset.integrations.nbgrader.exchange.RosterCollect'
c.ExchangeFactory.release_feedback = 'convpset.integrations.nbgrader.exchange.SafeReleaseFeedback'
c.ExchangeFactory.list = 'convpset.integrations.nbgrader.exchange.PersonalList'
c.Autograde.sanitize_preprocessors = ['nbgrader.preprocessors.ClearOutput', 'nbgrader.preprocessors.DeduplicateIds', 'nbgrader.preprocessors.OverwriteKernelspec', 'convpset.integrations.nbgrader.autograde.OverwriteOurCells', 'nbgrader.preprocessors.CheckCellMetadata']
c.Autograde.autograde_preprocessors = ['nbgrader.preprocessors.Execute', 'nbgrader.preprocessors.IgnorePattern', 'nbconvert.preprocessors.ClearMetadataPreprocessor', 'nbgrader.preprocessors.LimitOutput', 'nbgrader.preprocessors.SaveAutoGrades', 'nbgrader.preprocessors.AssignLatePenalties', 'convpset.integrations.nbgrader.autograde.ShowOurVerdicts', 'nbgrader.preprocessors.CheckCellMetadata']
c.PersonalReleaseAssignment.lang = 'en'
c.RosterCollect.lang = 'en'
c.SafeReleaseFeedback.lang = 'en'
