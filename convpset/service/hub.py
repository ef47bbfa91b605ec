"""Who is asking, under JupyterHub: the hub login behind a hub API token.

When the hub runs ``pset serve`` as a managed service it sets ``JUPYTERHUB_API_URL``;
a notebook server in the hub holds its user's token in ``JUPYTERHUB_API_TOKEN``. A check
sent with ``Authorization: token <that token>`` is resolved the way
``jupyterhub.services.auth.HubAuth`` does it -- ``GET {api}/user`` with the token -- without
depending on the jupyterhub package; the login is mapped to a student through the roster's
``hub_user`` (or the student id when it is empty). The hub's URL comes from the
environment, never from a request, so a token is only ever shown to the hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable

from convpset.notebooks.course import Student

CACHE_S = 60.0
MAX_TOKEN = 512


class HubAuth:
    def __init__(self, api_url: str, students: Iterable[Student]) -> None:
        self.api_url = api_url.rstrip("/")
        self.by_login = {(s.hub_user or s.student_id): s.student_id for s in students}
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, students: Iterable[Student]) -> HubAuth | None:
        url = os.environ.get("JUPYTERHUB_API_URL", "")
        return cls(url, students) if url.startswith(("http://", "https://")) else None

    def login(self, token: str) -> str | None:
        """The hub login the token belongs to (None: not a valid hub token)."""
        if not token or len(token) > MAX_TOKEN or not token.isprintable():
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
        req = urllib.request.Request(self.api_url + "/user",
                                     headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                model = json.loads(r.read(1 << 16))
            name = model.get("name") if isinstance(model, dict) else None
            name = name if isinstance(name, str) else None
        except (urllib.error.URLError, OSError, ValueError):
            name = None
        if name is not None:       # failures are not cached: a hub restart locks nobody out
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key] = (now, name)
        return name

    def student(self, token: str) -> str | None:
        login = self.login(token)
        return None if login is None else self.by_login.get(login)
