"""What a job is doing: the value types shared by the backends and the status cache.

:class:`~ink_spawner.jobspec.JobSpec` says what to run; :class:`JobStatus` says what the
scheduler last reported about it. Both the backend interface (:mod:`ink_spawner.backends.base`)
and the one status cache (:mod:`ink_spawner.status`) import these, and this module imports
neither, so the two never import each other back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


#: how the end states schedulers report (lower case, e.g. Slurm's) read to a user
END_REASONS = {
    "out_of_memory": "out of memory: it used more memory than it asked for (ask for more)",
    "node_fail": "its node failed or lost contact with the scheduler",
    "timeout": "its wall time ran out",
    "deadline": "its deadline passed",
    "preempted": "preempted by a job of higher priority",
    "boot_fail": "its node failed to boot",
    "cancelled": "cancelled",
    "failed": "failed (non-zero exit code)",
    "completed": "completed",
}


class BackendError(RuntimeError):
    """The scheduler refused a request or did not answer; the message is shown to the user."""


class JobState(enum.Enum):
    PENDING = "pending"  # queued, or allocated and booting
    RUNNING = "running"
    DONE = "done"  # ended: completed, failed, cancelled, timed out, or no longer known

    @property
    def active(self) -> bool:
        return self is not JobState.DONE


@dataclass(frozen=True)
class JobStatus:
    """One job as the last scheduler query saw it."""

    job_id: str
    state: JobState
    node: str | None = None  # where it runs; the only source of a session's host
    reason: str | None = None  # why it is pending, or how it ended
    position: int | None = None  # 1-based place among pending jobs of its partition
    pending_total: int | None = None
    expected_start: str | None = None
    partition: str | None = None
    exit_code: int | None = None
    settled: bool = True  # False while an ended job is still in the scheduler (completing, held)
    time_limit_s: int | None = None  # the job's wall time as the scheduler enforces it now
    time_used_s: int | None = None  # how long it has been running
    #: what the scheduler itself counted, where its status answer carries it (HTCondor's job
    #: ad: cpu_s, rss, memory_peak, disk_usage ...); Slurm's come from a separate batched
    #: query (:meth:`~ink_spawner.backends.base.Backend.usage`). Not part of equality.
    usage: dict | None = field(default=None, compare=False)

    def describe(self) -> str:
        """A sentence for progress messages."""
        if self.state is JobState.PENDING:
            parts = [f"Job {self.job_id} is queued"]
            if self.partition:
                parts[0] += f" in partition {self.partition}"
            if self.position:
                parts.append(f"position {self.position} of {self.pending_total}")
            if self.reason and self.reason != "None":
                parts.append(f"reason: {self.reason}")
            if self.expected_start:
                parts.append(f"expected start {self.expected_start}")
            return ", ".join(parts)
        if self.state is JobState.RUNNING:
            return f"Job {self.job_id} is running on {self.node}"
        reason = END_REASONS.get(self.reason or "", self.reason)
        detail = f" ({reason})" if reason else ""
        return f"Job {self.job_id} has ended{detail}"
