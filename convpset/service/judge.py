"""One check attempt, start to finish, independent of HTTP (the server, the benchmark and
the tests call the same :meth:`CheckService.check`).

Order of refusals: who is asking (a missing, forged or revoked token, a hub login not
on the roster), then the body's limits, then the assignment and its policy (off,
closed), then the problem and answer names, then attempts left; only then the judge -- the same :meth:`Problem.judge` as
``grade``, on the variant recomputed from the secret. The reply is sentences in the
student's language, filtered by the policy's ``show``; never a key value.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from convpset.notebooks.course import Course, CourseError
from convpset.notebooks.variants import Problem, problems_for
from convpset.problems.base import PartResult
from convpset.problems.text import render
from convpset.service.hub import HubAuth
from convpset.service.policy import CheckConfig, load_check_config
from convpset.service.store import Attempt, AttemptStore, db_path
from convpset.service.tokens import Token, read_token, revoked_ids
from convpset.service.wire import WireError, parse_body, submitted


@dataclass(frozen=True)
class Reply:
    """HTTP status and JSON body of an answer to a check."""

    status: int
    lines: list[str]
    data: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"ok": self.status == 200, "lines": self.lines, **self.data}


class CheckService:
    """The course's judge behind the check endpoint."""

    def __init__(self, course: Course, config: CheckConfig | None = None,
                 store: AttemptStore | None = None) -> None:
        self.course = course
        self.config = config or load_check_config(course)
        self.store = store or AttemptStore(db_path(course.root))
        students = course.roster()
        self.roster = {s.student_id for s in students}
        self.hub = HubAuth.from_env(students)      # set when JupyterHub runs the service
        self._revoked: tuple[float, frozenset[str]] = (-1.0, frozenset())

    def revoked(self) -> frozenset[str]:
        """The revocation list, re-read when the file changes (so a revocation takes
        effect without a restart)."""
        path = self.course.root / "revoked_tokens.txt"
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return frozenset()
        if mtime != self._revoked[0]:
            self._revoked = (mtime, revoked_ids(self.course.root))
        return self._revoked[1]

    def _say(self, lang: str, key: str, **ctx: Any) -> list[str]:
        return [render(lang, f"serve.{key}", **ctx)]

    def _identify(self, lang: str, token_text: str | None,
                  hub_token: str | None) -> Reply | Token:
        """Who is asking: our signed token, or (under a hub) the hub login of a hub token.
        A hub identity carries no assignment (the request names it) and no token id."""
        if hub_token is not None and self.hub is not None:
            login = self.hub.login(hub_token)
            if login is None:           # the hub refused the token (or could not be asked)
                return Reply(401, self._say(lang, "bad_hub_token"))
            student = self.hub.by_login.get(login)
            if student is None:         # a real hub user, but not one of this course's
                return Reply(403, self._say(lang, "hub_not_on_roster"))
            return Token("", student, "hub")
        if not token_text:
            return Reply(401, self._say(lang, "no_token"))
        token = read_token(self.course.secret, token_text)
        if token is None:
            return Reply(401, self._say(lang, "bad_token"))
        if token.tid in self.revoked():
            return Reply(403, self._say(lang, "revoked_token"))
        return token

    def check(self, token_text: str | None, body: bytes, now: datetime | None = None,
              hub_token: str | None = None) -> Reply:
        lang = self.course.language
        now = now or datetime.now(UTC)
        token = self._identify(lang, token_text, hub_token)
        if isinstance(token, Reply):
            return token
        if token.student not in self.roster:
            return Reply(403, self._say(lang, "unknown_student"))
        try:
            req = parse_body(body)
        except WireError as err:
            reason = render(lang, f"serve.{err.reason}", **err.args_)
            return Reply(400, self._say(lang, "bad_request", reason=reason))
        lang = req.lang or lang
        if req.student is not None and req.student != token.student:
            return Reply(403, self._say(lang, "other_student"))
        if token.assignment and req.assignment not in (None, token.assignment):
            return Reply(403, self._say(lang, "unknown_assignment"))
        try:
            spec = self.course.assignment(token.assignment or req.assignment or "")
        except CourseError:
            return Reply(403, self._say(lang, "unknown_assignment"))
        token = Token(spec.name, token.student, token.tid)
        policy = self.config.policy(spec.name)
        if not policy.enabled:
            return Reply(403, self._say(lang, "checks_off", assignment=spec.name))
        if policy.closed(now):
            return Reply(403, self._say(lang, "closed", assignment=spec.name,
                                        closes=policy.closes.isoformat()))
        problems = problems_for(self.course, spec, token.student)
        if req.problem > len(problems):
            return Reply(404, self._say(lang, "no_problem", problem=req.problem,
                                        assignment=spec.name, count=len(problems)))
        prob = problems[req.problem - 1]
        names = [p.name for p in prob.parts()]
        if not set(req.answers) <= set(names):
            reason = render(lang, "serve.reason_names", problem=prob.number,
                            names=", ".join(names))
            return Reply(400, self._say(lang, "bad_request", reason=reason))
        limit = policy.attempts
        if limit is not None and self.store.judged(spec.name, token.student, prob.number) >= limit:
            results: list[PartResult] = []     # no attempts left: refused without judging
        else:
            results = prob.judge({k: submitted(v) for k, v in req.answers.items()})
        judged, used = self.store.record(_attempt(now, token, prob, body, results), limit)
        if not judged:
            return Reply(429, self._say(lang, "limit", problem=prob.number, used=used,
                                        limit=policy.attempts))
        return Reply(200, _verdict_lines(lang, prob, results, policy.show, used,
                                         policy.attempts),
                     {"attempts": {"used": used, "limit": policy.attempts},
                      **({"parts": {r.part: r.status for r in results}}
                         if "parts" in policy.show else {})})


def _attempt(now: datetime, token: Any, prob: Problem, body: bytes,
             results: list[PartResult]) -> Attempt:
    verdict = ",".join(f"{r.part}={r.status}" + (f":{r.mistake}" if r.mistake else "")
                       for r in results)
    return Attempt(now.isoformat(timespec="seconds"), token.student, token.assignment,
                   prob.number, hashlib.sha256(body).hexdigest(), verdict,
                   round(sum(r.score for r in results), 2), prob.max_score, token.tid)


def _verdict_lines(lang: str, prob: Problem, results: list[PartResult], show: tuple[str, ...],
                   used: int, limit: int | None) -> list[str]:
    """What the student reads: per part (or only the whole), the named mistake, the score."""
    n = prob.number
    right = all(r.status == "correct" for r in results)
    lines = [render(lang, "serve.all_right" if right else "serve.not_all_right", problem=n)]
    if "parts" in show:
        for r in results:
            if r.status == "correct":
                lines.append(render(lang, "serve.part_right", name=r.part))
            elif "mistake" in show or r.status in ("format_error", "missing"):
                lines.append("✗ " + r.message[lang])
            else:
                lines.append(render(lang, "serve.part_wrong", name=r.part))
    if "credit" in show:
        lines.append(render(lang, "serve.score", score=round(sum(r.score for r in results), 2),
                            points=prob.max_score))
    lines.append(render(lang, "serve.attempts_left", problem=n, used=used, limit=limit)
                 if limit is not None else
                 render(lang, "serve.attempts_unlimited", problem=n, used=used))
    return lines
