"""Job Lens on the real Slurm: jobs submitted through the job API are sampled by the launcher
in front of their command (the dev Slurm has no cgroups: the /proc of the job's tree), and the
portal's metrics API shows it — CPU, memory, the summary after the end — to the owner only."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from .conftest import SLURM_HUB_CONFIG, cancel_test_jobs, scaled, wait_for
from .harness import Hub
from .test_workflow_api import CATALOGUE, FULL, api, token, wait_final

pytestmark = [pytest.mark.slurm, pytest.mark.hub]

INTERVAL = 1.0  # seconds between samples in these tests (5 on a site)

BURN = "import time\nt = time.time()\nwhile time.time() - t < 120: pass\n"
TICK = os.sysconf("SC_CLK_TCK")
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


def find_process(marker: str) -> int | None:
    """The pid of the process ``python3 -c "# <marker>..."`` (the job's burner itself, not the
    launcher or the batch script whose command lines carry the same text)."""
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0") if entry.isdigit() else []
        except OSError:
            continue
        if len(argv) >= 3 and argv[1] == b"-c" and argv[2].startswith(f"# {marker}".encode()):
            return int(entry)
    return None


def cpu_now(pid: int) -> tuple[float, float]:
    """(wall time, utime + stime in seconds) of one process, read straight from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    return time.time(), cpu


def test_cpu_burning_job_is_sampled_as_the_cpu_it_really_got(hub):
    """The sampler's figures against the CPU time the kernel accounted to the job's process
    over the same window. Not against "100 %": on a loaded machine (CI, stress-ng) a burner
    gets what the scheduler gives it, and the figures must say exactly that."""
    marker = f"joblens-burn-{uuid.uuid4().hex}"
    tok = token(hub, "alice", FULL)
    job = api(hub, "alice", tok, "POST", "/jobs", json={
        "command": ["python3", "-c", f"# {marker}\n{BURN}"], "cpus": 1, "name": "burn"}).json()
    running(hub, tok, job["id"])
    seen_running = time.monotonic()

    def busy():
        samples = metrics(hub, tok, job["id"])["samples"]
        return samples if samples and samples[-1]["cpu"] > 0 else None

    samples = wait_for(busy, timeout=60, interval=0.2, message="a sample of the busy job")
    # the scheduler reports "running" a little after the job starts: two intervals, plus the
    # Slurm poll (2 s) and the portal's refresh, stretched on a loaded machine
    assert time.monotonic() - seen_running <= 2 * INTERVAL + scaled(4), samples
    pid = wait_for(lambda: find_process(marker), 10, message="the burner's process")

    # a window of at least five intervals, bracketed by two readings of /proc/PID/stat
    a_t, a_cpu = cpu_now(pid)
    margin = scaled(0.25)  # the sampler reads /proc a moment before it stamps the sample

    def window_sampled():
        got = metrics(hub, tok, job["id"])["samples"]
        return got if got[-1]["t"] >= a_t + margin + 5 * INTERVAL else None

    samples = wait_for(window_sampled, timeout=60, interval=0.2, message="five more samples")
    b_t, b_cpu = cpu_now(pid)
    window = [s for s in samples if a_t + margin <= s["t"] <= b_t]
    assert len(window) >= 4, (a_t, b_t, samples[-8:])
    first, last = window[0], window[-1]
    sampled = last["cpu_s"] - first["cpu_s"]
    true = b_cpu - a_cpu  # the whole bracket: it holds the sampled window
    # (1) never more than the process really got (two ticks and the rounding of cpu_s)
    assert sampled <= true + 2 / TICK + 0.002, (sampled, true, window)
    # (2) never less than it got minus what it could have used (at most one core) in the
    #     bracket's edges outside the window
    edges = (first["t"] - a_t) + (b_t - last["t"]) + margin
    assert sampled >= true - edges - 2 / TICK - 0.002, (sampled, true, edges, window)
    assert true > 0, "the burner got no CPU at all in the window"
    print(f"window {last['t'] - first['t']:.1f} s: sampled {sampled:.2f} CPU s, /proc {true:.2f} CPU s "
          f"over {b_t - a_t:.1f} s")
    # (3) the percentages shown are those CPU seconds over the time between samples
    shown = sum(s["cpu"] / 100 * (s["t"] - prev["t"]) for prev, s in zip(window, window[1:]))
    span = last["t"] - first["t"]
    assert abs(shown - sampled) <= 0.1 * span + scaled(0.05), (shown, sampled, window)
    assert all(0 <= s["cpu"] <= 100 * 1.1 + 100 * scaled(0.05) for s in window), window
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
