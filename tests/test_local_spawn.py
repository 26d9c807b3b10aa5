"""The local backend through a real hub: the embedded default of the quickstart."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time

import pytest
import requests

from .conftest import scaled, wait_for
from .harness import REPO, VENV_BIN, free_port

pytestmark = pytest.mark.hub


def group_members(pgid: int) -> list[int]:
    members = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                members.append(int(p))
    return members


def test_local_session_runs_as_the_user_and_leaves_nothing(hub_factory):
    # a SIGKILL grace far beyond any stop: a stop that waited for it could not pass below
    grace = scaled(30)
    hub = hub_factory(f"c.LocalBackend.stop_grace = {grace}\n", backend="local")
    hub.start_and_wait("alice", "jupyter")
    job_id = hub.spawner_state("alice", "jupyter")["job_id"]
    pgid = int(job_id.split(".")[0])
    members = group_members(pgid)
    assert members
    assert {os.stat(f"/proc/{p}").st_uid for p in members} == {pwd.getpwnam("alice").pw_uid}
    token = hub.user_token("alice")
    r = requests.get(f"{hub.url}/user/alice/jupyter/api/status",
                     headers={"Authorization": f"token {token}"}, timeout=10)
    assert r.status_code == 200
    # another user's token is refused by the session
    bob = hub.user_token("bob")
    r = requests.get(f"{hub.url}/user/alice/jupyter/api/status",
                     headers={"Authorization": f"token {bob}"}, timeout=10, allow_redirects=False)
    assert r.status_code in (302, 403)
    t0 = time.monotonic()
    hub.stop_server("alice", "jupyter")
    assert time.monotonic() - t0 < grace / 3, "a clean stop must not wait for the SIGKILL grace period"
    wait_for(lambda: not group_members(pgid), 5, message="session processes gone")


def test_quickstart_config_serves_the_demo(tmp_path, unix_users):
    """jupyterhub_config.py as the README's quickstart runs it: demo users, local backend."""
    port, hub_port = free_port(), free_port()
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", INK_DEMO_STATE=str(tmp_path),
               INK_DEMO_PORT=str(port))
    proc = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f", str(REPO / "jupyterhub_config.py"),
                             f"--JupyterHub.hub_port={hub_port}",
                             f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}"],
                            cwd=tmp_path, env=env, stdout=open(tmp_path / "hub.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/hub/login"), 60, 0.2, "demo hub up")
        password = (tmp_path / "demo-password").read_text().strip()
        assert len(password) >= 16 and (tmp_path / "demo-password").stat().st_mode & 0o077 == 0
        s = requests.Session()
        s.get(f"{base}/hub/login", timeout=10)
        r = s.post(f"{base}/hub/login", data={"username": "alice", "password": password,
                                              "_xsrf": s.cookies.get("_xsrf")}, timeout=30)
        # login lands on the INK panel, whose JupyterLab tile leads to the menu
        assert r.status_code == 200 and r.url.endswith("/hub/ink"), r.url
        assert 'action="/hub/spawn/alice/jupyter"' in r.text and 'value="demo"' in r.text
        r = s.get(f"{base}/hub/spawn/alice/jupyter", timeout=30)
        assert 'name="experiment"' in r.text and "Demo" in r.text
        r = s.post(f"{base}/hub/spawn/alice/jupyter",
                   data={"experiment": "demo", "preset": "small", "walltime": "1:00:00",
                         "_xsrf": s.cookies.get("_xsrf", path="/hub/")}, timeout=60)
        assert r.status_code == 200, r.text[-500:]
        # a user who is not a demo user is refused
        bad = requests.Session()
        bad.get(f"{base}/hub/login", timeout=10)
        r = bad.post(f"{base}/hub/login", data={"username": "mallory", "password": password,
                                                "_xsrf": bad.cookies.get("_xsrf")}, timeout=30)
        assert "/hub/login" in r.url or r.status_code == 403
        # JupyterLab comes up through the proxy (hub OAuth done with the browser's cookies)
        def lab():
            r = s.get(f"{base}/user/alice/jupyter/", timeout=30)
            return r.status_code == 200 and r.url.split("?")[0].endswith("/user/alice/jupyter/lab")

        wait_for(lab, 60, 0.3, "alice's JupyterLab through the proxy")
        # the unnamed default server is not an app: its page links the apps, a spawn is a 400
        r = s.get(f"{base}/hub/spawn/alice", timeout=30)
        assert "named after their app" in r.text and 'href="/hub/spawn/alice/jupyter"' in r.text
        r = s.post(f"{base}/hub/spawn/alice", data={"_xsrf": s.cookies.get("_xsrf", path="/hub/")},
                   timeout=30)
        assert r.status_code == 400 and "named after their app" in r.text
    finally:
        proc.terminate()
        proc.wait(30)
        # the demo keeps sessions running when the hub stops: end this hub's sessions only
        for pid in sessions_of_hub(hub_port):
            try:
                os.killpg(pid, 15)
            except ProcessLookupError:
                pass
    print((tmp_path / "hub.log").read_text()[-3000:], file=sys.stderr)


def sessions_of_hub(hub_port: int) -> list[int]:
    """Process groups whose environment points at the given hub API port."""
    marker = f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub_port}/".encode()
    groups = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/environ", "rb") as f:
                    if marker in f.read():
                        groups.add(os.getpgid(int(p)))
            except (OSError, ProcessLookupError):
                continue
    return sorted(groups)


def _get(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
