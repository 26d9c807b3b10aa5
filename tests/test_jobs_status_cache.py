"""The job API's states come from the backend's one status cache: however many requests (the
Jobs page polls up to 20 rows every 3 s, each with its Job Lens figures), the scheduler is
asked once per interval. Real jobs on the local backend, in-process; the backend's query is
counted where it is called."""

from __future__ import annotations

import asyncio
import logging
import time

from ink_files_ext.jobs.service import JobService
from ink_files_ext.jobs.store import ACTIVE, JobStore
from ink_spawner.validator import check_job

from .test_workflow_unit import profile

INTERVAL = 0.5


def service(tmp_path) -> JobService:
    prof = profile("local", {"default": {"title": "Everyone", "defaults": {"cpus": 1, "memory": "1G", "gpus": 0,
                                                                          "walltime": "1:00:00"},
                                         "limits": {"cpus": 2, "memory": "2G", "gpus": 0, "walltime": "2:00:00"},
                                         "routing": {}, "images": {}, "default_image": None}})
    return JobService(owner="tester", server_name="portal", home=str(tmp_path), profile=prof,
                      store=JobStore(str(tmp_path / "jobs")), log=logging.getLogger("test"),
                      job_path="/usr/bin:/bin", status_interval=INTERVAL)


def count_queries(backend) -> list:
    calls = []
    real = backend.query

    async def counted(job_ids):
        calls.append((time.monotonic(), set(job_ids)))
        return await real(job_ids)

    backend.query = counted
    return calls


async def test_many_requests_share_one_status_query_per_interval(tmp_path):
    jobs = service(tmp_path)
    calls = count_queries(jobs.backend)
    records = []
    for i in range(3):
        req = check_job(jobs.profile, {"name": f"sleeper{i}", "command": ["sleep", "60"]}, home=str(tmp_path))
        records.append(await jobs.submit(req))
    try:
        # the page's first poll: 20 concurrent requests (list + per-job figures) -> one query
        results = await asyncio.gather(*(jobs.refresh([records[i % 3]]) for i in range(20)))
        assert {r[0]["state"] for r in results} == {"running"}
        assert len(calls) == 1 and calls[0][1] == {r["backend_id"] for r in records}  # all jobs at once
        # then 3 s of polling, a request every 50 ms: one query per interval, not per request
        start, requests = time.monotonic(), 0
        while time.monotonic() - start < 3:
            await jobs.refresh(records)
            await jobs.refresh([records[0]])
            requests += 2
            await asyncio.sleep(0.05)
        queried = len(calls) - 1
        assert requests > 60 and queried <= 3 / (INTERVAL * 0.9) + 2, (requests, queried)
        # the states are still followed: a job killed outside the API is seen ended within an interval
        (killed,) = await jobs.refresh([records[2]])
        await jobs.backend.cancel(killed["backend_id"], "tester")
        deadline = time.monotonic() + 10
        while (await jobs.refresh([killed]))[0]["state"] in ACTIVE and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert (await jobs.refresh([killed]))[0]["state"] not in ACTIVE
    finally:
        for r in records:
            await jobs.backend.cancel(r["backend_id"], "tester")
    # ended jobs are no longer watched: the cache stops asking
    for r in records:
        (r,) = await jobs.refresh([r], fresh=True)
        assert r["state"] not in ACTIVE
    settled = len(calls)
    await asyncio.sleep(INTERVAL * 3)
    assert len(calls) == settled
