"""InkSpawner on the HTCondor backend through a real hub + proxy.

The schedd is the FAKE one (tests/fake_schedd.py: HTCondor daemons cannot be installed here);
the test plays negotiator and startd, really running the matched job's command as its owner
with the job ad's environment. Everything else is real: the hub, the proxy, the submit helper
run as the user, htcondor2.Submit, classad2, ink-session reading its 0600 env file, JupyterLab.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from . import fake_schedd
from .condor_pool import FakePool
from .conftest import scaled, wait_for

pytestmark = pytest.mark.hub

CONFIG = """
c.HTCondorBackend.poll_interval = 1
c.HTCondorBackend.spawn_poll_interval = 0.3
c.InkSpawner.poll_interval = 1
"""


@pytest.fixture
def pool(unix_users):
    p = FakePool()
    yield p
    p.close()


def alice_jobs(pool, status=None):
    constraint = 'Owner == "alice"' + (f" && JobStatus == {status}" if status else "")
    return [f"{ad['ClusterId']}.{ad['ProcId']}" for ad in pool.ads(constraint)]


def test_session_on_htcondor_end_to_end(pool, hub_factory):
    hub = hub_factory(pool.hub_config() + CONFIG, backend="htcondor")
    spawn = threading.Thread(target=hub.request_server, args=("alice", "jupyter"))
    spawn.start()
    job_id = wait_for(lambda: next(iter(alice_jobs(pool, status=1)), None), 20, message="job idle")
    fake_schedd.set_idle_reason(job_id, "no machine matches Requirements")
    wait_for(lambda: "no machine matches Requirements" in hub.log_text(), 10,
             message="idle reason shown in progress")
    pool.start_job(job_id, socket.gethostname())  # the startd runs it as alice
    spawn.join()
    hub.wait_ready("alice", "jupyter", 60)
    assert hub.spawner_state("alice", "jupyter")["job_id"] == job_id
    token = hub.user_token("alice")
    r = requests.get(f"{hub.url}/user/alice/jupyter/api/status",
                     headers={"Authorization": f"token {token}"}, timeout=10)
    assert r.status_code == 200
    log = hub.log_text()
    assert f"Job {job_id} is running on {socket.gethostname()}" in log
    hub.stop_server("alice", "jupyter")
    assert pool.ad(job_id)["JobStatus"] == 3  # removed through the helper, as alice
    pool.reap_removed()


def test_held_job_fails_the_spawn_with_the_hold_reason_and_is_removed(pool, hub_factory):
    hub = hub_factory(pool.hub_config() + CONFIG, backend="htcondor")
    result = {}
    spawn = threading.Thread(target=lambda: result.update(r=hub.request_server("alice", "jupyter")))
    spawn.start()
    job_id = wait_for(lambda: next(iter(alice_jobs(pool, status=1)), None), 20, message="job idle")
    t0 = time.monotonic()
    fake_schedd.set_held(job_id, "Failed to initialize user log to /home/alice/nowhere/log")
    spawn.join()
    r = result["r"]
    if r.status_code == 202:
        message = hub.progress("alice", "jupyter")[-1]["message"]
    else:
        message = r.json()["message"]
    assert "held: Failed to initialize user log" in message
    # noticed at the next spawn poll (0.3 s), not at start_timeout (600 s)
    assert time.monotonic() - t0 < scaled(10)
    wait_for(lambda: pool.ad(job_id)["JobStatus"] == 3, 10, message="held job removed")
    assert hub.server("alice", "jupyter") is None


def test_running_session_that_gets_held_is_noticed_and_removed(pool, hub_factory):
    hub = hub_factory(pool.hub_config() + CONFIG, backend="htcondor")
    spawn = threading.Thread(target=hub.request_server, args=("bob", "jupyter"))
    spawn.start()
    job_id = wait_for(lambda: next(iter(
        f"{a['ClusterId']}.{a['ProcId']}" for a in pool.ads('Owner == "bob" && JobStatus == 1')), None),
        20, message="job idle")
    pool.start_job(job_id, socket.gethostname())
    spawn.join()
    hub.wait_ready("bob", "jupyter", 60)
    fake_schedd.set_held(job_id, "Job exceeded its memory request")
    waited = hub.wait_stopped("bob", "jupyter", timeout=15)
    # one status interval (1 s, InkSpawner.poll_interval 1 s) plus the removal, stretched on a
    # loaded machine
    assert waited < 2 + scaled(3), f"noticed after {waited:.1f} s"
    assert pool.ad(job_id)["JobStatus"] == 3, "a held job must not stay in the queue"
    pool.reap_removed()
