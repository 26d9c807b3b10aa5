"""The job service of one user's server: checked requests become jobs of the hub's backend.

It runs as the user, so the backend submits directly (``sbatch`` as the user, no ``runuser``),
through the same backend interface and ``JobSpec`` as interactive sessions. Which backend and
which limits apply is the user's profile from the hub (``INK_WORKFLOW``, set when the portal
starts); requests are checked against it by the one validator (:mod:`ink_spawner.validator`)
before they reach :meth:`JobService.submit`.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
import time
from dataclasses import dataclass, field

from ink_spawner.backends import BackendError, backend_class
from ink_spawner.jobspec import JobSpec, JobSpecError
from ink_spawner.validator import JobRequest, Profile, Refused

from .errors import backend_error
from .store import ACTIVE, JobStore

# A constant program, never built from input: its first two arguments are the job's stderr
# and exit-status files, the rest is the job's argv, run as "$@". Stderr and exit status are
# kept in the job's directory, so that both survive the scheduler forgetting the job.
#: the Job Lens samples of a job, in its directory
METRICS_FILE = "metrics.jsonl"

JOB_WRAPPER = ('err=$1 status_file=$2; shift 2; "$@" 2>>"$err"; status=$?; '
               'echo "$status" >"$status_file"; exit "$status"')


def make_jobspec(req: JobRequest, *, user: str, job_id: str, job_dir: str, command: list[str],
                 base_env: dict, launcher: tuple[str, ...] = (), lens_interval: float = 0) -> JobSpec:
    """The JobSpec of a checked request: its argv wrapped so stderr and exit status are kept.

    ``launcher`` goes in front (HTCondor: the loader of the job's environment file). The
    scheduler's job name is ``ink-NAME-ID``: unique, so per-job files of a backend never clash.
    With ``lens_interval`` > 0 the command runs under the Job Lens launcher, which samples it
    into ``metrics.jsonl`` of the job's directory (:mod:`ink_spawner.joblens`)."""
    env = dict(base_env)
    env.update(req.env)
    env.update(INK_JOB_ID=job_id, INK_EXPERIMENT=req.experiment)
    lens = ()
    if lens_interval > 0:  # Job Lens samples the command's process tree into the job's directory
        env["INK_LENS_INTERVAL"] = f"{lens_interval:g}"
        lens = (sys.executable, "-m", "ink_spawner.joblens", "--out",
                os.path.join(job_dir, METRICS_FILE), "--cpus", str(req.cpus), "--")
    wrapped = ("/bin/sh", "-c", JOB_WRAPPER, "ink-job", os.path.join(job_dir, "stderr"),
               os.path.join(job_dir, "exit_code"), *lens, *command)
    try:
        return JobSpec(
            user=user, name=f"{req.name[:19]}-{job_id}", command=(*launcher, *wrapped),
            env=env, workdir=req.workdir, output_path=os.path.join(job_dir, "stdout"),
            tags={"ink": "workflow", "user": user, "job": job_id}, **req.jobspec_fields(),
        )
    except JobSpecError as e:
        raise Refused(e.field, e.reason) from None


@dataclass
class JobService:
    """The job API's state in this server: who, where, which profile, which backend."""

    owner: str
    server_name: str
    home: str
    profile: Profile | None
    store: JobStore
    log: object
    config: object = None
    job_path: str = ""
    lens_interval: float = 0.0
    #: seconds between the backend's status queries (InkJobsApp.status_interval)
    status_interval: float = 3.0
    #: seconds between the backend's usage queries, e.g. sstat (InkJobsApp.usage_interval)
    usage_interval: float = 30.0
    _backends: dict = field(default_factory=dict, repr=False)
    _watched: set = field(default_factory=set, repr=False)  # (backend, id) in a status cache

    @property
    def backend(self):
        """The backend new jobs go to (the hub's, from the profile)."""
        return self.backend_named(self.profile.backend)

    def backend_named(self, name: str):
        """One instance per backend in this server; older jobs keep the backend they ran on."""
        if name not in self._backends:
            # as this server's own user: no runuser (it is not root), no shared-hub warning
            backend = backend_class(name)(
                config=self.config, log=self.log, run_as_user=False, in_user_server=True)
            # its status cache asks about every active job at once, this often (see refresh)
            backend.poll_interval = backend.spawn_poll_interval = self.status_interval
            backend.usage_interval = self.usage_interval
            self._backends[name] = backend
        return self._backends[name]

    def base_env(self) -> dict:
        return {"HOME": self.home, "USER": self.unix_user, "LOGNAME": self.unix_user,
                "PATH": self.job_path, "LANG": os.environ.get("LANG", "C.UTF-8")}

    def launcher(self) -> tuple[str, ...]:
        """What runs in front of a job's command on this backend. HTCondor keeps the job's
        environment in a private file, not in the (world-readable) job ad: load it first."""
        if self.backend.name == "htcondor":
            return (sys.executable, "-m", "ink_spawner.jobenv", "--")
        return ()

    @property
    def unix_user(self) -> str:
        return pwd.getpwuid(os.geteuid()).pw_name

    async def submit(self, req: JobRequest) -> dict:
        job_id, job_dir = self.store.new_dir()
        try:
            if req.script is not None:
                script = os.path.join(job_dir, "script")
                fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
                with os.fdopen(fd, "w") as f:
                    f.write(req.script)
                command = [script] if req.script.startswith("#!") else ["/bin/sh", script]
            else:
                command = list(req.argv)
            spec = make_jobspec(req, user=self.unix_user, job_id=job_id, job_dir=job_dir,
                                command=command, base_env=self.base_env(), launcher=self.launcher(),
                                lens_interval=self.lens_interval)
            for name in ("stdout", "stderr"):  # readable at once, even before the job starts
                os.close(os.open(os.path.join(job_dir, name), os.O_WRONLY | os.O_CREAT, 0o600))
            backend_id = await self.backend.submit(spec)
        except BackendError as e:
            self.store.discard(job_id)
            raise backend_error(e) from None
        except BaseException:
            self.store.discard(job_id)
            raise
        record = {
            "id": job_id, "name": req.name, "state": "pending", "reason": None, "exit_code": None,
            "backend": self.backend.name, "backend_id": backend_id, "node": None,
            "experiment": req.experiment, "command": list(req.argv) if req.argv else None,
            "script": req.script is not None, "cpus": req.cpus, "memory_mb": req.memory_mb,
            "gpus": req.gpus, "walltime_s": req.walltime_s, "image": req.image,
            "workdir": req.workdir, "stdout_path": spec.output_path,
            "stderr_path": os.path.join(job_dir, "stderr"), "submitted": time.time(), "ended": None,
        }
        self.store.save(record)
        self.log.info("INK job %s submitted to %s as %s", job_id, self.backend.name, backend_id)
        return record

    async def refresh(self, records: list[dict], fresh: bool = False) -> list[dict]:
        """Current states from each backend's one status cache (as the hub's sessions do).

        The Jobs page polls up to 20 rows every few seconds and each row's figures too; asking
        the scheduler per request would run one ``squeue`` per row per poll. Instead every
        active job is watched in the backend's :class:`~ink_spawner.status.StatusCache`, whose
        one query per ``status_interval`` answers all requests. A job no query has seen yet
        (just submitted, or this server restarted), or ``fresh=True`` (after a cancel), waits
        for the next query, which concurrent callers share. A failed query keeps the last
        known states: a job is never declared ended on a hiccup."""
        waiting: dict[str, str] = {}  # backend -> a job id to wait for (one wait serves all)
        for r in records:
            if r["state"] not in ACTIVE:
                continue
            key = (r["backend"], r["backend_id"])
            cache = self.backend_named(r["backend"]).status_cache
            if key not in self._watched:
                cache.watch(r["backend_id"])
                self._watched.add(key)
            if fresh or cache.get(r["backend_id"]) is None:
                waiting.setdefault(r["backend"], r["backend_id"])
        for name, job_id in waiting.items():
            await self.backend_named(name).status_cache.fresh(job_id)
        out = []
        for r in records:
            if r["state"] in ACTIVE:
                cache = self.backend_named(r["backend"]).status_cache
                r = self.store.update(r, cache.get(r["backend_id"]))
                if r["state"] not in ACTIVE:  # final, kept in job.json: stop asking about it
                    last = cache.usage(r["backend_id"], want=False)
                    if last:  # the scheduler's last figures outlive its memory of the job
                        r["scheduler"] = last
                        self.store.save(r)
                    self._watched.discard((r["backend"], r["backend_id"]))
                    cache.unwatch(r["backend_id"])
            out.append(r)
        return out

    def scheduler_usage(self, record: dict) -> dict:
        """What the scheduler counted for a job, beside Job Lens' own figures.

        Read from the backend's status cache, never by a command of its own: asking registers
        the job for the cache's next batched usage query (Slurm: one ``sstat`` per
        ``usage_interval`` for all running jobs being looked at); HTCondor's figures come with
        every status query. An ended job keeps the last figures seen while it ran."""
        backend = self.backend_named(record["backend"])
        if record["state"] not in ACTIVE:
            figures = record.get("scheduler")
            if figures:
                return {"available": True, **figures}
            return {"available": False, "source": backend.usage_source,
                    "reason": "the scheduler reported no figures while the job ran"
                    if backend.usage_source else f"the {backend.name} backend has no scheduler figures"}
        if not backend.usage_source:
            return {"available": False, "source": None,
                    "reason": f"the {backend.name} backend has no scheduler figures"}
        figures = backend.status_cache.usage(record["backend_id"])
        if figures:
            return {"available": True, **figures}
        reason = ("not running yet" if record["state"] == "pending"
                  else f"asked; the next {backend.usage_source} query answers")
        return {"available": False, "source": backend.usage_source, "reason": reason}

    async def cancel(self, record: dict) -> dict:
        record["cancel_requested"] = True
        self.store.save(record)
        try:
            await self.backend_named(record["backend"]).cancel(record["backend_id"], self.unix_user)
        except BackendError as e:
            record.pop("cancel_requested", None)  # not cancelled: let its real end show
            self.store.save(record)
            raise backend_error(e) from None
        deadline = time.monotonic() + 5  # the scheduler takes a moment to report it gone
        while time.monotonic() < deadline:
            (record,) = await self.refresh([record], fresh=True)  # shared queries, no busy loop
            if record["state"] not in ACTIVE:
                break
        return record
