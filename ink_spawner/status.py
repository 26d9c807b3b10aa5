"""One status cache per backend: one scheduler query per interval, for every session.

Spawners never query the scheduler themselves. They register the jobs they care about with
:meth:`StatusCache.watch` and read :meth:`StatusCache.get`; a single background task asks the
backend about all watched jobs at once, every ``poll_interval`` seconds (``spawn_poll_interval``
while a session is starting), with jitter as in tornado's ``PeriodicCallback``. Callers that
need a fresh answer (hub start-up, a session just reported its port) share the next query
instead of issuing their own.

Scheduler-reported usage (Slurm's ``sstat``) rides on the same loop: whoever reads
:meth:`StatusCache.usage` of a job registers interest, and at most once per
``usage_interval`` the loop asks the backend about every running job someone looked at
recently, in one query. Nobody looking costs nothing.
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
        self._usage: dict[str, dict] = {}  # job id -> last figures of the usage query
        self._usage_wanted: dict[str, float] = {}  # job id -> when someone last asked
        self._usage_due = 0.0  # monotonic time before which no usage query is made
        self.usage_queries = 0

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
            self._usage.pop(job_id, None)
            self._usage_wanted.pop(job_id, None)
        else:
            self._watched[job_id] -= 1

    # ---- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobStatus | None:
        """The last known status, or None if no query has seen the job yet."""
        return self._statuses.get(job_id)

    def usage(self, job_id: str, want: bool = True) -> dict | None:
        """What the scheduler counted for a job, or None if nothing yet.

        From the job's status where the status answer carries it (HTCondor), else the last
        answer of the backend's batched usage query (Slurm ``sstat``). With ``want`` the job
        is included in the next usage queries (for a few intervals after the last call)."""
        status = self._statuses.get(job_id)
        if status is not None and status.usage:
            return dict(status.usage)
        if want and self.backend.usage_query and job_id in self._watched:
            self._usage_wanted[job_id] = time.monotonic()
        figures = self._usage.get(job_id)
        return dict(figures) if figures is not None else None

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
            await self._query_usage()  # after the states are out: never delays a waiting spawn
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
            self._update_statuses(job_ids, statuses)
        finally:
            self._generation += 1
            self._changed.set()
            self._changed = asyncio.Event()

    def _update_statuses(self, job_ids: set[str], statuses: dict[str, JobStatus]) -> None:
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

    async def _query_usage(self) -> None:
        """One usage query for every running job someone asked about lately, if it is due."""
        if not self.backend.usage_query or not self._usage_wanted:
            return
        now = time.monotonic()
        if now < self._usage_due:
            return
        horizon = max(60.0, 3 * self.backend.usage_interval)  # nobody looked for that long
        for job_id, asked in list(self._usage_wanted.items()):
            if now - asked > horizon or job_id not in self._watched:
                del self._usage_wanted[job_id]
        running = {job_id for job_id in self._usage_wanted
                   if (s := self._statuses.get(job_id)) is not None and s.state is JobState.RUNNING}
        if not running:
            return
        self._usage_due = now + self.backend.usage_interval
        self.usage_queries += 1
        try:
            with timed_query(self.backend.name, "usage"):
                figures = await self.backend.usage(running)
        except BackendError as e:  # keep the last figures; the states are not affected
            self.log.warning("Usage query of %s backend failed: %s", self.backend.name, e)
            return
        except Exception:
            self.log.exception("Usage query of %s backend failed", self.backend.name)
            return
        stamp = round(time.time(), 3)
        for job_id, values in figures.items():
            if job_id in self._watched:
                self._usage[job_id] = {"source": self.backend.usage_source, **values, "at": stamp}
