"""What Slurm itself counted (``sstat``) beside the Job Lens figures, on the real dev Slurm
(jobacct_gather/linux, no slurmdbd, so no sacct): asked through the backend's status cache in
ONE sstat call per usage interval for every running job someone is looking at."""

from __future__ import annotations

import asyncio
import os
import pwd
import tempfile
import time

import pytest

from ink_spawner.backends.slurm import SlurmBackend
from ink_spawner.jobspec import JobSpec
from ink_spawner.jobstatus import JobState

from .conftest import SLURM_HUB_CONFIG, TIMEOUT_SCALE, cancel_test_jobs
from .test_workflow_api import CATALOGUE, FULL, api, token, wait_final

pytestmark = pytest.mark.slurm

BURN = "import time\nt = time.time()\nwhile time.time() - t < 90: pass\n"


def burn_spec(user="alice"):
    home = pwd.getpwnam(user).pw_dir
    return JobSpec(user=user, name="usage", command=("python3", "-c", BURN), env={"HOME": home},
                   workdir=home, output_path="/dev/null", cpus=1, memory_mb=500, walltime_s=300,
                   tags={"ink": "workflow", "user": user, "job": "usage-test"})


async def wait_until(predicate, timeout, message):
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{message} not reached within {timeout * TIMEOUT_SCALE}s")


async def test_one_sstat_per_interval_answers_every_running_job(unix_users, dev_slurm):
    backend = SlurmBackend(poll_interval=0.5, spawn_poll_interval=0.5, poll_jitter=0, usage_interval=2)
    cache = backend.status_cache
    jobs = [await backend.submit(burn_spec()) for _ in range(2)]
    try:
        for job_id in jobs:
            cache.watch(job_id)
        await wait_until(lambda: all((s := cache.get(j)) and s.state is JobState.RUNNING for j in jobs),
                         60, "both jobs running")
        assert cache.usage_queries == 0, "nobody looked: no sstat at all"
        started = time.monotonic()

        def both_busy():
            figures = [cache.usage(j) for j in jobs]  # looking registers interest
            return figures if all(f and f["cpu_s"] > 0 and f["rss_max"] > 0 for f in figures) else None

        figures = await wait_until(both_busy, 60, "sstat figures of both jobs")
        elapsed = time.monotonic() - started
        for f in figures:
            assert f["source"] == "sstat" and f["steps"] >= 1
            assert 1 * 1024 * 1024 < f["rss_max"] < 500 * 1024 * 1024  # a python3, under its limit
        # one call answers both jobs: their figures carry the same query time
        assert figures[0]["at"] == figures[1]["at"]
        # at most one sstat per usage interval (2 s), however often the figures were read
        assert cache.usage_queries <= elapsed / 2 + 2, (cache.usage_queries, elapsed)
        first = figures[0]["cpu_s"]
        later = await wait_until(lambda: (f := cache.usage(jobs[0])) and f["cpu_s"] >= first + 1 and f,
                                 30, "CPU time growing")
        # a busy loop on one core: CPU time cannot exceed the wall time since submission
        assert later["cpu_s"] <= time.monotonic() - started + 90
    finally:
        for job_id in jobs:
            cache.unwatch(job_id)
            await backend.cancel(job_id, "alice")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users, dev_slurm):
    from .harness import Hub, REPO
    config_dir = tempfile.mkdtemp(prefix="ink-usage-jupyter-config-")
    os.chmod(config_dir, 0o755)
    path = os.path.join(config_dir, "jupyter_server_config.py")
    with open(path, "w") as f:  # the portal's job API asks sstat every 2 s (30 s on a site)
        f.write("c.InkJobsApp.usage_interval = 2\n")
    os.chmod(path, 0o644)
    hub = Hub(tmp_path_factory.mktemp("usage-hub"), SLURM_HUB_CONFIG + f"""
c.InkSpawner.lens_interval = 1
c.Spawner.environment = {{"JUPYTER_CONFIG_PATH": {config_dir!r}}}
""", backend="slurm", catalogue=CATALOGUE).start()
    hub.start_and_wait("alice", "portal")
    yield hub
    for name in list(hub.user_model("alice").get("servers", {})):
        hub.api("DELETE", f"/users/alice/servers/{name}")
    hub.stop()
    cancel_test_jobs()


@pytest.mark.hub
def test_job_api_metrics_carry_sstat_figures_beside_job_lens(hub):
    from .conftest import wait_for
    tok = token(hub, "alice", FULL)
    job = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["python3", "-c", BURN], "cpus": 1,
                                                        "name": "usage"}).json()
    m = api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/metrics").json()
    assert m["scheduler"]["available"] is False and m["scheduler"]["source"] == "sstat"

    def figures():
        m = api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/metrics").json()
        s = m["scheduler"]
        return m if s["available"] and s["cpu_s"] >= 2 and s["rss_max"] > 0 else None

    m = wait_for(figures, timeout=60, interval=0.5, message="sstat figures in the job's metrics")
    s = m["scheduler"]
    assert s["source"] == "sstat" and s["steps"] >= 1 and s["at"] <= time.time()
    # plausible against Job Lens' own count of the same busy loop (both sample, at different times)
    lens_cpu = m["summary"]["cpu_seconds"]
    assert s["cpu_s"] <= lens_cpu + 10 and lens_cpu <= s["cpu_s"] + 10, (s, m["summary"])
    r = api(hub, "alice", tok, "DELETE", f"/jobs/{job['id']}")
    assert r.status_code == 202, r.text
    final = wait_final(hub, "alice", tok, job["id"])
    assert final["state"] == "cancelled"
    # the last figures seen while it ran outlive the job (sstat knows only running steps)
    after = api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/metrics").json()["scheduler"]
    assert after["available"] is True and after["cpu_s"] >= s["cpu_s"]
