"""The backend interface: submit a JobSpec, report the status of many jobs at once, cancel.

A backend is the only code that talks to a scheduler (or, for ``local``, to processes). It
never sees a shell string: every command is an argv list, and values come from a validated
:class:`~ink_spawner.jobspec.JobSpec`. One instance per backend name lives in the hub (see
:func:`ink_spawner.backends.get_backend`), so that one :class:`~ink_spawner.status.StatusCache`
serves every session.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from dataclasses import dataclass
from functools import lru_cache

from traitlets import Bool, Float, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..jobspec import USERNAME_RE, JobSpec
from ..jobstatus import BackendError, JobStatus
from ..status import StatusCache


@dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class Backend(LoggingConfigurable):
    """Base class of INK backends. Subclasses implement submit, query and cancel."""

    #: entry-point name, e.g. "slurm"
    name = "base"

    poll_interval = Float(
        10.0,
        help="""Seconds between two status queries while sessions are running.

        One query serves every session of this backend, however many there are.
        """,
    ).tag(config=True)

    spawn_poll_interval = Float(
        1.0,
        help="""Seconds between two status queries while at least one session is starting,
        so that progress (queue position, node) is shown promptly. Still one query for all.
        """,
    ).tag(config=True)

    poll_jitter = Float(
        0.1,
        help="Random fraction added to or taken from each interval (as tornado's PeriodicCallback "
        "jitter), so that several hubs do not query in lockstep.",
    ).tag(config=True)

    queue_sample_interval = Float(
        300.0,
        help="Seconds between two samples of the whole queue (running and queued jobs per "
        "partition) for the platform overview; one query per sample, whatever the page views.",
    ).tag(config=True)

    usage_interval = Float(
        30.0,
        help="""Seconds between two queries of scheduler-reported usage (Slurm: one ``sstat``
        for all running jobs whose figures someone is viewing). Slower than the status query:
        it reaches the nodes' step daemons. Backends whose status answer already carries the
        figures (HTCondor's job ad) make no such query.""",
    ).tag(config=True)

    command_timeout = Float(
        30.0,
        help="Seconds a scheduler command may take before the request fails with a clear error "
        "instead of hanging the spawn.",
    ).tag(config=True)

    run_as_user = Bool(
        help="""Run submit and cancel commands as the session's user (via `runuser_path`).

        Default: True when the hub runs as root. A hub that is not root runs every session as
        its own Unix user (the demo setup).
        """,
    ).tag(config=True)

    @default("run_as_user")
    def _run_as_user_default(self):
        return os.geteuid() == 0

    in_user_server = Bool(
        False,
        help="Set (not configured) when the backend runs inside one user's own server (the job "
        "API in the portal): submitting as that process's user is then the point, not a demo "
        "shortcut.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.run_as_user and not self.in_user_server:
            self.log.warning(
                "%s backend: run_as_user is off, so every user's session runs as the hub's own "
                "Unix user and can read the others' files and tokens. Fine for a one-person demo, "
                "not for a shared machine.", self.name)

    runuser_path = Unicode(
        "/usr/sbin/runuser",
        help="Absolute path of runuser(1), used to run commands as the user when the hub is root.",
    ).tag(config=True)

    session_ip = Unicode(
        "0.0.0.0",
        help="Address the session's server binds to on the worker. It is reached only through "
        "the hub's proxy and authenticates every request with the hub's OAuth.",
    ).tag(config=True)

    container_command = List(
        Unicode(),
        ["apptainer", "exec"],
        help="argv that runs a session inside its OS image: the image path and the session "
        "command are appended (e.g. ['apptainer', 'exec', '--bind', '/cvmfs']). Used when the "
        "site catalogue gives the session an image.",
    ).tag(config=True)

    def job_command(self, spec: JobSpec) -> list[str]:
        """The argv the job runs: the session command, inside its image if it has one."""
        if spec.image:
            return [*self.container_command, spec.image, *spec.command]
        return list(spec.command)

    host_template = Unicode(
        "{node}",
        help="How a node name from the scheduler becomes the host the proxy connects to, "
        "e.g. '{node}.cluster.example.org'. The host never comes from the job itself.",
    ).tag(config=True)

    _status_cache = None

    @property
    def status_cache(self):
        """The one status cache of this backend instance."""
        if self._status_cache is None:
            self._status_cache = StatusCache(self)
        return self._status_cache

    # ---- the interface -------------------------------------------------------------------

    async def submit(self, spec: JobSpec) -> str:
        """Submit a job; return its id. Raise BackendError with the scheduler's words on failure."""
        raise NotImplementedError

    async def query(self, job_ids: set[str]) -> dict[str, JobStatus]:
        """Status of all given jobs with ONE scheduler query. Unknown ids map to DONE."""
        raise NotImplementedError

    async def cancel(self, job_id: str, user: str) -> None:
        """Cancel a job. Cancelling a job that already ended is not an error."""
        raise NotImplementedError

    #: where this backend's scheduler figures come from ("sstat", "job ad"); None: it has none
    usage_source: str | None = None
    #: True when the figures need a query of their own (:meth:`usage`), False when every status
    #: answer carries them (``JobStatus.usage``)
    usage_query = False

    async def usage(self, job_ids: set[str]) -> dict[str, dict]:
        """What the scheduler counted for the given RUNNING jobs (CPU seconds, peak memory,
        disk bytes), with ONE query for all of them: {job_id: figures}. Jobs it has nothing
        for are left out. Called by the status cache, at most once per ``usage_interval``."""
        return {}

    async def cancel_session_workers(self, job_id: str, user: str) -> None:
        """Cancel the Dask workers (``ink_dask``) a session submitted: the hub's safety net
        after a session ended, besides ``ink-session``'s own clean-up. Default: nothing."""

    async def extend(self, job_id: str, user: str, time_limit_s: int) -> None:
        """Raise a running job's wall time to ``time_limit_s`` in total (activity-aware
        extension of interactive sessions). Backends that cannot do it raise BackendError."""
        raise BackendError(f"the {self.name} backend cannot extend a session's wall time")

    async def queue_summary(self) -> dict[str, dict[str, int]]:
        """Running and pending jobs per partition (or group) on the whole scheduler, with ONE
        query: {"debug": {"running": 12, "pending": 3}}. For the platform overview."""
        raise NotImplementedError

    def end_reason(self, status: JobStatus, output_tail: str) -> str | None:
        """How an ended job ended, for the user: the scheduler's reason, refined from the end of
        the job's output where the scheduler reports less than it wrote there."""
        return status.reason

    def host_for(self, status: JobStatus) -> str:
        """The host the proxy uses to reach a running job, from the scheduler's node name."""
        return self.host_template.format(node=status.node)

    # ---- helpers for subclasses ----------------------------------------------------------

    def as_user(self, user: str) -> list[str]:
        """argv prefix that runs a command as ``user``."""
        if not USERNAME_RE.match(user):
            raise BackendError(f"refusing to act as invalid user name {user!r}")
        return [self.runuser_path, "-u", user, "--"] if self.run_as_user else []

    async def run(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
    ) -> CommandResult:
        """Run a command without a shell and without blocking the event loop.

        ``stdin`` is written to the command's standard input (how secrets reach a helper
        without touching argv or the disk)."""
        timeout = self.command_timeout if timeout is None else timeout
        self.log.debug("Running %s", argv)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env if env is not None else minimal_env(),
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as e:
            raise BackendError(f"{argv[0]} is not installed on the hub host ({e})") from None
        try:
            out, err = await asyncio.wait_for(_collect(proc, stdin), timeout)
        except BaseException as e:  # timeout or cancellation: never leave the command behind
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await asyncio.shield(proc.wait())
            if not isinstance(e, TimeoutError):
                raise
            raise BackendError(
                f"{os.path.basename(argv[0])} did not answer within {timeout:g} s: "
                "is the scheduler up?"
            ) from None
        return CommandResult(proc.returncode, out.decode(errors="replace"),
                             err.decode(errors="replace"))

    async def make_private_dir(self, user: str, path: str) -> None:
        """Create a 0700 directory as the user (for job output files)."""
        result = await self.run([*self.as_user(user), "mkdir", "-p", "-m", "0700", path])
        if result.returncode:
            raise BackendError(f"cannot create {path} for {user}: {result.stderr.strip()}")

    async def read_tail(self, user: str, path: str, nbytes: int = 2000) -> str:
        """The end of a job's output file, read as the user (never as root)."""
        result = await self.run([*self.as_user(user), "tail", "-c", str(nbytes), path], timeout=10)
        return result.stdout if result.returncode == 0 else ""


#: most bytes kept from one scheduler command's stdout or stderr (commands run as the user).
#: A full ``squeue --states=all`` of a busy site is megabytes: a cut listing would make live
#: jobs look unknown, hence ended.
OUTPUT_CAP = 64 << 20


async def _read_capped(stream) -> bytes:
    # StreamReader.read(n) returns what is there now, not n bytes: a message written in
    # several pieces (runuser's "runuser: " + "failed to execute ...") needs several reads
    data = bytearray()
    while len(data) < OUTPUT_CAP:
        chunk = await stream.read(OUTPUT_CAP - len(data))
        if not chunk:
            break
        data += chunk
    while await stream.read(65536):  # drain the rest so the command can finish
        pass
    return bytes(data)


async def _feed(proc, data: str | None) -> None:
    if data is None:
        return
    try:
        proc.stdin.write(data.encode())
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command exited without reading: its exit code says why
    finally:
        proc.stdin.close()


async def _collect(proc, stdin: str | None = None) -> tuple[bytes, bytes]:
    out, err, _, _ = await asyncio.gather(_read_capped(proc.stdout), _read_capped(proc.stderr),
                                          _feed(proc, stdin), proc.wait())
    return out, err


SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@lru_cache(maxsize=64)
def resolve_command(name: str) -> str:
    """Absolute path of a scheduler command, looked up in the system PATH only.

    Commands run with the job's environment (whose PATH is the job's), so a bare name must be
    resolved here, by the hub; unknown names are returned as they are and fail with a clear
    "not installed" error when run.
    """
    if os.path.isabs(name):
        return name
    return shutil.which(name, path=SYSTEM_PATH) or name


def minimal_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for scheduler commands: no hub secrets leak into them."""
    env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
    if extra:
        env.update(extra)
    return env
