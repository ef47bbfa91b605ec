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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web

from convpset.service.judge import CheckService, Reply
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
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(self.pool, self.service.check, token,
                                           self.request.body)
        self.reply(reply)


class HealthHandler(_Base):
    def get(self) -> None:
        self.finish('{"ok": true}')


def make_app(service: CheckService, threads: int = 4) -> tornado.web.Application:
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="check")
    return tornado.web.Application([
        (r"/api/check", CheckHandler, {"service": service, "pool": pool}),
        (r"/api/health", HealthHandler),
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
