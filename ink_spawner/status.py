"""One status cache per backend: one scheduler query per interval, for every session.

Spawners never query the scheduler themselves. They register the jobs they care about with
:meth:`StatusCache.watch` and read :meth:`StatusCache.get`; a single background task asks the
backend about all watched jobs at once, every ``poll_interval`` seconds (``spawn_poll_interval``
while a session is starting), with jitter as in tornado's ``PeriodicCallback``. Callers that
need a fresh answer (hub start-up, a session just reported its port) share the next query
instead of issuing their own.
"""

from __future__ import annotations

import asyncio
import random
import time

from .jobstatus import BackendError, JobState, JobStatus
from .metrics import timed_query


class StatusCache:
    def __init__(self, backend):
        self.backend = backend
        self.log = backend.log
        self._statuses: dict[str, JobStatus] = {}
        self._watched: dict[str, int] = {}  # job id -> number of watchers
        self._on_done: dict[str, list] = {}  # job id -> callbacks for when it ends
        self._starting: dict[str, int] = {}  # job ids of sessions being spawned
        self._changed = asyncio.Event()  # set after each completed query
        self._wake = asyncio.Event()  # ask the loop to query now
        self._loop_task: asyncio.Task | None = None
        self._started = 0  # queries begun
        self._generation = 0  # queries completed
        self.last_error: str | None = None
        self.last_query_at: float | None = None
        self.queries = 0  # total scheduler queries made (benchmarks and tests read it)

    # ---- registration ----------------------------------------------------------------------

    def watch(self, job_id: str, starting: bool = False, on_done=None) -> None:
        """Include a job in every query. ``on_done(status)`` is called once when it is seen ended,
        so a dead session is noticed within one interval, not one interval plus a hub poll."""
        self._watched[job_id] = self._watched.get(job_id, 0) + 1
        if on_done is not None:
            self._on_done.setdefault(job_id, []).append(on_done)
        if starting:
            self._starting[job_id] = self._starting.get(job_id, 0) + 1
        self._ensure_loop()
        if starting:
            self._wake.set()

    def done_starting(self, job_id: str) -> None:
        if self._starting.get(job_id, 0) <= 1:
            self._starting.pop(job_id, None)
        else:
            self._starting[job_id] -= 1

    def unwatch(self, job_id: str) -> None:
        self.done_starting(job_id)
        if self._watched.get(job_id, 0) <= 1:
            self._watched.pop(job_id, None)
            self._statuses.pop(job_id, None)
            self._on_done.pop(job_id, None)
        else:
            self._watched[job_id] -= 1

    # ---- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobStatus | None:
        """The last known status, or None if no query has seen the job yet."""
        return self._statuses.get(job_id)

    async def wait_for_update(self, timeout: float | None = None) -> bool:
        """Wait until the next query completes; False on timeout."""
        generation = self._generation
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._generation == generation:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def fresh(self, job_id: str, timeout: float | None = None) -> JobStatus | None:
        """A status from a query that started after this call, shared with other callers.

        Many spawners polled at once (hub start-up) therefore cost one query, not many.
        """
        target = self._started + 1
        self._ensure_loop()
        self._wake.set()
        deadline = time.monotonic() + (timeout or self.backend.command_timeout * 2)
        while self._generation < target:
            if not await self.wait_for_update(deadline - time.monotonic()):
                break
        return self.get(job_id)

    # ---- the loop ---------------------------------------------------------------------------

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.ensure_future(self._run())

    def _interval(self) -> float:
        base = self.backend.spawn_poll_interval if self._starting else self.backend.poll_interval
        jitter = self.backend.poll_jitter
        return max(0.05, base * (1 + jitter * (random.random() - 0.5) * 2))

    async def _run(self) -> None:
        while self._watched:
            self._wake.clear()  # a wake-up during the query triggers the next one at once
            await self._query_once()
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval())
            except TimeoutError:
                pass
        self._loop_task = None

    async def _query_once(self) -> None:
        job_ids = set(self._watched)
        if not job_ids:
            return
        self._started += 1
        try:
            self.queries += 1
            with timed_query(self.backend.name, "status"):  # /hub/metrics: duration and errors
                statuses = await self.backend.query(job_ids)
        except BackendError as e:
            # keep the last known statuses: a scheduler hiccup must not kill sessions
            self.last_error = str(e)
            self.log.warning("Status query of %s backend failed: %s", self.backend.name, e)
        except Exception:
            self.last_error = "status query failed"
            self.log.exception("Status query of %s backend failed", self.backend.name)
        else:
            self.last_error = None
            self.last_query_at = time.monotonic()
            for job_id in job_ids:
                if job_id in self._watched:
                    status = statuses.get(
                        job_id, JobStatus(job_id, JobState.DONE, reason="no longer known")
                    )
                    self._statuses[job_id] = status
                    if status.state is JobState.DONE:
                        for callback in self._on_done.pop(job_id, []):
                            try:
                                callback(status)
                            except Exception:
                                self.log.exception("on_done callback for job %s failed", job_id)
        finally:
            self._generation += 1
            self._changed.set()
            self._changed = asyncio.Event()
