"""Per-student check tokens: signed like the stamp (HMAC-SHA256 with the course secret),
bound to one student and one assignment, revocable by id.

A token is ``pc1.<payload>.<signature>``: the payload is base64url JSON of the
assignment, the student and a token id; the signature covers a domain tag and the
payload, so a stamp's signature can never pass as a token's. The token id is itself an
HMAC of (assignment, student, serial): the notebook carrying serial 0 is byte-identical
on every build, and after a revocation ``pset token A S --serial 1`` issues a new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from convpset.notebooks.course import SAFE_ID

PREFIX = "pc1"
REVOKED_FILE = "revoked_tokens.txt"
TOKEN_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_TOKEN = 512
_TAG = b"convpset-check-token|"


@dataclass(frozen=True)
class Token:
    assignment: str
    student: str
    tid: str


def token_id(secret: bytes, assignment: str, student: str, serial: int = 0) -> str:
    msg = f"check-token-id|{assignment}|{student}|{serial}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    return hmac.new(secret, _TAG + payload.encode(), hashlib.sha256).hexdigest()


def make_token(secret: bytes, assignment: str, student: str, serial: int = 0) -> str:
    tid = token_id(secret, assignment, student, serial)
    payload = _b64(json.dumps({"a": assignment, "s": student, "t": tid},
                              sort_keys=True, separators=(",", ":")).encode())
    return f"{PREFIX}.{payload}.{_sign(secret, payload)}"


def read_token(secret: bytes, text: str) -> Token | None:
    """The token's claims when we signed it, else None (never raises on hostile input)."""
    if not isinstance(text, str) or len(text) > MAX_TOKEN:
        return None
    pieces = text.split(".")
    if len(pieces) != 3 or pieces[0] != PREFIX:
        return None
    _, payload, sig = pieces
    if not hmac.compare_digest(_sign(secret, payload), sig):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    a, s, t = claims.get("a"), claims.get("s"), claims.get("t")
    if not all(isinstance(x, str) for x in (a, s, t)) or not SAFE_ID.match(a) \
            or not SAFE_ID.match(s) or not TOKEN_ID.match(t):
        return None
    return Token(a, s, t)


def revoked_ids(root: Path) -> frozenset[str]:
    """Token ids listed in the course's ``revoked_tokens.txt`` (one a line, ``#`` comments)."""
    try:
        text = (Path(root) / REVOKED_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return frozenset()
    return frozenset(line.split("#", 1)[0].strip() for line in text.splitlines()) - {""}


def revoke(root: Path, tid: str) -> Path:
    """Append ``tid`` to the revocation list (appends are atomic for one short line)."""
    path = Path(root) / REVOKED_FILE
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{tid}\n".encode())
    finally:
        os.close(fd)
    return path
