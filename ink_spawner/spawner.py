"""InkSpawner: every INK session is a job of a backend (local, Slurm, HTCondor, ...).

The spawner resolves user_options into a :class:`~ink_spawner.jobspec.JobSpec` (through the
``resolver`` that ink_hub injects), submits it, and waits — without polling the scheduler
itself — for two things: the job's own report of its port (pushed to the hub by
``ink-session`` and handed over through :meth:`InkSpawner.report_port`), and the scheduler's
view of the job from the backend's shared status cache (queue position, node, or death).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
import time
from dataclasses import replace
from datetime import datetime

from jupyterhub.spawner import SpawnException, Spawner
from traitlets import Bool, Callable, Dict, Float, Instance, Integer, List, Unicode, default, validate

from .backends import available_backends, get_backend
from .early_state import save_state_now
from .jobspec import NAME_RE, JobSpec
from .jobstatus import BackendError, JobState
from . import metrics
from .joblens.sampler import check_interval
from .progress import ProgressLog
from .resolver import BUILTIN_APPS, AppInfo, DefaultResolver
from .session_wait import wait_for_session
from .walltime import WalltimeExtension, hms


class InkSpawner(Spawner):
    """Spawn each named server (one per app) as a batch job."""

    backend = Unicode(
        "local",
        help="""Name of the backend that runs sessions (entry point group `ink_spawner.backends`):
        `local` (processes on the hub host), `slurm`, or a site's own. Configure the backend
        itself through its class, e.g. `c.SlurmBackend.poll_interval`.
        """,
    ).tag(config=True)

    @validate("backend")
    def _validate_backend(self, proposal):
        if proposal.value not in available_backends():
            known = ", ".join(sorted(available_backends()))
            raise ValueError(f"unknown INK backend {proposal.value!r} (installed: {known})")
        return proposal.value

    resolver = Callable(
        help="""async (spawner, user_options) -> JobSpec. Validates a spawn request and decides
        app, resources and routing, through the one validator (ink_spawner.validator). ink_hub
        sets the site catalogue's resolver here; without it, DefaultResolver (configured as
        `c.DefaultResolver.max_cpus` ...) applies. It must raise SpawnException (HTTP 400) naming
        the field and the reason for anything not allowed.
        """,
    ).tag(config=True)

    @default("resolver")
    def _resolver_default(self):
        return DefaultResolver(parent=self)

    walltime_extension = Instance(
        WalltimeExtension,
        help="The activity-aware wall-time rule of this session (configure "
        "`c.WalltimeExtension.extend_by` ...; ink_hub sets it from the catalogue).",
    )

    @default("walltime_extension")
    def _walltime_extension_default(self):
        return WalltimeExtension(parent=self)

    credentials = Callable(
        None,
        allow_none=True,
        help="""async (spawner) -> dict: secret environment for the session's job, e.g. a Kerberos
        credential cache from the user's encrypted auth_state (ink_hub sets its ticket keeper
        here). Called at every start; the values reach the job like the rest of its environment
        (never argv, job scripts or spawner state), and ink-session moves them into private
        files before the server starts.""",
    ).tag(config=True)

    apps = Dict(
        help="""The apps users may start, by server name:
        {name: {"title": str, "default_url": str, "backend": str (optional)}}.

        Each named server is one app (one session of each app per user). An app may name its
        own backend (e.g. a lightweight portal server on `local` while sessions go to `slurm`);
        otherwise `backend` applies. The default offers JupyterLab as `jupyter`; ink_hub sets
        the site catalogue's apps here.
        """,
    ).tag(config=True)

    @default("apps")
    def _apps_default(self):
        return {name: {"title": a.title, "default_url": a.default_url} for name, a in BUILTIN_APPS.items()}

    @validate("apps")
    def _validate_apps(self, proposal):
        for name, entry in proposal.value.items():
            if not NAME_RE.match(name):
                raise ValueError(f"apps: {name!r} is not a valid server name")
            if set(entry) - {"title", "default_url", "backend"} or not str(entry.get("default_url", "")).startswith("/"):
                raise ValueError(f"apps.{name}: needs 'title' and a 'default_url' starting with '/'")
            if entry.get("backend") and entry["backend"] not in available_backends():
                raise ValueError(f"apps.{name}.backend: unknown INK backend {entry['backend']!r}")
        return proposal.value

    session_command = List(
        Unicode(),
        help="""argv of the job-side wrapper on the worker. It starts the server on a free port and
        reports the port to the hub. Default: `ink-session` from the hub's own environment, which
        suits a shared software area; set an absolute path valid on the workers otherwise.
        """,
    ).tag(config=True)

    @default("session_command")
    def _session_command_default(self):
        return [os.path.join(sys.prefix, "bin", "ink-session")]

    @default("cmd")
    def _cmd_default(self):
        # jupyterhub-singleuser without a 0.9 s import it never uses (see ink_spawner.singleuser)
        return ["ink-singleuser"]

    lens_interval = Float(
        5.0,
        help="""Seconds between two Job Lens samples of a session (CPU, memory, I/O, GPU of its
        process tree, or of its cgroup where the scheduler gives it one), taken by ``ink-session``
        into ``~/.ink/lens/session-NAME.jsonl`` (0600); the portal's Jobs page charts them.
        0 turns sampling off. Passed to the job as ``INK_LENS_INTERVAL``. Job-API jobs have
        their own setting, ``InkJobsApp.lens_interval``.""",
    ).tag(config=True)

    @validate("lens_interval")
    def _check_lens_interval(self, proposal):
        return check_interval(proposal["value"])

    job_path = Unicode(
        help="PATH inside the job (JupyterHub 6 no longer passes the hub's PATH on).",
    ).tag(config=True)

    @default("job_path")
    def _job_path_default(self):
        return os.pathsep.join([os.path.join(sys.prefix, "bin"), "/usr/local/bin", "/usr/bin", "/bin"])

    log_dir = Unicode(
        "{home}/.ink/logs",
        help="Directory for session output files, created as the user with mode 0700 if missing "
        "(an existing directory keeps its mode). {home} is the user's home directory.",
    ).tag(config=True)

    min_uid = Integer(
        1000,
        help="""Lowest Unix uid a session may run as. Hub users whose names match system
        accounts (root, daemon, slurm, ...) are refused; uid 0 is refused whatever this says.
        """,
    ).tag(config=True)

    hub_id = Unicode(
        "ink",
        help="Tag put on every job (hub=<hub_id>) so statistics and orphan clean-up can find them.",
    ).tag(config=True)

    allow_spawn_from_query = Bool(
        False,
        help="""Start a session from a plain link (GET /hub/spawn/USER/APP?option=...).

        Off by default: a page on another site could send a logged-in user to such a link and
        start a job in their name (cross-site request forgery). With it off, query options are
        refused with a message and the menu is shown; the menu and the INK panel start sessions
        with POST forms that carry the XSRF token.
        """,
    ).tag(config=True)

    def options_from_query(self, query_data):
        if not self.allow_spawn_from_query:
            raise SpawnException("Sessions start from the menu: check the options and press Start.",
                                 reason="query_spawn_disabled", status_code=400)
        return super().options_from_query(query_data)

    stop_timeout = Float(
        20.0, help="Seconds stop() waits for the scheduler to report the job gone."
    ).tag(config=True)

    @default("poll_interval")
    def _poll_interval_default(self):
        # reading the shared status cache is free; the cache decides how often the scheduler is asked
        return 10

    @default("start_timeout")
    def _start_timeout_default(self):
        return 600  # queueing is normal on a batch system

    # ---- state ------------------------------------------------------------------------------

    job_id = Unicode("", help="Scheduler id of the running job (state, not config).")
    job_output = Unicode("", help="Path of the job's output file (state, not config).")
    job_user = Unicode("", help="Unix user the job runs as (state, not config).")
    job_max_walltime = Integer(0, help="Most wall time this session may get, from its profile (state).")

    def load_state(self, state):
        super().load_state(state)
        self.job_id = state.get("job_id", "")
        self.job_output = state.get("job_output", "")
        self.job_user = state.get("job_user", "")
        self.job_max_walltime = state.get("job_max_walltime", 0)
        self._state_backend = state.get("backend")
        self._port = state.get("port")
        self.end_reason = state.get("end_reason", "")
        if self.job_id:  # a restarted hub re-attached to a running session: count it
            metrics.track(self)

    def get_state(self):
        state = super().get_state()
        if self.job_id:
            state.update(job_id=self.job_id, job_output=self.job_output, job_user=self.job_user,
                         backend=self.backend_name, port=self._port,
                         job_max_walltime=self.job_max_walltime)
        if self.end_reason:  # kept after the job is gone: the panel says why it ended
            state["end_reason"] = self.end_reason
        return state

    def clear_state(self):
        super().clear_state()
        self.job_id = self.job_output = self.job_user = ""
        self.job_max_walltime = 0
        self._state_backend = None
        self._port = None

    # ---- helpers used by resolvers ----------------------------------------------------------

    _state_backend = None
    _port = None
    #: why the last job of this session ended, as the scheduler said (shown on the panel)
    end_reason = ""
    _port_future: asyncio.Future | None = None
    _watching = False

    @property
    def backend_name(self) -> str:
        """The backend of this session: saved with the job, else the app's own, else `backend`."""
        app_backend = (self.apps.get(self.name) or {}).get("backend") if self.name else None
        return self._state_backend or app_backend or self.backend

    @property
    def backend_instance(self):
        return get_backend(self.backend_name, config=self.config, log=self.log)

    def app_info(self) -> AppInfo:
        """The app this server runs: its server name names it."""
        if not self.name:
            raise SpawnException(
                "INK sessions are named after their app: start one of "
                f"{', '.join(sorted(self.apps))} (e.g. /hub/spawn/{self.user.name}/jupyter)",
                reason="unknown_app", status_code=400,
            )
        entry = self.apps.get(self.name)
        if entry is None:
            raise SpawnException(
                f"Unknown app {self.name!r} (available: {', '.join(sorted(self.apps))})",
                reason="unknown_app", status_code=400,
            )
        return AppInfo(self.name, entry.get("title", self.name), entry["default_url"])

    async def unix_account(self) -> tuple[str, str]:
        """(Unix user, home) the session runs as; NSS lookups run off the event loop."""
        run_as_user = self.backend_instance.run_as_user
        name = self.user.name if run_as_user else pwd.getpwuid(os.geteuid()).pw_name
        try:
            entry = await asyncio.to_thread(pwd.getpwnam, name)
        except KeyError:
            raise SpawnException(f"User {name!r} has no account on this cluster",
                                 reason="no_account", status_code=403) from None
        if run_as_user and (entry.pw_uid == 0 or entry.pw_uid < self.min_uid):
            raise SpawnException(
                f"User {name!r} is a system account (uid {entry.pw_uid}); sessions run only as "
                f"user accounts (uid >= {self.min_uid})", reason="system_account", status_code=403)
        return name, entry.pw_dir

    def session_argv(self) -> list[str]:
        """The job's argv: the wrapper, then the server command with its arguments."""
        return [*self.session_command, "--ip", self.backend_instance.session_ip, "--",
                *self.cmd, *self.get_args()]

    async def make_jobspec(self, app: AppInfo, extra_env: dict | None = None, **resources) -> JobSpec:
        """Build the JobSpec of this session; resolvers supply app, resources and routing."""
        unix_user, home = await self.unix_account()
        env = self.get_env()
        env.update(extra_env or {})
        if self.credentials is not None:
            env.update(await self.credentials(self))
        env.update(PATH=self.job_path, HOME=home, USER=unix_user, INK_APP=app.name,
                   JUPYTERHUB_DEFAULT_URL=app.default_url,
                   INK_LENS_INTERVAL=f"{self.lens_interval:g}" if self.lens_interval else "0")
        log_dir = self.log_dir.format(home=home)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        prefix = app.name if unix_user == self.user.name else f"{self.user.name}-{app.name}"
        return JobSpec(
            user=unix_user, name=app.name, command=tuple(self.session_argv()), env=env,
            workdir=home, output_path=f"{log_dir}/{prefix}-{stamp}.log",
            tags={"hub": self.hub_id, "user": self.user.name, "server": app.name},
            **resources,
        )

    # ---- progress -----------------------------------------------------------------------------

    _progress: ProgressLog | None = None

    @property
    def progress_log(self) -> ProgressLog:
        if self._progress is None:
            self._progress = ProgressLog(self.log, self._log_name)
        return self._progress

    def _emit(self, progress: int, message: str) -> None:
        self.progress_log.emit(progress, message)

    async def progress(self):
        """Real events while waiting: submitted, queued (reason, position), running on NODE, ready."""
        async for event in self.progress_log.events():
            yield event

    # ---- the job reports its port -------------------------------------------------------------

    def report_port(self, port: int) -> bool:
        """Called by the hub API when the job reports its port. False if no start is waiting
        for it. The same port reported again is accepted: on a busy hub the job's first report
        may be taken while its answer arrives after the job's own deadline, and the job retries
        (a refusal would make it stop a server the hub is routing to)."""
        future = self._port_future
        if future is None:
            return self._port is not None and self._port == port
        if future.done():
            return future.result() == port
        future.set_result(port)
        return True

    # ---- start / poll / stop -----------------------------------------------------------------

    async def start(self):
        self.progress_log.clear()
        self.end_reason = ""
        self.walltime_extension.reset()
        self._state_backend = None  # a new job: decided by the app and config, not old state
        self._state_backend = self.backend_name
        self._port = None
        self._port_future = asyncio.get_running_loop().create_future()
        backend = self.backend_instance
        app = self.app_info()

        spec = await self.resolver(self, self.user_options or {})
        if not isinstance(spec, JobSpec):
            raise TypeError(f"resolver returned {type(spec).__name__}, not a JobSpec")
        self._emit(5, f"Submitting {app.title} to {backend.name} ({spec.cpus} CPU, "
                      f"{spec.memory_mb / 1024:g} GB, {hms(spec.walltime_s)})")
        t_submit = time.monotonic()
        try:
            await backend.make_private_dir(spec.user, os.path.dirname(spec.output_path))
            job_id = await backend.submit(spec)
        except BackendError as e:
            raise SpawnException(str(e), reason="scheduler", status_code=503) from None
        t_submitted = time.monotonic()
        metrics.observe_phase(backend.name, app.name, "submit", t_submitted - t_submit)
        metrics.track(self)
        t_running = None
        experiment = str((self.user_options or {}).get("experiment") or "")

        def on_running(status):
            nonlocal t_running
            t_running = time.monotonic()
            metrics.observe_phase(backend.name, app.name, "queue", t_running - t_submitted)
            metrics.observe_queue_wait(backend.name, status.partition or spec.partition or spec.account or "",
                                       app.name, experiment, t_running - t_submitted)
        self.job_id, self.job_output, self.job_user = job_id, spec.output_path, spec.user
        self.job_max_walltime = spec.max_walltime_s or spec.walltime_s
        save_state_now(self)  # a hub that dies now still knows the job (and cancels it)
        self._emit(15, f"Submitted {backend.name} job {job_id}")
        cache = backend.status_cache
        cache.watch(job_id, starting=True, on_done=self._job_ended)
        self._watching = True
        try:
            host, port = await wait_for_session(
                backend, job_id, self._port_future, app.title, self._emit,
                lambda: backend.read_tail(self.job_user, self.job_output), on_running)
        except BaseException:
            # failure, spawn timeout (JupyterHub cancels start) or stop: leave no job behind
            try:
                await asyncio.shield(self._cancel_job())
            except Exception:
                # the user sees why the spawn failed; the failed cancel is for the admin's log
                self.log.exception("%s: cancelling job %s failed", self._log_name, self.job_id)
            raise
        finally:
            cache.done_starting(job_id)
            self._port_future = None
        self._port = port
        if t_running is not None:
            metrics.observe_phase(backend.name, app.name, "start", time.monotonic() - t_running)
        self._emit(95, f"{app.title} is up on {host}:{port}")
        return f"http://{host}:{port}"

    def _ensure_watching(self) -> None:
        if self.job_id and not self._watching:
            self.backend_instance.status_cache.watch(self.job_id, on_done=self._job_ended)
            self._watching = True

    def _job_ended(self, status) -> None:
        """The cache saw our job end: tell the hub now instead of at its next poll."""
        if self._poll_callback is not None and self._port_future is None:
            asyncio.ensure_future(self.poll_and_notify())

    async def poll(self):
        if not self.job_id:
            return 0
        if self._port_future is not None:
            return None  # still starting
        if self._port is None:
            # A job that never reported a port (the hub went away mid-spawn) cannot be reached.
            # JupyterHub calls stop() only for servers that poll as running, so cancel it here.
            try:
                await self._cancel_job()
            except BackendError:
                return None  # keep it listed so that a later stop() tries again
            return 1
        self._ensure_watching()
        cache = self.backend_instance.status_cache
        status = cache.get(self.job_id)
        if status is None:
            status = await cache.fresh(self.job_id)
        if status is None:
            return None  # scheduler unreachable: never declare a session dead on a hiccup
        if status.state is JobState.RUNNING and self.walltime_extension.enabled:
            await self.walltime_extension.maybe_extend(self, status)
        if status.state is JobState.DONE:
            backend = self.backend_instance
            tail = await backend.read_tail(self.job_user or self.user.name, self.job_output) \
                if self.job_output else ""
            self.end_reason = replace(status, reason=backend.end_reason(status, tail)).describe()
            self.log.info("%s: %s", self._log_name, self.end_reason)
            if not status.settled:
                # ended for the user but still in the scheduler (held, completing): JupyterHub
                # calls stop() only for servers that poll as running, so remove it here
                try:
                    await self._cancel_job()
                except BackendError:
                    pass
            return status.exit_code if status.exit_code else 1
        return None

    async def _cancel_job(self) -> None:
        job_id = self.job_id
        if not job_id:
            return
        backend = self.backend_instance
        cache = backend.status_cache
        self._ensure_watching()
        try:
            await backend.cancel(job_id, self.job_user or self.user.name)
            try:  # its Dask workers end with it (ink-session cancels them too, if it can)
                await backend.cancel_session_workers(job_id, self.job_user or self.user.name)
            except BackendError as e:
                self.log.warning("%s: cancelling the Dask workers of job %s: %s",
                                 self._log_name, job_id, e)
            deadline = time.monotonic() + self.stop_timeout
            status = cache.get(job_id)
            # "stopped" means the job's processes are gone, not only that it was asked to end
            while time.monotonic() < deadline and (
                status is None or status.state.active or not status.settled
            ):
                status = await cache.fresh(job_id, timeout=deadline - time.monotonic())
            if status is None or status.state.active or not status.settled:
                self.log.warning("%s: job %s has not ended %g s after cancel", self._log_name,
                                 job_id, self.stop_timeout)
        except BackendError as e:
            self.log.error("%s: could not cancel job %s: %s", self._log_name, job_id, e)
            raise
        finally:
            if self._watching:
                cache.unwatch(job_id)
                self._watching = False
        self.job_id = ""

    async def stop(self, now=False):
        await self._cancel_job()
        self.clear_state()

