"""Headless Chromium for the tests that look at our pages as a reader's browser shows them.

:func:`chromium` finds the browser and, on a fresh Debian machine where the tests run as
root (CI, a new staff machine), installs it with apt the first time a browser test needs
it; elsewhere the browser tests are skipped with the command that installs it.
:class:`RecordingProxy` stands in for the whole network: Chromium is told to send every
request through it, and it records and refuses each one, so a test can assert that a page
fetched nothing from anywhere.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000", "--hide-scrollbars"]


def _find() -> str | None:
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def apt_installed(find, package: str, what: str, timeout: int = 1800,
                  tests: str | None = None) -> str:
    """``find()``'s binary, installing Debian's ``package`` with apt when it is missing and
    that is possible (root, apt-get: CI, a fresh staff machine), one installer at a time
    across xdist workers; elsewhere the test is skipped, headed "<TESTS> TESTS NOT RUN" (the
    kind of test, ``what`` by default), with the command that installs it."""
    install = f"apt-get update && apt-get install -y {package}"
    found = find()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{(tests or what).upper()} TESTS NOT RUN: {what} is missing and cannot be installed "
                    f"here (needs root and apt-get). Install it: {install}")
    lock = Path(tempfile.gettempdir()) / f"convpset-{package}-install.lock"
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if find() is None:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for cmd in (["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", package]):
                r = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                   timeout=timeout)
                if r.returncode != 0:
                    pytest.fail(f"installing {what} failed ({' '.join(cmd)}): "
                                f"{r.stderr.strip()[-500:]}")
    found = find()
    if found is None:
        pytest.fail(f"{what} still missing after `{install}`")
    return found


def chromium() -> str:
    """The Chromium binary; installed with apt when missing and possible (root, Debian)."""
    return apt_installed(_find, "chromium", "Chromium", timeout=900, tests="browser")


# Chromium's own calls home (clock, updater, sign-in), made from a blank page too: not
# requests of the page under test.
BROWSER_OWN_HOSTS = frozenset({"accounts.google.com", "update.googleapis.com",
                               "clients2.google.com"})


def request_host(line: str) -> str:
    """The host of a proxy request line (``CONNECT h:443 …`` or ``GET http://h/… …``)."""
    target = line.split(" ")[1] if " " in line else line
    target = target.split("://", 1)[-1]
    return target.split("/", 1)[0].rsplit(":", 1)[0].lower()


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that records the first line of every request
    (``GET http://…`` or ``CONNECT host:443``) and answers 502: the network, refused."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    head = conn.recv(4096).decode("latin-1")
                except OSError:
                    head = ""
                if head:
                    self.requests.append(head.split("\r\n", 1)[0])
                try:
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def page_requests(self) -> list[str]:
        """The recorded requests less Chromium's own background calls."""
        return [r for r in self.requests if request_host(r) not in BROWSER_OWN_HOSTS]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RecordingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(browser: str, profile: Path, url: str, *args: str,
        proxy: RecordingProxy | None = None) -> subprocess.CompletedProcess:
    """One headless Chromium run (``--dump-dom`` or ``--screenshot=…`` in ``args``)."""
    net = [f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>"] \
        if proxy is not None else []
    return subprocess.run([browser, *FLAGS, *net, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=120)
