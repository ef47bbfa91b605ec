"""The HTTP side: tornado, which Jupyter already installs (no new dependency), async, and
what JupyterHub's own services are written with.

``POST /api/check`` with ``Authorization: Bearer <token>`` and a JSON body; ``GET
/api/health``. Judging runs in a small thread pool so a slow check never stalls the
event loop; the attempt limit is enforced by the database, not by the loop's ordering.
tornado refuses bodies over the cap before reading them; the access log holds the method,
path, status and time only (never a header or a body, so no token reaches it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web

from convpset.service.judge import CheckService, Reply
from convpset.service.pages import practice_page
from convpset.service.wire import MAX_BODY

HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


class _Base(tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        for k, v in HEADERS.items():
            self.set_header(k, v)
        self.clear_header("Server")
        # the notebook's check(N) runs in the kernel (urllib), not in a page: no CORS

    def reply(self, reply: Reply) -> None:
        self.set_status(reply.status)
        self.finish(json.dumps(reply.body(), ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # never tornado's traceback page, whatever the debug setting
        self.finish(json.dumps({"ok": False, "lines": [self._reason]}))


class CheckHandler(_Base):
    def initialize(self, service: CheckService, pool: ThreadPoolExecutor) -> None:
        self.service = service
        self.pool = pool

    async def post(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        hub = auth[6:].strip() if auth[:6].lower() == "token " else None   # a hub API token
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(self.pool, self.service.check, token,
                                           self.request.body, None, hub)
        self.reply(reply)


PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


class PracticeHandler(_Base):
    """``/practice`` and ``/practice/FAMILY/LEVEL``: server-rendered, plain forms, no
    script (the CSP allows none), MathML as on the feedback pages."""

    def initialize(self, service: CheckService, pool: ThreadPoolExecutor, base: str) -> None:
        self.service = service
        self.pool = pool
        self.base = base

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", PAGE_CSP)

    def _lang(self) -> str:
        lang = self.get_argument("lang", self.service.course.language)
        return lang if lang in ("en", "ru") else self.service.course.language

    async def get(self, family: str | None = None, level: str | None = None) -> None:
        await self._page(family, level, None)

    async def post(self, family: str | None = None, level: str | None = None) -> None:
        form = {k: self.get_body_argument(k, "")[:MAX_BODY] for k in self.request.body_arguments}
        await self._page(family, level, form)

    async def _page(self, family: str | None, level: str | None, form: dict | None) -> None:
        loop = asyncio.get_running_loop()
        status, html = await loop.run_in_executor(
            self.pool, practice_page, self.service.course, self.base, self._lang(), family,
            level, form)
        self.set_status(status)
        self.finish(html)


class HealthHandler(_Base):
    def get(self) -> None:
        self.finish('{"ok": true}')


def make_app(service: CheckService, threads: int = 4) -> tornado.web.Application:
    """The routes, under JupyterHub's service prefix when the hub starts us
    (``JUPYTERHUB_SERVICE_PREFIX``, e.g. ``/services/convpset-check/``)."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="check")
    base = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/").rstrip("/")
    if not re.fullmatch(r"(/[A-Za-z0-9._-]+)*", base):
        base = ""
    practice = {"service": service, "pool": pool, "base": base}
    return tornado.web.Application([
        (base + r"/api/check", CheckHandler, {"service": service, "pool": pool}),
        (base + r"/api/health", HealthHandler),
        (base + r"/practice/?", PracticeHandler, practice),
        (base + r"/practice/([a-z0-9_]{1,64})/([0-9]{1,3})", PracticeHandler, practice),
    ], debug=False, serve_traceback=False, xsrf_cookies=False)


async def serve(service: CheckService, host: str, port: int,
                announce: Any = None) -> None:
    """Listen until cancelled; ``announce(url)`` once the socket is bound (port 0: any)."""
    app = make_app(service)
    server = app.listen(port, address=host, max_body_size=MAX_BODY,
                        max_buffer_size=MAX_BODY * 2, idle_connection_timeout=30,
                        body_timeout=10)
    bound = next(iter(server._sockets.values())).getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if announce:
        announce(f"http://{shown}:{bound}")
    await asyncio.Event().wait()
