"""Write our scores into nbgrader's gradebook so formgrader shows them."""

from __future__ import annotations

from pathlib import Path

from convpset.autograder.results import StudentResult
from convpset.notebooks.cells import test_cell_id


def write_gradebook(course_root: Path, assignment: str, results: list[StudentResult]) -> str:
    """Store each part's score as the auto score of its grade cell; returns a summary line."""
    from nbgrader.api import Gradebook, MissingEntry

    db = course_root / "gradebook.db"
    if not db.exists():
        return (f"nbgrader: no gradebook at {db}; run `nbgrader generate_assignment "
                f"{assignment}` first")
    written = 0
    with Gradebook(f"sqlite:///{db}") as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return f"nbgrader: assignment {assignment} is not in the gradebook; run generate_assignment"
        for r in results:
            if "no_submission" in r.flags:
                continue
            gb.update_or_create_student(r.student_id)
            try:
                gb.find_submission(assignment, r.student_id)
            except MissingEntry:
                gb.add_submission(assignment, r.student_id)
            for p in r.problems:
                for part in p.parts:
                    try:
                        g = gb.find_grade(test_cell_id(p.number, part.part), assignment,
                                          assignment, r.student_id)
                    except MissingEntry:
                        continue
                    g.auto_score = part.score
                    written += 1
            gb.db.commit()
    return f"nbgrader: wrote {written} grades for {len(results)} students into {db}"
