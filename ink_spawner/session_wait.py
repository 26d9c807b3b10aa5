"""Waiting for a submitted session: the job's port report and the scheduler's view of the job.

Two things must come together before the hub can route to a session: the job reports its port
(pushed by ``ink-session`` to the hub's callback, see :meth:`InkSpawner.report_port`), and the
scheduler says the job runs on a node — the host always comes from the scheduler, never from
the job. Meanwhile every change the status cache sees becomes a progress message, and a job
that ends first fails the spawn with the end of its output. Nothing here asks the scheduler
itself: it waits on the backend's one status cache.
"""

from __future__ import annotations

import asyncio

from jupyterhub.spawner import SpawnException

from .jobstatus import END_REASONS, JobState


async def wait_for_session(backend, job_id: str, port_future: asyncio.Future, app_title: str,
                           emit, read_output, on_running=None) -> tuple[str, int]:
    """(host, port) of the running session.

    ``emit(progress, message)`` reports progress; ``read_output()`` returns the end of the
    job's output for the error message when the job dies first; ``on_running(status)`` is
    called once, when the job is first seen running (the end of its queue wait, for metrics)."""
    cache = backend.status_cache
    last = last_error = None
    seen_running = False

    def running(status):
        nonlocal seen_running
        if on_running is not None and not seen_running and status is not None \
                and status.state is JobState.RUNNING:
            seen_running = True
            on_running(status)

    while True:
        status = cache.get(job_id)
        running(status)
        if cache.last_error and cache.last_error != last_error:
            emit(20, f"Scheduler unreachable, retrying: cannot ask {backend.name} about job {job_id}: "
                     f"{cache.last_error}")
        last_error = cache.last_error
        if status is not None and status.describe() != last:
            last = status.describe()
            if status.state is JobState.PENDING:
                emit(30, last)
            elif status.state is JobState.RUNNING:
                emit(60, f"{last}; starting {app_title}")
        if status is not None and status.state is JobState.DONE:
            tail = await read_output()
            reason = END_REASONS.get(status.reason or "", status.reason)
            message = f"Job {job_id} ended before {app_title} started ({reason})."
            if tail.strip():
                message += "\nLast lines of its output:\n" + tail.strip()[-1500:]
            raise SpawnException(message, reason="job_died", status_code=500)
        if port_future.done():
            port = port_future.result()
            if status is None or status.state is not JobState.RUNNING:
                status = await cache.fresh(job_id)  # the host must come from the scheduler
                running(status)
            if status is not None and status.state is JobState.RUNNING:
                return backend.host_for(status), port
            if status is not None and status.state is JobState.DONE:
                continue  # reported, then died: fails with its output on the next turn
            await cache.wait_for_update(timeout=backend.spawn_poll_interval * 2)
            continue
        update = asyncio.ensure_future(cache.wait_for_update())
        try:
            await asyncio.wait({update, port_future}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            update.cancel()
