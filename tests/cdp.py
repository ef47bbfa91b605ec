"""Clicking through real pages in headless Chromium over the DevTools protocol.

:mod:`tests.browser` runs Chromium once per page (``--dump-dom``, ``--screenshot``); the
JupyterLab and formgrader tests need a page that stays open while a test clicks buttons,
waits for what the page shows and takes screenshots. :class:`Browser` starts Chromium
with ``--remote-debugging-port=0`` (the port Chromium picked is read from its
``DevToolsActivePort`` file) and speaks the protocol over a websocket
(``websocket-client``, which jupyter_server already needs). A click is a real mouse press
and release at the element's centre (``Input.dispatchMouseEvent``), so it goes through
whatever the page's own handlers do with it.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.browser import FLAGS

# the interactive flags: no virtual time budget (pages run in real time)
LIVE_FLAGS = [f for f in FLAGS if not f.startswith("--virtual-time-budget")]


class PageError(AssertionError):
    """What the page did not show in time (with what it did show)."""


class Browser:
    """One headless Chromium with one page (a tab)."""

    def __init__(self, binary: str, profile: Path, width: int = 1400, height: int = 900) -> None:
        import websocket

        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, *LIVE_FLAGS, "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=30) as r:
            pages = [t for t in json.loads(r.read()) if t.get("type") == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=120,
                                              suppress_origin=True)
        self._ids = itertools.count(1)
        self.dialogs: list[str] = []
        self.send("Emulation.setFocusEmulationEnabled", enabled=True)   # a focused page
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # ------------------------------------------------------------------ protocol
    def send(self, method: str, **params: Any) -> dict:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Page.javascriptDialogOpening":
                self.dialogs.append(msg["params"].get("message", ""))
                self.ws.send(json.dumps({"id": next(self._ids),
                                         "method": "Page.handleJavaScriptDialog",
                                         "params": {"accept": True}}))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:200]}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    # ------------------------------------------------------------------ actions
    def goto(self, url: str, ready: str = "document.readyState === 'complete'",
             timeout: float = 120) -> None:
        self.send("Page.navigate", url=url)
        self.wait(ready, timeout, what=f"page {url.split('?')[0]} loaded")

    def wait(self, expression: str, timeout: float = 120, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise PageError(f"not shown within {timeout:.0f} s: {what or expression}\n"
                                f"page text: {self.text()[-3000:]}")
            time.sleep(0.25)

    def text(self) -> str:
        try:
            return self.js("document.body ? document.body.innerText : ''") or ""
        except RuntimeError:
            return ""

    def find(self, selector: str, text: str | None = None) -> str:
        """A JS expression for the first visible element matching ``selector`` (and
        holding ``text`` in its visible text, when given), or null."""
        return ("(() => { const want = " + json.dumps(text)
                + "; for (const e of document.querySelectorAll(" + json.dumps(selector) + ")) {"
                " const r = e.getBoundingClientRect(); if (r.width < 1 || r.height < 1) continue;"
                " if (want === null || (e.innerText || e.value || e.title || '').includes(want))"
                " return e; } return null; })()")

    def click(self, selector: str, text: str | None = None, timeout: float = 120) -> None:
        """Wait for the element, scroll it into view and click its centre."""
        el = self.find(selector, text)
        what = f"{selector} {text or ''}".strip()
        self.wait(f"!!{el}", timeout, what=what)
        # the element itself must be what the mouse hits there (not a splash screen or a
        # dialog's backdrop fading out over it)
        box = self.wait(f"(() => {{ const e = {el}; if (!e) return null;"
                        " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                        " const x = r.left + r.width / 2, y = r.top + r.height / 2;"
                        " const hit = document.elementFromPoint(x, y);"
                        " return hit && (hit === e || e.contains(hit) || hit.contains(e))"
                        " ? [x, y] : null; })()", timeout, what=f"{what} uncovered")
        x, y = box
        for kind, buttons in (("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 0)):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y,
                      button="none" if kind == "mouseMoved" else "left", buttons=buttons,
                      clickCount=0 if kind == "mouseMoved" else 1, pointerType="mouse")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
