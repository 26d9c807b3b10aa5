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

from .conftest import SLURM_HUB_CONFIG, job_pids, scaled, squeue_active, wait_for
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
        hub.wait_ready(user, app, timeout=150)  # scaled: 600 s at the default scale


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


def routes_of(hub) -> set[str]:
    """The route specs CHP holds right now (asked of the proxy's own API), or none if it is down."""
    try:
        return set(hub.proxy_routes())
    except requests.RequestException:
        return set()


def test_proxy_killed_routes_restored_within_one_check(hub_factory, dev_slurm, tmp_path):
    check = 5
    hub = hub_factory(SLURM_HUB_CONFIG + f"\nc.ConfigurableHTTPProxy.check_running_interval = {check}\n",
                      backend="slurm", catalogue=CATALOGUE, workdir=tmp_path / "hub")
    hub.start_and_wait("bob", "a1")
    hub.start_and_wait("carol", "a2")
    token = hub.user_token("bob")
    assert proxied(hub, "bob", "a1", token) == 200
    before = routes_of(hub)
    assert {"/user/bob/a1", "/user/carol/a2"} <= before, before
    pid = int((tmp_path / "hub" / "proxy.pid").read_text())
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: proxied(hub, "bob", "a1", token) == 0, 10, 0.05, "proxy down")
    # the hub notices the dead proxy at its next check (at most one interval away), starts a new
    # one and adds every route again: all routes back within one check interval plus the new
    # proxy's start, which is the part stretched on a loaded machine
    wait_for(lambda: routes_of(hub) >= before, 60, 0.1, "every route back in the new proxy")
    restored = time.monotonic() - killed
    assert restored <= check + scaled(3), f"routes back after {restored:.1f} s (check every {check} s)"
    assert int((tmp_path / "hub" / "proxy.pid").read_text()) != pid, "a new proxy runs"
    wait_for(lambda: proxied(hub, "bob", "a1", token) == 200, 10, 0.1, "the session reachable again")
    assert hub.server("bob", "a1")["ready"] and hub.server("carol", "a2")["ready"]
    print(f"routes restored {restored:.1f} s after the proxy was killed (check every {check} s)")
    hub.stop_server("bob", "a1")
    hub.stop_server("carol", "a2")


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


def test_disk_full_during_an_upload_that_overwrites_is_507_and_keeps_the_original(unix_users):
    """An upload replacing an existing file on a full file system: a clear 507, the original
    intact under its name, no partial or hidden file left (the space is back)."""
    import pwd
    import tempfile

    from .user_server import UserServer

    full = tempfile.mkdtemp(prefix="ink-full-upload-")
    uid = pwd.getpwnam("alice").pw_uid
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=1m,uid={uid},mode=0755", "tmpfs", full], check=True)
    server = UserServer("alice", roots=[{"name": "Small disk", "path": full}]).start()
    try:
        original = os.urandom(300 << 10)
        target = os.path.join(full, "results.bin")
        with open(target, "wb") as f:
            f.write(original)
        os.chown(target, uid, -1)
        data = os.urandom(2 << 20)  # does not fit next to the original
        r = server.post("uploads", {"path": target, "size": len(data)})
        assert r.status_code == 409, r.text  # replacing is asked for, never implied
        up = server.post("uploads", {"path": target, "size": len(data), "overwrite": True})
        assert up.status_code in (200, 201), up.text
        upload_id = up.json()["id"]
        sent = 0
        for start in range(0, len(data), 512 << 10):  # chunks, as the page sends them
            chunk = data[start:start + (512 << 10)]
            r = requests.put(server.api + f"uploads/{upload_id}", data=chunk, timeout=scaled(30), headers={
                **server.auth, "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{len(data)}"})
            if r.status_code != 200:
                break
            sent += len(chunk)
        assert r.status_code == 507, (sent, r.status_code, r.text)
        assert "no space left" in r.json()["message"]
        with open(target, "rb") as f:
            assert f.read() == original, "the original file was changed"
        assert os.listdir(full) == ["results.bin"], os.listdir(full)  # no part file, hidden or not
        # the upload is over: it cannot go on over the original
        more = requests.put(server.api + f"uploads/{upload_id}", data=b"x", timeout=scaled(30), headers={
            **server.auth, "Content-Range": f"bytes {sent}-{sent}/{len(data)}"})
        assert more.status_code in (404, 409, 410, 507), more.text
        with open(target, "rb") as f:
            assert f.read() == original
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


RETRYING = "Scheduler unreachable, retrying"  # ink_spawner/session_wait.py


def test_slurmctld_down_for_30s_drops_no_session_and_the_pending_spawn_continues(
        hub_factory, slurm_restored, tmp_path):
    """slurmctld dies for 30 s with a session running and a spawn queued: the session is never
    dropped, the queued spawn's progress (what the user's progress page shows) says the
    scheduler is unreachable and that it retries, and once slurmctld is back the queued spawn
    continues to ready by itself (docs/admin/operations.md); nothing is left after stopping."""
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", catalogue=CATALOGUE, workdir=tmp_path / "hub")
    hub.start_and_wait("carol", "a1")
    token = hub.user_token("carol")
    running = hub.spawner_state("carol", "a1")["job_id"]
    r = hub.request_server("carol", "big", {"cpus": node_cpus()})  # pends: a core is taken
    assert r.status_code == 202, r.text
    pending = wait_for(lambda: hub.spawner_state("carol", "big").get("job_id"), 30, message="queued")
    events: list[dict] = []
    watcher = threading.Thread(target=hub.progress, args=("carol", "big"),
                               kwargs={"timeout": 300, "events": events}, daemon=True)
    watcher.start()
    wait_for(lambda: any("queued" in e.get("message", "") for e in events), 30,
             message="the progress page says queued")
    os.kill(_pid("slurmctld"), signal.SIGKILL)
    down_since = time.monotonic()
    try:
        wait_for(lambda: any(RETRYING in e.get("message", "") for e in events), 30,
                 message="the progress page says the scheduler is unreachable and it retries")
        while time.monotonic() - down_since < 30:
            # the running session stays reachable and listed as running the whole time
            assert proxied(hub, "carol", "a1", token) == 200
            assert (hub.server("carol", "a1") or {}).get("ready")
            assert (hub.server("carol", "big") or {}).get("pending") == "spawn", "the queued spawn gave up"
            time.sleep(2)
    finally:
        _restore_slurm()
    assert running in squeue_active("carol") and pending in squeue_active("carol")
    message = next(e["message"] for e in events if RETRYING in e.get("message", ""))
    assert f"about job {pending}" in message, message
    # the spawn goes on waiting in the queue; when the cores it asked for are free it starts
    assert proxied(hub, "carol", "a1", token) == 200
    hub.stop_server("carol", "a1")
    server = hub.wait_ready("carol", "big", timeout=120)
    assert server["ready"] and hub.spawner_state("carol", "big")["job_id"] == pending
    watcher.join(scaled(30))
    assert not watcher.is_alive() and events[-1].get("ready"), events[-3:]
    assert not any(e.get("failed") for e in events), events
    assert proxied(hub, "carol", "big", token) == 200
    hub.stop_server("carol", "big")
    wait_for(lambda: not {running, pending} & set(squeue_active("carol")), 60, message="no job left")


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


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def job_state(job_id: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    for field in out.split():
        if field.startswith("JobState="):
            return field.split("=", 1)[1]
    return ""


def test_node_lost_sessions_are_stopped_with_the_reason(hub_factory, slurm_restored, tmp_path):
    """slurmd killed with the session's processes (the node is lost): once Slurm ends the job
    (NODE_FAIL, after SlurmdTimeout), the hub shows the session stopped within one poll
    interval, removes its route from the proxy, and the panel gives the reason."""
    interval = 2.0  # c.SlurmBackend.poll_interval and c.InkSpawner.poll_interval in SLURM_HUB_CONFIG
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", catalogue=CATALOGUE, workdir=tmp_path / "hub")
    hub.start_and_wait("erin", "a3")
    job_id = hub.spawner_state("erin", "a3")["job_id"]
    assert "/user/erin/a3" in routes_of(hub)
    # the node is lost: its slurmd and the session's processes die with it
    pids = job_pids(job_id)  # the PID column (an earlier slice of this output took job ids for pids)
    assert pids, "the session's processes"
    # the job's slurmstepd dies with the node too: alive, it would tell slurmctld the batch
    # script failed (FAILED), which is a job ending, not a node lost
    stepds = [int(d) for d in os.listdir("/proc") if d.isdigit() and
              f"[{job_id}.".encode() in _cmdline(int(d)) and _cmdline(int(d)).startswith(b"slurmstepd")]
    assert stepds, "the job's slurmstepd"
    os.kill(_pid("slurmd"), signal.SIGKILL)
    for pid in stepds:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # watch both sides: when Slurm ends the job, and when the hub stops showing the session
    ended = stopped = None
    deadline = time.monotonic() + scaled(180)
    while (ended is None or stopped is None) and time.monotonic() < deadline:
        now = time.monotonic()
        if ended is None and job_state(job_id) in ("NODE_FAIL", "FAILED", "CANCELLED", "COMPLETED"):
            ended = now
        if stopped is None and hub.server("erin", "a3") is None:
            stopped = now
        time.sleep(0.1)
    assert ended is not None and stopped is not None, (ended, stopped, hub.log_tail(30))
    assert job_state(job_id) == "NODE_FAIL", job_state(job_id)
    lag = stopped - ended
    # one poll of the status cache (+10 % jitter), stretched slack for a loaded machine; the
    # observation itself can make the hub look faster (negative lag), never slower
    assert lag <= interval * 1.1 + scaled(1.0), f"shown stopped {lag:.1f} s after Slurm ended the job"
    assert "/user/erin/a3" not in routes_of(hub), "the lost session's route is still in the proxy"
    panel = logged_in(hub, "erin").get(f"{hub.url}/hub/ink", timeout=scaled(15)).text
    assert "its node failed or lost contact with the scheduler" in panel, panel[-3000:]
    assert job_id not in squeue_active("erin")
    print(f"node loss shown {lag:.1f} s after Slurm ended the job")
