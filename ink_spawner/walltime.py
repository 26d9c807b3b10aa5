"""Activity-aware wall time: an active session gets more time before the scheduler ends it.

Interactive sessions are batch jobs with a wall time. A physicist in the middle of an analysis
should not lose the session at the hour mark, and an idle session should not hold cores longer
than it asked for. So, at each poll of a running session: when less than ``when_left`` is left
and the session was used within ``active_within``, the hub asks the backend to add
``extend_by`` — never beyond ``max_walltime`` in total, nor beyond the limit of the user's
profile. Off unless ``extend_by`` is set (ink_hub sets it from the catalogue's
``site.walltime_extension``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from traitlets import Unicode, validate
from traitlets.config import LoggingConfigurable

from .jobspec import JobSpecError, parse_walltime_s
from .jobstatus import BackendError, JobStatus


def hms(seconds: int) -> str:
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class WalltimeExtension(LoggingConfigurable):
    """The wall-time extension rule of one session (the spawner owns one)."""

    extend_by = Unicode(
        "",
        help="""Add this much (e.g. '4:00:00') to a running session's wall time when it is nearly
        up and the session was used recently. '' turns extension off. The hub asks the
        scheduler to raise the limit (Slurm: the hub must be an operator).""",
    ).tag(config=True)
    when_left = Unicode("0:30:00", help="Extend when less wall time than this is left.").tag(config=True)
    active_within = Unicode(
        "1:00:00", help="Extend only if the session had activity within this time."
    ).tag(config=True)
    max_walltime = Unicode(
        "72:00:00", help="A session's wall time is never extended beyond this in total."
    ).tag(config=True)

    @validate("when_left", "active_within", "max_walltime", "extend_by")
    def _validate_times(self, proposal):
        if proposal.value or proposal.trait.name != "extend_by":
            try:
                parse_walltime_s(proposal.value, proposal.trait.name)
            except JobSpecError as e:
                raise ValueError(str(e)) from None
        return proposal.value

    _extended_to = 0  # the limit we last asked for (the scheduler's answer may lag)

    def reset(self) -> None:
        """A new job of the session: nothing asked for yet."""
        self._extended_to = 0

    @property
    def enabled(self) -> bool:
        return bool(self.extend_by)

    def new_limit(self, limit: int, used: int, profile_max: int | None, idle_s: float) -> int | None:
        """The wall time to ask for now, or None to leave the job as it is."""
        if limit < self._extended_to:
            return None  # our last extension is not in the scheduler's answer yet
        if limit - used > parse_walltime_s(self.when_left):
            return None
        maximum = min(parse_walltime_s(self.max_walltime), profile_max or limit)
        new = min(limit + parse_walltime_s(self.extend_by), maximum)
        if new <= limit or idle_s > parse_walltime_s(self.active_within):
            return None
        return new

    async def maybe_extend(self, spawner, status: JobStatus) -> None:
        """Apply the rule to one poll of a running session."""
        limit, used = status.time_limit_s, status.time_used_s
        if not self.enabled or limit is None or used is None:
            return
        last = getattr(spawner.orm_spawner, "last_activity", None) if spawner.orm_spawner else None
        if last is None:
            return
        idle = (datetime.now(timezone.utc).replace(tzinfo=None) - last.replace(tzinfo=None)).total_seconds()
        new = self.new_limit(limit, used, spawner.job_max_walltime or None, idle)
        if new is None:
            if limit - used <= parse_walltime_s(self.when_left) and limit >= self._extended_to:
                self.log.info("%s: job %s has %ds left and was idle %ds: not extended",
                              spawner._log_name, spawner.job_id, limit - used, idle)
            return
        try:
            await spawner.backend_instance.extend(spawner.job_id, spawner.job_user or spawner.user.name, new)
        except BackendError as e:
            self.log.warning("%s: could not extend job %s: %s", spawner._log_name, spawner.job_id, e)
            return
        self._extended_to = new
        self.log.info("%s: extended job %s from %s to %s (active %ds ago)", spawner._log_name,
                      spawner.job_id, hms(limit), hms(new), idle)
