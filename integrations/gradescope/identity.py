"""Whose grade a Gradescope submission is: the rule, in one place.

Gradescope records the score on the account(s) that submitted, whatever the notebook
says. A notebook's signed stamp says whom it was *issued* to, not who submitted it: a
stranger who uploads a classmate's notebook carries the classmate's valid stamp. So the
stamp never decides whose grade it is; the account does, through an explicit mapping
the instructor controls:

1. **One account.** A group submission (several users) is not graded: Gradescope gives
   its score to every member, and a personal notebook is one student's work.
2. **The account is a roster student**, found by every mapping that applies, which must
   agree: Gradescope's *Student ID* (``sid``) equal to the roster's ``student_id``; the
   account's email equal to the roster's ``email``; the account's email equal to the
   roster's optional ``gradescope_email`` column (a student whose Gradescope account
   uses another address). No match: the account is unknown and gets 0 with a message;
   the instructor sees both identities (account and stamp) and maps the account
   (``gradescope_email`` or the Student ID in Gradescope's roster), re-exports and
   uploads the bundle, and regrades. Two different students: ambiguous, 0.
3. **The notebook is that student's.** A valid stamp naming another student: 0 ("this
   notebook was issued to another student"). No valid stamp (missing or edited): graded
   against the account's own variant, flagged, as ``grade`` does.

Everything here is pure (no files, no imports of the grader): ``run`` feeds it the
metadata, the roster and the stamp's student, and it answers with a :class:`Decision`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from convpset.autograder.untrusted import terminal_text

#: the optional roster column mapping a Gradescope account's email to a roster student
GRADESCOPE_EMAIL = "gradescope_email"
_FIELD_LIMIT = 120       # characters of a metadata field we keep (names are the student's)


@dataclass(frozen=True)
class Account:
    """One Gradescope user of a submission, as its metadata gives it (untrusted text:
    the name is typed by the student; every field is bounded and control-free)."""

    name: str = ""
    email: str = ""
    sid: str = ""
    gradescope_id: str = ""

    def describe(self) -> str:
        """``name, email, sid …`` for messages (empty fields left out)."""
        bits = [self.name, self.email, f"sid {self.sid}" if self.sid else "",
                f"Gradescope id {self.gradescope_id}" if self.gradescope_id else ""]
        return ", ".join(b for b in bits if b) or "?"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "sid": self.sid,
                "id": self.gradescope_id}


@dataclass(frozen=True)
class Decision:
    """Whom to grade (``student_id``) or why not (``reason``), with both identities."""

    student_id: str | None
    matched_by: tuple[str, ...]          # ("sid", "email", "gradescope_email") that agreed
    reason: str | None                   # None | no_account | group | unknown_account
    #                                      | ambiguous | other_student
    accounts: tuple[Account, ...]
    stamp_student: str | None            # whom the notebook's valid stamp names
    candidates: tuple[str, ...] = ()     # roster students the account matched (ambiguous)

    @property
    def who(self) -> str:
        return "; ".join(a.describe() for a in self.accounts) or "?"


def _field(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return terminal_text(str(value).strip(), _FIELD_LIMIT)


def accounts_of(metadata: Any) -> tuple[Account, ...]:
    """The submission's users (``users`` of submission_metadata.json), bounded. An entry
    that is not an object is still one user (an account we know nothing of): dropping it
    would turn a group holding a roster student into that student's own submission."""
    users = metadata.get("users") if isinstance(metadata, dict) else None
    if not isinstance(users, list):
        return ()
    return tuple(Account(_field(u.get("name")), _field(u.get("email")), _field(u.get("sid")),
                         _field(u.get("id"))) if isinstance(u, dict) else Account()
                 for u in users[:50])


@dataclass(frozen=True)
class RosterIndex:
    """The roster's keys for Gradescope accounts: ids, emails and mapped emails."""

    ids: frozenset[str]
    by_email: Mapping[str, str]               # casefolded roster email -> student id
    by_gradescope_email: Mapping[str, str]    # casefolded gradescope_email -> student id

    @classmethod
    def build(cls, roster: Iterable[Any], gradescope_emails: Mapping[str, str]) -> RosterIndex:
        students = list(roster)
        by_email: dict[str, str] = {}
        for s in students:
            key = s.email.strip().casefold()
            if key:
                by_email.setdefault(key, s.student_id)
        return cls(frozenset(s.student_id for s in students), by_email,
                   {k.casefold(): v for k, v in gradescope_emails.items()})


def matches(account: Account, index: RosterIndex) -> dict[str, str]:
    """Every mapping that names a roster student for ``account``: {how: student_id}."""
    found = {}
    if account.sid and account.sid in index.ids:
        found["sid"] = account.sid
    email = account.email.casefold()
    if email and email in index.by_email:
        found["email"] = index.by_email[email]
    if email and email in index.by_gradescope_email:
        found[GRADESCOPE_EMAIL] = index.by_gradescope_email[email]
    return found


def decide(accounts: Sequence[Account], index: RosterIndex,
           stamp_student: str | None) -> Decision:
    """The rule of this module's docstring."""

    def no(reason: str, candidates: tuple[str, ...] = ()) -> Decision:
        return Decision(None, (), reason, tuple(accounts), stamp_student, candidates)

    if not accounts:
        return no("no_account")
    if len(accounts) > 1:
        return no("group")
    found = matches(accounts[0], index)
    students = tuple(sorted(set(found.values())))
    if not students:
        return no("unknown_account")
    if len(students) > 1:
        return no("ambiguous", students)
    student = students[0]
    how = tuple(k for k in ("sid", "email", GRADESCOPE_EMAIL) if k in found)
    if stamp_student is not None and stamp_student != student:
        return Decision(None, how, "other_student", tuple(accounts), stamp_student, students)
    return Decision(student, how, None, tuple(accounts), stamp_student)


class MappingError(ValueError):
    """The roster's ``gradescope_email`` column maps one address to two students, or
    to a student other than the one whose ``email`` it is."""


def gradescope_emails(roster_text: str, roster: Iterable[Any]) -> dict[str, str]:
    """``gradescope_email`` of the roster CSV (the course's own roster, already checked
    by ``load_roster``): {address: student id}. An address may name one student only."""
    reader = csv.DictReader(io.StringIO(roster_text.lstrip("\ufeff")))
    fields = reader.fieldnames or []
    if GRADESCOPE_EMAIL not in fields:
        return {}
    id_col = "student_id" if "student_id" in fields else "id"
    owner_of_email = {s.email.strip().casefold(): s.student_id for s in roster
                      if s.email.strip()}
    out: dict[str, str] = {}
    for row in reader:
        sid = (row.get(id_col) or "").strip()
        for address in (row.get(GRADESCOPE_EMAIL) or "").split(";"):
            key = address.strip().casefold()
            if not key or not sid:
                continue
            other = out.get(key) or owner_of_email.get(key)
            if other is not None and other != sid:
                raise MappingError(f"{address.strip()}: {other} / {sid}")
            out[key] = sid
    return out
