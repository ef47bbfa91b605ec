"""``nbgrader autograde`` (and formgrader's Autograde button) leave what ``grade`` leaves.

Two preprocessors, named in the course's ``nbgrader_config.py``
(:func:`convpset.notebooks.nbgrader_config.instructor_config`):

- :class:`OverwriteOurCells` is nbgrader's OverwriteCells, except that a locked test
  cell that is exactly what nbgrader released (the source cell less its hidden test) is
  restored without the "Attribute 'checksum' ... has changed!" warning: nbgrader stores
  the checksum of the source cell *with* its hidden test, so every honest submission
  tripped it (12 warnings per notebook). A cell the student really changed still warns.
- :class:`ShowOurVerdicts` runs after the hidden tests have scored (and nbgrader saved the
  scores): each test cell's source goes back to what the student had (no hidden test code
  in formgrader or on the feedback page), its output is the verdict the bridge printed
  (the named mistake, as ``grade`` writes it), the score summary is added under the
  header, and the student's generated feedback, now stale, is removed so that
  ``nbgrader generate_feedback`` makes it again.
"""

from __future__ import annotations

import copy
from pathlib import Path

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells

from convpset.integrations.nbgrader.feedback import drop_stale_feedback
from convpset.notebooks.cells import BEGIN_HIDDEN
from convpset.problems.text import render


def released_source(source: str) -> str:
    """A source cell as nbgrader releases it: its hidden tests removed."""
    cell = NotebookNode(cell_type="code", source=source, metadata={}, outputs=[],
                        execution_count=None)
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


class OverwriteOurCells(OverwriteCells):
    """OverwriteCells without the false checksum warning (module doc)."""

    _released: str | None = None

    def report_change(self, name, attr, old, new) -> None:
        if attr == "checksum" and self._released is not None:
            self.log.debug("cell %s: the released version, hidden tests restored", name)
            return
        super().report_change(name, attr, old, new)

    def preprocess_cell(self, cell, resources, cell_index):
        self._released = None
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                src = self.gradebook.find_source_cell(grade_id, self.notebook_id,
                                                      self.assignment_id)
            except Exception:       # not in the gradebook: nbgrader's own handling
                src = None
            if src is not None and BEGIN_HIDDEN in src.source:
                probe = copy.deepcopy(cell)
                probe.source = released_source(src.source)
                if probe.source == cell.source:
                    self._released = src.source
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self._released = None


class ShowOurVerdicts(NbGraderPreprocessor):
    """The autograded notebook as ``grade`` writes it (module doc)."""

    def _root(self) -> Path:
        converter = getattr(getattr(self, "parent", None), "parent", None)
        coursedir = getattr(converter, "coursedir", None)
        return Path(coursedir.root) if coursedir is not None else Path.cwd()

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        from convpset.notebooks.course import CourseError, load_course

        root = self._root()
        try:
            lang = load_course(root).language
        except CourseError:
            lang = "en"
        total = earned = 0.0
        for cell in nb.cells:
            if cell.cell_type == "code" and BEGIN_HIDDEN in cell.source:
                cell.source = released_source(cell.source)
            if utils.is_grade(cell):
                score, max_score = utils.determine_grade(cell, self.log)
                earned += score or 0.0
                total += max_score or 0.0
        if not any(c.get("id") == "pset_feedback" for c in nb.cells):
            summary = NotebookNode(cell_type="markdown", id="pset_feedback", metadata={},
                                   source=render(lang, "nbgrader.feedback_summary",
                                                 score=f"{round(earned, 2):g}",
                                                 max=f"{round(total, 2):g}"))
            at = next((i + 1 for i, c in enumerate(nb.cells) if c.get("id") == "header"), 0)
            nb.cells.insert(at, summary)
        info = resources.get("nbgrader", {})
        if info.get("student") and info.get("assignment"):
            drop_stale_feedback(root, info["student"], info["assignment"])
        return nb, resources
