"""`pset serve` as a managed service of a REAL JupyterHub, on loopback.

The hub (an exact pinned version, installed with pip into a venv this test builds and
caches by version, never into the project's venv) reads a ``jupyterhub_config.py`` whose
service entry is the README's block, copied out of the README (course path and port
substituted), so the documented lines are what runs. It starts ``pset serve`` itself and
hands it ``JUPYTERHUB_API_URL`` / ``JUPYTERHUB_SERVICE_PREFIX``; users get API tokens the
way a hub mints them (``POST /hub/api/users/NAME/tokens``), and each check is sent with
``Authorization: token ...`` exactly as a user's server would. No proxy process: a
do-nothing proxy class stands in for configurable-http-proxy (``should_start = False``
alone is not enough: the hub still asks the proxy for its routes before it listens), and
the test talks to the hub's own API port and to the service's port directly.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from convpset.notebooks.course import init_course, load_course
from convpset.notebooks.variants import problems_for
from convpset.problems.checking import solved
from tests.test_serve import hub_course_tail

pytestmark = pytest.mark.slow

HUB_VERSION = "5.5.4"
REPO = Path(__file__).resolve().parent.parent
SERVICE = "convpset-check"
USERS = ("anna.hub", "s002", "stranger")     # anna.hub is s001's hub_user; s002 logs in as s002


def _hub_venv() -> Path:
    """A venv holding jupyterhub==HUB_VERSION, built once per version, Python and user."""
    tag = f"convpset-jupyterhub-{HUB_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"
    home = Path(os.environ.get("CONVPSET_HUB_VENV")
                or Path(tempfile.gettempdir()) / f"{tag}-uid{os.getuid()}")
    python = home / "bin" / "python"
    lock = home.with_name(home.name + ".lock")
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)       # one builder at a time
        if not (home / "ready").exists():
            shutil.rmtree(home, ignore_errors=True)
            steps = ((f"python -m venv {home}", [sys.executable, "-m", "venv", str(home)]),
                     (f"pip install jupyterhub=={HUB_VERSION}",
                      [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                       f"jupyterhub=={HUB_VERSION}"]))
            for label, cmd in steps:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                if r.returncode != 0:
                    last = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["?"]
                    pytest.skip(f"REAL-HUB TESTS NOT RUN: `{label}` failed: {last[0]}")
            (home / "ready").write_text(HUB_VERSION + "\n")
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_service_block() -> str:
    """The README's ``jupyterhub_config.py`` lines for the check service, verbatim."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```python\n(# jupyterhub_config\.py\n.*?)```", text, re.S)
    assert m, "README lost its jupyterhub_config.py block"
    return m.group(1)


CONFIG = '''\
# written by tests/test_serve_hub.py
from jupyterhub.proxy import Proxy


class NoProxy(Proxy):
    """No configurable-http-proxy: nothing is routed, the test calls the ports directly."""
    should_start = False

    async def start(self): pass
    async def stop(self): pass
    async def add_route(self, routespec, target, data): pass
    async def delete_route(self, routespec): pass
    async def get_all_routes(self): return {{}}


c = get_config()  # noqa: F821
c.JupyterHub.proxy_class = NoProxy
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public_port}
c.JupyterHub.db_url = "sqlite:///{work}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{work}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.load_roles = [{{"name": "test-minter", "scopes": ["admin:users", "tokens"],
                             "services": ["test-minter"]}}]

# ---- the README's block, course and port substituted
{readme}
# ---- a service only the test uses, to mint user tokens
c.JupyterHub.services.append({{"name": "test-minter", "api_token": "{minter}"}})
'''


def _call(url: str, *, token: str | None = None, body: dict | None = None,
          timeout: float = 30) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers,
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, {"raw": raw.decode("utf-8", "replace")}


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc), to stop what the hub started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    """A running JupyterHub with `pset serve` as its managed service; yields a dict with
    the service's check URL, the course root and one hub API token per user."""
    python = _hub_venv()
    work = tmp_path_factory.mktemp("hub")
    root = work / "course"
    init_course(root, students=3, seed=13)
    hub_course_tail(root)

    hub_port, public_port, svc_port = _free_port(), _free_port(), _free_port()
    block = readme_service_block()
    assert '"/srv/course"' in block and "10101" in block
    block = block.replace('"/srv/course"', json.dumps(str(root))).replace("10101", str(svc_port))
    minter = secrets.token_hex(24)
    config = work / "jupyterhub_config.py"
    config.write_text(CONFIG.format(hub_port=hub_port, public_port=public_port, work=work,
                                    users=set(USERS), readme=block, minter=minter),
                      encoding="utf-8")
    env = {**os.environ,
           # the README's "pset" command is this project's, run from this checkout
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("JUPYTERHUB_API_URL", None)
    log = work / "hub.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(python), "-m", "jupyterhub", "-f", str(config)],
                                cwd=work, stdout=out, stderr=subprocess.STDOUT, env=env)
    api = f"http://127.0.0.1:{hub_port}/hub/api"
    svc = f"http://127.0.0.1:{svc_port}/services/{SERVICE}"
    try:
        deadline = time.monotonic() + 180
        while not (_up(api + "/") and _up(svc + "/api/health")):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
                pytest.skip(f"REAL-HUB TESTS NOT RUN: jupyterhub {HUB_VERSION} exited "
                            f"({proc.returncode}) while starting: {tail[0]}")
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        tokens = {}
        for name in USERS:
            status, reply = _call(f"{api}/users/{name}/tokens", token=minter,
                                  body={"note": "convpset test", "expires_in": 3600})
            assert status in (200, 201), (status, reply)
            tokens[name] = reply["token"]
        yield {"check": svc + "/api/check", "api": api, "root": root, "tokens": tokens,
               "log": log}
    finally:
        children = _children(proc.pid)       # the managed `pset serve`
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        for pid in children:                 # the hub stops it on a clean exit; if not:
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass


def _key(root: Path, student: str, number: int = 2) -> dict:
    c = load_course(root)
    prob = problems_for(c, c.assignment("conv1"), student)[number - 1]
    key = solved(prob.fam, prob.variant)
    return {p.name: np.asarray(key[prob.base_name(p.name)], dtype=float).tolist()
            for p in prob.parts()}


def _check(hub: dict, token: str, student_key: str | None = None, **extra) -> tuple[int, dict]:
    body = {"assignment": "conv1", "problem": 2,
            "answers": _key(hub["root"], student_key) if student_key else {}, **extra}
    return _call(hub["check"], token=token, body=body, timeout=60)


def _one_sentence(reply: dict) -> str:
    (line,) = reply["lines"]
    assert line.count(". ") == 0 and line.endswith(".")
    return line


def test_the_hub_itself_knows_the_tokens(hub):
    """The tokens are the hub's: its own `GET /user` names each login."""
    for name, token in hub["tokens"].items():
        status, model = _call(hub["api"] + "/user", token=token)
        assert status == 200 and model["name"] == name


def test_a_roster_students_hub_token_gets_their_own_verdict(hub):
    """anna.hub is s001 through the roster's hub_user: s001's key is right for her."""
    status, reply = _check(hub, hub["tokens"]["anna.hub"], "s001")
    assert status == 200, reply
    assert reply["parts"] and set(reply["parts"].values()) == {"correct"}


def test_a_login_whose_id_is_the_roster_id_gets_their_own_verdict(hub):
    status, reply = _check(hub, hub["tokens"]["s002"], "s002")
    assert status == 200 and set(reply["parts"].values()) == {"correct"}


def test_a_hub_user_not_on_the_roster_is_refused_in_one_sentence(hub):
    status, reply = _check(hub, hub["tokens"]["stranger"], "s001")
    assert status == 403 and reply.get("ok") is False
    line = _one_sentence(reply)
    assert "roster" in line and "parts" not in reply
    # distinct from a token the hub does not know: the login is real, the roster lacks it
    assert line != _one_sentence(_check(hub, "0" * 32, "s001")[1])


def test_a_bogus_token_is_refused(hub):
    for bogus in ("0" * 32, hub["tokens"]["anna.hub"][:-1] + "x", "token with spaces"):
        status, reply = _check(hub, bogus, "s001")
        assert status == 401 and "parts" not in reply
        _one_sentence(reply)


def test_another_users_token_is_judged_against_that_users_variant(hub):
    """s002's token is s002's variant, whatever the body claims: s001's key is not right
    for it, and naming s001 in the body is refused."""
    own = _check(hub, hub["tokens"]["s002"], "s002")[1]["parts"]
    assert set(own.values()) == {"correct"}
    status, reply = _check(hub, hub["tokens"]["s002"], "s001")
    assert status == 200 and set(reply["parts"].values()) != {"correct"}
    status, reply = _check(hub, hub["tokens"]["s002"], "s001", student="s001")
    assert status == 403 and "parts" not in reply
    _one_sentence(reply)
    # and anna.hub's token with s002's key is judged against s001's variant
    status, reply = _check(hub, hub["tokens"]["anna.hub"], "s002")
    assert status == 200 and set(reply["parts"].values()) != {"correct"}
