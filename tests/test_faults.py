"""Faults while sessions run, on the real parts: each test breaks one thing and asserts what the
user sees and what is left behind (docs/admin/operations.md has the table).

The Slurm faults stop or kill the shared dev cluster's daemons for a while and bring them back
(scripts/dev-slurm start); they run last in this file and restore the cluster even on failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from .conftest import SLURM_HUB_CONFIG, squeue_active, wait_for
from .harness import REPO, TEST_USERS

pytestmark = [pytest.mark.slurm, pytest.mark.hub]

SLURM_RUN = Path(os.environ.get("INK_SLURM_DIR", "/var/lib/ink-slurm")) / "run"

APPS = ("a1", "a2", "a3", "a4")
CATALOGUE = """
site: {max_sessions_per_user: 5}
defaults: {memory: 1G, walltime: "1:00:00"}
limits: {cpus: 4096, memory: 4G}
apps:
  a1: {title: Lab one, default_url: /lab}
  a2: {title: Lab two, default_url: /lab}
  a3: {title: Lab three, default_url: /lab}
  a4: {title: Lab four, default_url: /lab}
  big: {title: Big lab, default_url: /lab}
experiments:
  default: {title: Everyone, members: {everyone: true}, apps: [jupyter, a1, a2, a3, a4, big, portal]}
"""


def node_cpus() -> int:
    """Cores the dev node advertises: a spawn asking for all of them waits while others run."""
    return int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True,
                              check=True).stdout.split()[0].rstrip("+"))


def proxied(hub, user: str, app: str, token: str) -> int:
    try:
        return requests.get(f"{hub.url}/user/{user}/{app}/api/status",
                            headers={"Authorization": f"token {token}"}, timeout=10).status_code
    except requests.RequestException:
        return 0


def execute(channels_url: str, token: str, code: str) -> None:
    """Send code to a kernel over its websocket (Jupyter's messaging protocol), as a notebook does."""
    import json
    import uuid

    import websocket

    ws = websocket.create_connection(channels_url.replace("http://", "ws://"), timeout=60,
                                     header=[f"Authorization: token {token}"])
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "",
                                   "session": uuid.uuid4().hex, "version": "5.3"},
                        "parent_header": {}, "metadata": {}, "channel": "shell",
                        "content": {"code": code, "silent": False, "store_history": False,
                                    "user_expressions": {}, "allow_stdin": False}}))
    while True:  # until the kernel says it is busy with our request
        reply = json.loads(ws.recv())
        if reply.get("parent_header", {}).get("msg_id") == msg_id and \
                reply.get("content", {}).get("execution_state") == "busy":
            break
    ws.close()


def logged_in(hub, user: str) -> requests.Session:
    """A browser-like session logged in to the hub (the test hub's dummy password)."""
    s = requests.Session()
    page = s.get(f"{hub.url}/hub/login", timeout=60)
    xsrf = s.cookies.get("_xsrf") or ""
    r = s.post(f"{hub.url}/hub/login", data={"username": user, "password": "test-password", "_xsrf": xsrf},
               timeout=60)
    assert r.ok and page.ok, r.text[:500]
    return s


def start_many(hub, pairs) -> None:
    """Press Start for every (user, app) at once, then wait until all are ready."""
    threads = [threading.Thread(target=hub.request_server, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for user, app in pairs:
        hub.wait_ready(user, app, timeout=600)


def test_hub_sigkilled_with_20_sessions_keeps_them_and_cancels_the_pending_spawn(hub_factory, dev_slurm, tmp_path):
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", catalogue=CATALOGUE, workdir=tmp_path / "hub")
    pairs = [(user, app) for user in TEST_USERS for app in APPS]  # 5 users x 4 apps = 20 sessions
    start_many(hub, pairs)
    jobs = {pair: hub.spawner_state(*pair)["job_id"] for pair in pairs}
    tokens = {user: hub.user_token(user) for user in TEST_USERS}
    # one more spawn that cannot start now (all the node's cores while 20 are in use): pending
    r = hub.request_server("alice", "big", {"cpus": node_cpus()})
    assert r.status_code == 202, r.text
    pending = wait_for(lambda: hub.spawner_state("alice", "big").get("job_id"), 30, message="pending job saved")
    assert pending in squeue_active("alice")

    os.killpg(hub.proc.pid, signal.SIGKILL)  # hub and proxy die at once, no clean-up
    hub.proc.wait()
    hub.proc = None
    active = squeue_active()
    assert set(jobs.values()) <= set(active), "every session job is untouched"

    hub.start()
    for (user, app), job_id in jobs.items():
        assert hub.spawner_state(user, app)["job_id"] == job_id
        wait_for(lambda: proxied(hub, user, app, tokens[user]) == 200, 60,
                 message=f"{user}/{app} reachable through the proxy after the restart")
    # the pending spawn never reported a port: the restarted hub cancels it (no orphan)
    wait_for(lambda: pending not in squeue_active("alice"), 60, message="pending spawn cancelled")
    assert hub.server("alice", "big") is None
    for user, app in pairs:
        hub.api("DELETE", f"/users/{user}/servers/{app}")
    wait_for(lambda: not set(jobs.values()) & set(squeue_active()), 120, message="all jobs gone after stop")


def test_proxy_killed_routes_restored_within_one_check(hub_factory, dev_slurm, tmp_path):
    check = 5
    hub = hub_factory(SLURM_HUB_CONFIG + f"\nc.ConfigurableHTTPProxy.check_running_interval = {check}\n",
                      backend="slurm", catalogue=CATALOGUE, workdir=tmp_path / "hub")
    hub.start_and_wait("bob", "a1")
    token = hub.user_token("bob")
    assert proxied(hub, "bob", "a1", token) == 200
    pid = int((tmp_path / "hub" / "proxy.pid").read_text())
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: proxied(hub, "bob", "a1", token) == 0, 10, 0.05, "proxy down")
    wait_for(lambda: proxied(hub, "bob", "a1", token) == 200, 60, 0.2, "route restored")
    restored = time.monotonic() - killed
    # the hub notices a dead proxy at its next check, restarts it and puts every route back
    assert restored <= check * 3 + 10, f"restored after {restored:.1f} s (check every {check} s)"
    assert hub.server("bob", "a1")["ready"]
    hub.stop_server("bob", "a1")


def test_disk_full_during_a_copy_is_507_and_keeps_the_original(tmp_path, unix_users):
    """The file manager's copy onto a full file system: a clear 507, nothing under the final
    name, the source intact (the upload case is in test_files_api.py)."""
    import tempfile

    from .user_server import UserServer

    import pwd

    full = tempfile.mkdtemp(prefix="ink-full-copy-")
    uid = pwd.getpwnam("alice").pw_uid
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=1m,uid={uid},mode=0755", "tmpfs", full], check=True)
    server = UserServer("alice", roots=[{"name": "Small disk", "path": full}]).start()
    try:
        data = os.urandom(3 << 20)
        server.write("big.bin", data)
        r = server.post("copy", {"path": "big.bin", "to": full})
        assert r.status_code == 507, r.text
        assert "no space left" in r.json()["message"]
        assert not os.path.exists(os.path.join(full, "big.bin"))
        assert os.listdir(full) == []  # no partial copy, hidden or not: the space is back
        # a folder copy too
        server.write("folder/one.bin", data)
        r = server.post("copy", {"path": "folder", "to": full})
        assert r.status_code == 507 and os.listdir(full) == [], (r.text, os.listdir(full))
        assert (server.home / "big.bin").read_bytes() == data
    finally:
        server.stop()
        subprocess.run(["umount", full])
        os.rmdir(full)


# ---- Slurm's own daemons fail (these stop the shared dev cluster for a while) ---------------------

def _pid(name: str) -> int:
    return int((SLURM_RUN / f"{name}.pid").read_text())


def _restore_slurm() -> None:
    subprocess.run([str(REPO / "scripts" / "dev-slurm"), "start"], check=True, capture_output=True)


@pytest.fixture
def slurm_restored(dev_slurm):
    yield
    _restore_slurm()


def test_slurmctld_down_for_30s_drops_no_session_and_the_pending_spawn_says_so(
        hub_factory, slurm_restored, tmp_path):
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", catalogue=CATALOGUE, workdir=tmp_path / "hub")
    hub.start_and_wait("carol", "a1")
    token = hub.user_token("carol")
    running = hub.spawner_state("carol", "a1")["job_id"]
    r = hub.request_server("carol", "big", {"cpus": node_cpus()})  # pends: a core is taken
    assert r.status_code == 202, r.text
    pending = wait_for(lambda: hub.spawner_state("carol", "big").get("job_id"), 30, message="queued")
    events: list[dict] = []
    watcher = threading.Thread(target=lambda: events.extend(hub.progress("carol", "big", timeout=300)),
                               daemon=True)
    watcher.start()
    os.kill(_pid("slurmctld"), signal.SIGKILL)
    down_since = time.monotonic()
    wait_for(lambda: "Cannot ask slurm about job" in hub.log_text(), 30, message="retrying shown")
    while time.monotonic() - down_since < 30:
        # the running session stays reachable and listed as running the whole time
        assert proxied(hub, "carol", "a1", token) == 200
        assert (hub.server("carol", "a1") or {}).get("ready")
        time.sleep(2)
    _restore_slurm()
    assert running in squeue_active("carol") and pending in squeue_active("carol")
    hub.api("DELETE", "/users/carol/servers/big")  # the user gives up waiting: nothing is left
    wait_for(lambda: pending not in squeue_active("carol"), 60, message="pending job cancelled")
    assert proxied(hub, "carol", "a1", token) == 200
    hub.stop_server("carol", "a1")


def test_session_over_its_memory_is_killed_and_the_panel_says_out_of_memory(hub_factory, dev_slurm, tmp_path):
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", catalogue=CATALOGUE, workdir=tmp_path / "hub")
    hub.start_and_wait("dave", "a2", {"memory": "300M"})
    token = hub.user_token("dave")
    job_id = hub.spawner_state("dave", "a2")["job_id"]
    # a terminal in the session allocates 600 MB and holds it
    base = f"{hub.url}/user/dave/a2"
    h = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{base}/api/kernels", headers=h, json={"name": "python3"}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    execute(f"{base}/api/kernels/{kernel.json()['id']}/channels", token,
            "x = b'x' * (600 << 20)\nimport time; time.sleep(120)")
    hub.wait_stopped("dave", "a2", timeout=180)
    panel = logged_in(hub, "dave").get(f"{hub.url}/hub/ink", timeout=60).text
    assert "out of memory" in panel, panel[-3000:]
    assert job_id not in squeue_active("dave")


def test_node_lost_sessions_are_stopped_with_the_reason(hub_factory, slurm_restored, tmp_path):
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", catalogue=CATALOGUE, workdir=tmp_path / "hub")
    hub.start_and_wait("erin", "a3")
    job_id = hub.spawner_state("erin", "a3")["job_id"]
    # the node is lost: its slurmd and the session's processes die with it
    pids = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True).stdout.split()[1::5]
    os.kill(_pid("slurmd"), signal.SIGKILL)
    for pid in pids:
        if pid.isdigit():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    lost = time.monotonic()
    hub.wait_stopped("erin", "a3", timeout=180)
    waited = time.monotonic() - lost
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    assert "NODE_FAIL" in out, out
    assert "node failed" in hub.log_text()
    assert job_id not in squeue_active("erin")
    print(f"node loss noticed after {waited:.1f} s")
