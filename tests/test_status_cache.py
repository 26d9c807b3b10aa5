"""The shared status cache: one backend query per interval however many sessions are watched.

Runs real local processes through the real LocalBackend (no fake backend).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal

import pytest

from ink_spawner.backends import BackendError, JobState
from ink_spawner.backends.local import LocalBackend
from ink_spawner.backends.slurm import SlurmBackend
from ink_spawner.jobspec import JobSpec

from .harness import scaled


def sleep_spec(user="alice", seconds=60):
    home = pwd.getpwnam(user).pw_dir
    return JobSpec(user=user, name="jupyter", command=("sleep", str(seconds)), env={"HOME": home},
                   workdir=home, output_path="/dev/null")


@pytest.fixture
async def local_jobs(unix_users):
    backend = LocalBackend(poll_interval=0.5, spawn_poll_interval=0.2, poll_jitter=0.1)
    jobs = [await backend.submit(sleep_spec()) for _ in range(20)]
    yield backend, jobs
    for job_id in jobs:
        await backend.cancel(job_id, "alice")


async def test_one_query_per_interval_for_many_jobs(local_jobs):
    backend, jobs = local_jobs
    cache = backend.status_cache
    for job_id in jobs:
        cache.watch(job_id)
    await cache.fresh(jobs[0])
    loop = asyncio.get_running_loop()
    start, t0 = cache.queries, loop.time()
    await asyncio.sleep(2.0)
    made, elapsed = cache.queries - start, loop.time() - t0
    # 2 s at a 0.5 s interval (-10 % jitter): at most one query per 0.45 s for all 20 jobs (not
    # one per job); a loaded machine only makes fewer, and the cache does keep polling
    assert 1 <= made <= elapsed / 0.45 + 1, (made, elapsed)
    assert all(cache.get(j).state is JobState.RUNNING for j in jobs)


async def test_concurrent_fresh_requests_share_one_query(local_jobs):
    backend, jobs = local_jobs
    cache = backend.status_cache
    for job_id in jobs:
        cache.watch(job_id)
    await cache.fresh(jobs[0])
    before = cache.queries
    statuses = await asyncio.gather(*(cache.fresh(j) for j in jobs))
    assert all(s.state is JobState.RUNNING for s in statuses)
    assert cache.queries - before <= 2, "20 callers (a hub start-up) must share the query"


async def test_ended_job_is_reported_within_one_interval(local_jobs):
    backend, jobs = local_jobs
    cache = backend.status_cache
    ended = asyncio.get_running_loop().create_future()
    cache.watch(jobs[0], on_done=lambda status: ended.set_result(status))
    await cache.fresh(jobs[0])
    os.killpg(int(jobs[0].split(".")[0]), signal.SIGKILL)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    status = await asyncio.wait_for(ended, scaled(5))
    assert status.state is JobState.DONE
    # one interval (0.5 s + 10 % jitter) plus the query itself, stretched on a loaded machine
    assert loop.time() - t0 <= 0.5 * 1.1 + scaled(0.3)


async def test_pid_reuse_is_not_mistaken_for_the_session(local_jobs):
    backend, jobs = local_jobs
    pid = jobs[0].split(".")[0]
    statuses = await backend.query({f"{pid}.1", jobs[1]})
    assert statuses[f"{pid}.1"].state is JobState.DONE  # same pid, other start time
    assert statuses[jobs[1]].state is JobState.RUNNING


async def test_cancel_kills_the_whole_process_group(unix_users):
    backend = LocalBackend(stop_grace=2)
    home = pwd.getpwnam("alice").pw_dir
    spec = JobSpec(user="alice", name="jupyter", env={"HOME": home}, workdir=home,
                   output_path="/dev/null",
                   command=("/bin/sh", "-c", "sleep 300 & sleep 301 & wait"))
    job_id = await backend.submit(spec)
    pgid = int(job_id.split(".")[0])
    await asyncio.sleep(0.3)
    members = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid]
    assert len(members) >= 3
    owners = {os.stat(f"/proc/{p}").st_uid for p in members}
    assert owners == {pwd.getpwnam("alice").pw_uid}
    await backend.cancel(job_id, "alice")
    for _ in range(20):  # members die with the group; orphans are reaped by init shortly after
        left = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid]
        if not left:
            break
        await asyncio.sleep(0.1)
    assert not left


def _pgid(pid: int) -> int | None:
    """Process group of a live process (None for gone or zombie processes)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[2])


async def test_failed_query_keeps_last_known_status():
    """A scheduler hiccup must not declare sessions dead."""
    backend = SlurmBackend(squeue="/nonexistent/squeue", poll_interval=0.2)
    cache = backend.status_cache
    cache.watch("12345")
    assert await cache.fresh("12345", timeout=5) is None
    assert "not installed" in cache.last_error
    with pytest.raises(BackendError):
        await backend.query({"12345"})
    cache.unwatch("12345")
