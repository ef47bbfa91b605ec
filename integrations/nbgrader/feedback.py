"""The autograded notebook nbgrader's tools read: ``autograded/SID/A/A.ipynb``.

``nbgrader autograde`` writes the student's notebook with the locked cells restored and
executed; formgrader opens it and ``nbgrader generate_feedback`` turns it into the
student's feedback page. We write the same file from ``grade``'s results instead of a
second execution: our trusted personal notebook (cells and nbgrader metadata rebuilt
from the course, so a student cannot break formgrader by editing metadata) with the
student's answer cells and added cells, and in each test cell our verdict (score, the
named mistake, en/ru) as its output. Test cells carry the personal notebook's format
check, never the hidden test; worked solutions only with ``--reveal``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nbformat import NotebookNode

from convpset.autograder.nbgrader_bridge import verdict_text
from convpset.autograder.results import StudentResult
from convpset.autograder.submissions import MAX_JSON_TOKENS, json_tokens_over
from convpset.autograder.untrusted import StudentFileError, markdown_text, read_bounded
from convpset.notebooks.build import build_notebook
from convpset.notebooks.cells import answer_cell_id, grade_cell_of
from convpset.notebooks.course import Course
from convpset.notebooks.variants import problems_for
from convpset.problems.text import render

MAX_READ_BYTES = 20_000_000     # a larger "notebook" is not read for display
MAX_EXTRA_CELLS = 50


def read_submitted(path: Path | None) -> dict[str, Any] | None:
    """The submitted notebook as JSON, or None when it cannot be shown (missing, a link,
    not a regular file, huge, not JSON, not a notebook): the answers were graded anyway;
    this is only display. Bounded read: the file is the student's."""
    if path is None:
        return None
    try:      # a regular file only (a FIFO would block this read forever), never a link
        data = read_bounded(path, MAX_READ_BYTES)
        if json_tokens_over(data, MAX_JSON_TOKENS):     # millions of tiny values: unparsed
            return None
        data = json.loads(data.decode("utf-8"))
    except (StudentFileError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None
    return data


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def _cell_key(cell: dict[str, Any], known: set[str]) -> str | None:
    """Which of our cells this is (by nbgrader grade id, else cell id), or None."""
    meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
    nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
    for key in (nbg.get("grade_id"), cell.get("id")):
        if isinstance(key, str) and key in known:
            return key
    return None


def _student_parts(nb: dict[str, Any] | None, known: set[str]
                   ) -> tuple[dict[str, str], dict[str | None, list[NotebookNode]]]:
    """(answer sources by cell id, added cells by the known cell they follow)."""
    answers: dict[str, str] = {}
    extra: dict[str | None, list[NotebookNode]] = {}
    if nb is None:
        return answers, extra
    after: str | None = None
    n_extra = 0
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            continue
        key = _cell_key(cell, known)
        if key is not None:
            if key.startswith("answer_") and key not in answers:
                answers[key] = _source(cell)
            after = key
            continue
        kind = cell.get("cell_type")
        if kind not in ("code", "markdown") or n_extra >= MAX_EXTRA_CELLS:
            continue
        n_extra += 1
        node = NotebookNode(cell_type=kind, id=f"student_extra_{n_extra}", metadata={},
                            source=_source(cell))
        if kind == "code":
            node.update(execution_count=None, outputs=[])
        extra.setdefault(after, []).append(node)
    return answers, extra


def _stream(text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name="stdout", text=text.rstrip("\n") + "\n")


def autograded_notebook(course: Course, assignment: str, display: str, result: StudentResult,
                        submitted: dict[str, Any] | None, lang: str,
                        reveal: bool) -> NotebookNode:
    """The notebook formgrader and ``generate_feedback`` read for one graded student."""
    spec = course.assignment(assignment)
    problems = problems_for(course, spec, result.student_id)
    nb = build_notebook(course, assignment, spec.title, problems, result.student_id, display,
                        lang, "personal")
    known = {c.id for c in nb.cells}
    answers, extra = _student_parts(submitted, known)
    pooled = set(spec.pooled_numbers())
    by_part: dict[str, tuple[Any, list[Any]]] = {}     # a pooled problem: all its parts
    for p in result.problems:
        for x in p.parts:
            by_part.setdefault(grade_cell_of(p.number, x.part, p.number in pooled),
                               (p, []))[1].append(x)
    first_test = {p.number: grade_cell_of(p.number, p.parts[0].part, p.number in pooled)
                  for p in result.problems if p.parts}
    worked = {p.number: p for p in problems} if reveal else {}
    summary = "\n\n".join([render(lang, "nbgrader.feedback_summary", score=f"{result.score:g}",
                                  max=f"{result.max_score:g}"),
                           # notes carry student text: literal in nbgrader's page
                           *(f"- {markdown_text(n.get(lang, ''))}" for n in result.notes)])
    cells: list[NotebookNode] = []
    for cell in nb.cells:
        if cell.id in answers:
            cell.source = answers[cell.id]
        if cell.id in by_part:
            prob, parts = by_part[cell.id]
            notes = [n.get(lang, "") for n in prob.notes] if first_test.get(prob.number) == cell.id else []
            last = len(parts) - 1
            texts = [verdict_text(lang, part.part, part.score, part.max_score,
                                  part.message.get(lang, ""), notes if i == last else ())
                     for i, part in enumerate(parts)]
            total = round(sum(float(part.score) for part in parts), 2)
            cell.outputs = [_stream("\n".join(texts) + "\n"),
                            NotebookNode(output_type="execute_result", execution_count=None,
                                         metadata={}, data={"text/plain": repr(total)})]
        cells.append(cell)
        if cell.id == "header":
            cells.append(NotebookNode(cell_type="markdown", id="pset_feedback", metadata={},
                                      source=summary))
        cells.extend(extra.get(cell.id, ()))
        if cell.id == answer_cell_id(cell.get("metadata", {}).get("pset_problem", 0)) \
                and cell.metadata.get("pset_problem") in worked:
            prob = worked[cell.metadata["pset_problem"]]
            cells.append(NotebookNode(cell_type="markdown", id=f"worked_{prob.number}",
                                      metadata={}, source=render(lang, "notebook.worked") + "\n\n"
                                      + prob.explain(lang)))
    cells[1:1] = extra.get(None, [])
    nb.cells = cells
    return nb


def drop_stale_feedback(root: Path, student_id: str, assignment: str) -> bool:
    """Remove ``feedback/SID/A/`` once the autograded notebook it was made from changed:
    ``nbgrader generate_feedback`` skips a student whose feedback folder exists (unless
    ``--force``), so a regrade would otherwise leave the old page in place. True when
    something was removed."""
    import shutil

    from convpset.autograder.outputs import student_file_stem

    folder = Path(root) / "feedback" / student_file_stem(student_id) / assignment
    if not folder.is_dir() or folder.is_symlink():
        return False
    shutil.rmtree(folder)
    return True
