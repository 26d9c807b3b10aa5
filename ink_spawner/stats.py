"""One shared sampler of the scheduler's queue per backend, for the platform overview.

Every ``interval`` seconds it asks the backend once for the number of running and queued jobs
per partition (or accounting group) and keeps 24 hours of samples in memory. Page views read
the samples; they never query the scheduler.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from .jobstatus import BackendError
from .metrics import sessions_by, timed_query


class QueueSampler:
    def __init__(self, backend, interval: float = 300.0, keep_seconds: float = 24 * 3600):
        self.backend = backend
        self.interval = interval
        self.samples: deque[tuple[float, dict[str, dict[str, int]]]] = deque(
            maxlen=max(2, int(keep_seconds // interval) + 1))
        #: (time, {(app, experiment): running sessions}) at each sample, for the statistics page:
        #: the same tick as the queue, so the hub keeps one sampler, not two
        self.sessions: deque[tuple[float, dict[tuple[str, str], int]]] = deque(maxlen=self.samples.maxlen)
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start sampling (idempotent); the first sample is taken at once."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    #: at most this many partitions/groups are kept per sample; the rest are summed as "(other)"
    max_groups = 20

    async def sample_now(self) -> None:
        # sessions are the hub's own state: recorded even when the scheduler does not answer
        self.sessions.append((time.time(), dict(sessions_by("app", "experiment", backend=self.backend.name))))
        try:
            with timed_query(self.backend.name, "queue"):
                summary = await self.backend.queue_summary()
        except BackendError as e:
            self.last_error = str(e)
            return
        self.last_error = None
        self.samples.append((time.time(), self.capped(summary)))

    def capped(self, summary: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """The largest groups, and the rest folded together: group names on HTCondor are chosen
        by whoever submits, and must not be able to swamp the page or the hub's memory."""
        ranked = sorted(summary.items(), key=lambda kv: -(kv[1]["running"] + kv[1]["pending"]))
        kept = dict(ranked[: self.max_groups])
        rest = ranked[self.max_groups:]
        if rest:
            kept["(other)"] = {"running": sum(c["running"] for _, c in rest),
                               "pending": sum(c["pending"] for _, c in rest)}
        return kept

    async def _run(self) -> None:
        while True:
            await self.sample_now()
            await asyncio.sleep(self.interval)

    def latest(self) -> dict[str, dict[str, int]]:
        return self.samples[-1][1] if self.samples else {}

    def series(self, group: str) -> list[tuple[float, int, int]]:
        """(time, running, pending) of one partition/group over the kept window."""
        return [(t, s.get(group, {}).get("running", 0), s.get(group, {}).get("pending", 0))
                for t, s in self.samples]


_samplers: dict[int, QueueSampler] = {}


def sampler_for(backend) -> QueueSampler:
    """The one sampler of a backend instance (interval: its ``queue_sample_interval``)."""
    key = id(backend)
    if key not in _samplers:
        _samplers[key] = QueueSampler(backend, backend.queue_sample_interval)
    return _samplers[key]
