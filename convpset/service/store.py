"""Every check attempt in SQLite: who, when, which problem, the answer's hash, the verdict.

One connection per thread (sqlite3 objects are not shared), WAL so readers (``pset
report``) never block the service, and one ``BEGIN IMMEDIATE`` transaction per attempt:
counting the attempts used and recording the new one happen under the database's write
lock, so concurrent requests -- threads or several server processes -- can never judge
more attempts than the policy allows.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,            -- ISO 8601, UTC
    student TEXT NOT NULL,
    assignment TEXT NOT NULL,
    problem INTEGER NOT NULL,
    answer_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,        -- judged | refused (no attempts left)
    verdict TEXT NOT NULL,       -- per part: name=status[:mistake], comma-separated
    score REAL NOT NULL,
    points REAL NOT NULL,
    token_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_who ON attempts (assignment, student, problem);
"""
DB_NAME = "check_attempts.sqlite"


@dataclass(frozen=True)
class Attempt:
    at: str
    student: str
    assignment: str
    problem: int
    answer_sha256: str
    verdict: str
    score: float
    points: float
    token_id: str


def db_path(root: Path) -> Path:
    return Path(root) / "grades" / DB_NAME


class AttemptStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        con = self._con()
        con.executescript(SCHEMA)

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA busy_timeout=30000")
            # WAL + NORMAL: a commit is durable against a crash of the service (not of the
            # machine's power) and costs no fsync -- the difference between ~10 ms and ~1 ms
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def record(self, attempt: Attempt, limit: int | None) -> tuple[bool, int]:
        """Record ``attempt``: judged when fewer than ``limit`` were judged before (None:
        no limit), else refused. Returns (judged, attempts judged so far incl. this one)."""
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            (used,) = con.execute(
                "SELECT COUNT(*) FROM attempts WHERE assignment=? AND student=? AND problem=?"
                " AND status='judged'",
                (attempt.assignment, attempt.student, attempt.problem)).fetchone()
            judged = limit is None or used < limit
            con.execute(
                "INSERT INTO attempts (at, student, assignment, problem, answer_sha256, status,"
                " verdict, score, points, token_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (attempt.at, attempt.student, attempt.assignment, attempt.problem,
                 attempt.answer_sha256, "judged" if judged else "refused",
                 attempt.verdict if judged else "", attempt.score if judged else 0.0,
                 attempt.points, attempt.token_id))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return judged, used + 1 if judged else used

    def judged(self, assignment: str, student: str, problem: int) -> int:
        """Attempts judged so far (a read without the write lock: a cheap early refusal,
        so a student without attempts left cannot keep the judge busy)."""
        (n,) = self._con().execute(
            "SELECT COUNT(*) FROM attempts WHERE assignment=? AND student=? AND problem=?"
            " AND status='judged'", (assignment, student, problem)).fetchone()
        return int(n)

    def rows(self, assignment: str) -> list[tuple]:
        return self._con().execute(
            "SELECT student, problem, status, verdict, score, points, at FROM attempts"
            " WHERE assignment=? ORDER BY id", (assignment,)).fetchall()
