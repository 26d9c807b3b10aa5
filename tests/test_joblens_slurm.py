"""Job Lens on the real Slurm: jobs submitted through the job API are sampled by the launcher
in front of their command (the dev Slurm has no cgroups: the /proc of the job's tree), and the
portal's metrics API shows it — CPU, memory, the summary after the end — to the owner only."""

from __future__ import annotations

import time

import pytest

from .conftest import SLURM_HUB_CONFIG, cancel_test_jobs, wait_for
from .harness import Hub
from .test_workflow_api import CATALOGUE, FULL, api, token, wait_final

pytestmark = [pytest.mark.slurm, pytest.mark.hub]

INTERVAL = 1.0  # seconds between samples in these tests (5 on a site)

BURN = "import time\nt = time.time()\nwhile time.time() - t < 30: pass\n"
ALLOC = ("import time\nx = bytearray(500 * 1024 * 1024)\n"
         "for i in range(0, len(x), 4096): x[i] = 1\ntime.sleep(6)\n")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users, dev_slurm):
    hub = Hub(tmp_path_factory.mktemp("joblens-hub"),
              SLURM_HUB_CONFIG + f"c.InkSpawner.lens_interval = {INTERVAL}\n",
              backend="slurm", catalogue=CATALOGUE).start()
    hub.start_and_wait("alice", "portal")
    yield hub
    for user in ("alice", "bob"):
        for name in list(hub.user_model(user).get("servers", {})):
            hub.api("DELETE", f"/users/{user}/servers/{name}")
    hub.stop()
    cancel_test_jobs()


def metrics(hub, tok, job_id, user="alice"):
    r = api(hub, user, tok, "GET", f"/jobs/{job_id}/metrics")
    assert r.status_code == 200, r.text
    return r.json()


def running(hub, tok, job_id):
    return wait_for(lambda: api(hub, "alice", tok, "GET", f"/jobs/{job_id}").json()["state"] == "running",
                    timeout=120, interval=0.3, message=f"job {job_id} running")


def test_cpu_burning_job_shows_one_core_within_two_intervals(hub):
    tok = token(hub, "alice", FULL)
    job = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["python3", "-c", BURN], "cpus": 1,
                                                        "name": "burn"}).json()
    running(hub, tok, job["id"])
    seen_running = time.monotonic()

    def busy():
        samples = metrics(hub, tok, job["id"])["samples"]
        return samples if samples and samples[-1]["cpu"] >= 85 else None

    samples = wait_for(busy, timeout=60, interval=0.2, message="a sample near 100 % CPU")
    # the scheduler reports "running" a little after the job starts: two intervals, with slack
    # for this loaded machine's Slurm poll (2 s) and the portal's refresh
    assert time.monotonic() - seen_running <= 2 * INTERVAL + 4, samples
    assert 85 <= samples[-1]["cpu"] <= 115, samples[-1]
    m = metrics(hub, tok, job["id"])
    assert m["source"] == "proc" and m["interval"] == INTERVAL
    assert m["summary"]["final"] is False
    r = api(hub, "alice", tok, "DELETE", f"/jobs/{job['id']}")
    assert r.status_code == 202, r.text
    final = wait_final(hub, "alice", tok, job["id"])
    assert final["state"] == "cancelled"


def test_memory_and_summary_after_the_end(hub):
    tok = token(hub, "alice", FULL)
    job = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["python3", "-c", ALLOC],
                                                        "memory": "2G", "name": "alloc"}).json()
    assert job["state"] == "pending"
    final = wait_final(hub, "alice", tok, job["id"], timeout=180)
    assert final["state"] == "completed", final
    m = metrics(hub, tok, job["id"])
    rss = max(s["rss"] for s in m["samples"])
    assert rss >= 500 * 1024 * 1024, f"the largest sampled RSS is {rss} bytes"
    s = m["summary"]
    assert s["final"] is True and s["exit_code"] == 0
    assert s["rss_peak"] >= 500 * 1024 * 1024
    assert 5 <= s["duration_s"] <= 120
    assert {"cpu_avg", "cpu_max", "cpu_p99", "rss_avg", "io_read", "io_write"} <= set(s)
    assert m["efficiency"].startswith("used ") and "of 1 core over" in m["efficiency"]
    # the samples file is private to alice
    import os
    import stat
    path = os.path.join(os.path.dirname(final["stdout_path"]), "metrics.jsonl")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_bob_cannot_read_alices_metrics(hub):
    alice = token(hub, "alice", FULL)
    job = api(hub, "alice", alice, "POST", "/jobs", json={"command": ["true"]}).json()
    wait_final(hub, "alice", alice, job["id"])
    bob = token(hub, "bob", FULL)
    r = api(hub, "alice", bob, "GET", f"/jobs/{job['id']}/metrics")
    assert r.status_code == 403, r.text
    r = api(hub, "alice", bob, "GET", "/sessions/portal/metrics")
    assert r.status_code == 403, r.text
    # alice's token without the read scope: 403 naming it
    plain = token(hub, "alice", ["access:servers!user"])
    r = api(hub, "alice", plain, "GET", f"/jobs/{job['id']}/metrics")
    assert r.status_code == 403 and "custom:ink:jobs:read" in r.json()["message"]
    # bad input: 400 naming the field; unknown job: 404
    assert api(hub, "alice", alice, "GET", f"/jobs/{job['id']}/metrics?limit=0").status_code == 400
    assert api(hub, "alice", alice, "GET", "/jobs/000000000000/metrics").status_code == 404
    assert api(hub, "alice", alice, "GET", "/sessions/..%2f..%2fetc/metrics").status_code in (400, 404)


def test_session_metrics_of_the_portal(hub):
    """The portal session itself runs under ink-session, which samples it."""
    tok = token(hub, "alice", FULL)
    m = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 and r.json()["samples"] else None)(
        api(hub, "alice", tok, "GET", "/sessions/portal/metrics")), timeout=30, message="portal samples")
    assert m["samples"][-1]["rss"] > 20 * 1024 * 1024  # a jupyter-server
    assert m["summary"]["final"] is False
