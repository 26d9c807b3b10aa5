"""Local backend: each session is a process group on the hub's own machine.

The embedded default for one-machine use and the quickstart. When the hub is root, sessions
run as their user (uid, gid and groups set by the kernel at exec, with no runuser parent that
would SIGKILL the server two seconds after a stop); otherwise (the demo) they run as the hub's
own user.
A job id is ``<pid>.<start time>`` so that a re-used pid after a hub restart is never mistaken
for the session.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal

from traitlets import Float, Unicode, default

from ..jobspec import JobSpec
from ..jobstatus import BackendError, JobState, JobStatus
from .base import Backend, minimal_env

# A constant program, not built from input: append the job's output to the file named in the
# environment, then become the session's argv.
_LAUNCH = 'exec "$@" >>"$INK_JOB_OUTPUT" 2>&1'


def _start_time(pid: int) -> str | None:
    """Kernel start time of a live, non-zombie process (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


class LocalBackend(Backend):
    """Sessions as local processes."""

    name = "local"

    node_name = Unicode(
        "localhost", help="Node name reported for local sessions (shown in progress messages)."
    ).tag(config=True)

    @default("session_ip")
    def _session_ip_default(self):
        return "127.0.0.1"

    @default("host_template")
    def _host_template_default(self):
        return "127.0.0.1"

    @default("poll_interval")
    def _poll_interval_default(self):
        return 5.0

    stop_grace = Float(
        5.0, help="Seconds between SIGTERM and SIGKILL when a session is stopped."
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    async def submit(self, spec: JobSpec) -> str:
        env = minimal_env()
        env.update(spec.env)
        env["INK_JOB_OUTPUT"] = spec.output_path
        identity = {}
        if self.run_as_user:
            identity = await asyncio.to_thread(_identity, spec.user)
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", _LAUNCH, "ink-job", *self.job_command(spec),
                env=env, cwd=spec.workdir, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True, **identity,
            )
        except OSError as e:
            raise BackendError(f"cannot start the session process: {e}") from None
        started = await asyncio.to_thread(_start_time, proc.pid)
        job_id = f"{proc.pid}.{started or 0}"
        self._procs[job_id] = proc
        return job_id

    async def query(self, job_ids: set[str]) -> dict[str, JobStatus]:
        return await asyncio.to_thread(self._query_sync, set(job_ids))

    def _query_sync(self, job_ids: set[str]) -> dict[str, JobStatus]:
        statuses = {}
        for job_id in job_ids:
            proc = self._procs.get(job_id)
            if proc is not None and proc.returncode is not None:
                statuses[job_id] = JobStatus(job_id, JobState.DONE, reason=f"exit code {proc.returncode}",
                                             exit_code=proc.returncode)
                continue
            pid, _, started = job_id.partition(".")
            if pid.isdigit() and _start_time(int(pid)) == started:
                statuses[job_id] = JobStatus(job_id, JobState.RUNNING, node=self.node_name)
            else:
                statuses[job_id] = JobStatus(job_id, JobState.DONE, reason="process ended")
        return statuses

    async def queue_summary(self) -> dict[str, dict[str, int]]:
        """Sessions this hub started on this machine (a local machine has no queue)."""
        statuses = await self.query(set(self._procs))
        running = sum(1 for s in statuses.values() if s.state is JobState.RUNNING)
        return {self.node_name: {"running": running, "pending": 0}}

    async def cancel(self, job_id: str, user: str) -> None:
        pid_text, _, started = job_id.partition(".")
        if not pid_text.isdigit():
            raise BackendError(f"invalid local job id {job_id!r}")
        pid = int(pid_text)
        proc = self._procs.pop(job_id, None)
        if await asyncio.to_thread(_start_time, pid) != started:
            return  # already gone (or the pid now belongs to another process)
        _signal_group(pid, signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + self.stop_grace
        while asyncio.get_running_loop().time() < deadline:
            if proc is not None and proc.returncode is not None:
                break
            if proc is None and await asyncio.to_thread(_start_time, pid) != started:
                break
            await asyncio.sleep(0.05)
        else:
            _signal_group(pid, signal.SIGKILL)
        if proc is not None:
            await proc.wait()
        # the group may outlive its leader: make sure nothing is left behind
        _signal_group(pid, signal.SIGKILL)


def _identity(user: str) -> dict:
    """Popen keyword arguments that make the child run as ``user`` with its groups."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise BackendError(f"no Unix account {user!r} on this host") from None
    if entry.pw_uid == 0:
        raise BackendError("refusing to run a session as root")
    return {"user": entry.pw_uid, "group": entry.pw_gid,
            "extra_groups": os.getgrouplist(user, entry.pw_gid)}


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
