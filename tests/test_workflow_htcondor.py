"""The job API on the HTCondor backend: the portal submits through the user's submit helper.

The schedd is the FAKE one (tests/fake_schedd.py: HTCondor daemons cannot be installed here)
and the test plays the startd (it runs the matched job as its owner). Real: the hub, the
portal server and its job API, the submit helper run as the user, htcondor2.Submit, the 0600
environment file and its loader in the job.
"""

from __future__ import annotations

import os
import socket
import tempfile

import classad2
import pytest

from . import fake_schedd
from .condor_pool import FakePool
from .conftest import wait_for
from .harness import REPO
from .test_workflow_api import CATALOGUE, FULL, api, token

pytestmark = pytest.mark.hub


@pytest.fixture
def pool(unix_users):
    p = FakePool()
    yield p
    p.close()


def test_job_on_htcondor_runs_as_the_user_with_its_environment(pool, hub_factory):
    config_dir = tempfile.mkdtemp(prefix="ink-wf-jupyter-config-")
    os.chmod(config_dir, 0o755)
    # the portal's jupyter-server (as alice) opens the fake schedd too: a Python config file
    with open(os.path.join(config_dir, "jupyter_server_config.py"), "w") as f:
        f.write(pool.hub_config())
    os.chmod(os.path.join(config_dir, "jupyter_server_config.py"), 0o644)
    hub = hub_factory(pool.hub_config() + f"""
c.Spawner.environment = {{"PYTHONPATH": {str(REPO)!r}, "INK_FAKE_SCHEDD_STATE": {pool.state!r},
                         "JUPYTER_CONFIG_PATH": {config_dir!r}}}
""", backend="htcondor", catalogue=CATALOGUE)
    hub.start_and_wait("alice", "portal")  # the portal itself is on `local`
    tok = token(hub, "alice", FULL)
    r = api(hub, "alice", tok, "POST", "/jobs", json={
        "command": ["sh", "-c", 'echo "$GREETING from `id -un`"; echo oops >&2; exit 3'],
        "env": {"GREETING": "hello"}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["backend"] == "htcondor"
    # HTCondor would expand $( in arguments: refused with the reason (a script has no such limit)
    r = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["echo", "$(HOME)"]})
    assert r.status_code == 422 and "$(" in r.json()["message"]
    ad = pool.ad(job["backend_id"])
    assert ad["Owner"] == "alice"
    assert "hello" not in str(ad), "the job's environment stays out of the (public) job ad"
    assert api(hub, "alice", tok, "GET", f"/jobs/{job['id']}").json()["state"] == "pending"

    proc = pool.start_job(job["backend_id"], socket.gethostname())  # the startd runs it as alice
    assert proc.wait(30) == 3
    # the shadow's usage update: the job ad's figures reach the metrics through the status query
    fake_schedd._update(job["backend_id"], RemoteUserCpu=4.0, RemoteSysCpu=1.0, ResidentSetSize=2048,
                        MemoryUsage=classad2.ExprTree("((ResidentSetSize + 1023) / 1024)"), DiskUsage=64)

    def scheduler_figures():
        s = api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/metrics").json()["scheduler"]
        return s if s["available"] else None

    s = wait_for(scheduler_figures, timeout=30, message="job-ad usage in the job's metrics")
    assert (s["source"], s["cpu_s"], s["cpu_user_s"], s["cpu_sys_s"]) == ("job ad", 5.0, 4.0, 1.0)
    assert (s["rss"], s["memory_peak"], s["disk_usage"]) == (2 << 20, 2 << 20, 64 << 10)
    fake_schedd._update(job["backend_id"], JobStatus=4, ExitCode=3, RemoteUserCpu=6.0)  # ends
    final = wait_for(lambda: (lambda j: j if j["state"] in ("completed", "failed") else None)(
        api(hub, "alice", tok, "GET", f"/jobs/{job['id']}").json()), timeout=30, message="job ended")
    assert (final["state"], final["exit_code"]) == ("failed", 3)
    assert api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/stdout").text == "hello from alice\n"
    assert api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/stderr").text == "oops\n"
    # the ended job keeps the final figures of its ad
    s = api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/metrics").json()["scheduler"]
    assert s["available"] and s["cpu_s"] == 7.0

    second = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["sleep", "100"]}).json()
    r = api(hub, "alice", tok, "DELETE", f"/jobs/{second['id']}")
    assert r.status_code == 202 and r.json()["state"] == "cancelled", r.text
    assert pool.ad(second["backend_id"])["JobStatus"] == 3  # removed through the helper, as alice
    hub.stop_server("alice", "portal")
