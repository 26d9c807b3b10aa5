"""The workflow (job) API as its own jupyter-server ExtensionApp, in the user's own server.

It runs as the user, so the backend submits directly (``sbatch`` as the user, no ``runuser``),
through the same backend interface and ``JobSpec`` as interactive sessions. Which backend and
which limits apply comes from the hub (``INK_WORKFLOW``, set when the portal starts).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
import time
from dataclasses import dataclass, field

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from ink_spawner.backends import BackendError, backend_class
from ink_spawner.backends.base import minimal_env

from .handlers import backend_error, handlers
from .profile import CheckedRequest, Profile, make_jobspec
from .store import ACTIVE, JobStore


@dataclass
class Workflow:
    """The job API's state in this server: who, where, which profile, which backend."""

    owner: str
    server_name: str
    home: str
    profile: Profile | None
    store: JobStore
    log: object
    config: object = None
    job_path: str = ""
    _backends: dict = field(default_factory=dict, repr=False)

    @property
    def backend(self):
        """The backend new jobs go to (the hub's, from the profile)."""
        return self.backend_named(self.profile.backend)

    def backend_named(self, name: str):
        """One instance per backend in this server; older jobs keep the backend they ran on."""
        if name not in self._backends:
            # as this server's own user: no runuser (it is not root), no shared-hub warning
            self._backends[name] = backend_class(name)(
                config=self.config, log=self.log, run_as_user=False, in_user_server=True)
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

    async def submit(self, req: CheckedRequest) -> dict:
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
                                command=command, base_env=self.base_env(), launcher=self.launcher())
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

    async def refresh(self, records: list[dict]) -> list[dict]:
        """Current states, with ONE query per backend for all its active records."""
        by_backend: dict[str, set] = {}
        for r in records:
            if r["state"] in ACTIVE:
                by_backend.setdefault(r["backend"], set()).add(r["backend_id"])
        statuses: dict[tuple[str, str], object] = {}
        for name, ids in by_backend.items():
            try:
                found = await self.backend_named(name).query(ids)
            except (BackendError, ValueError) as e:
                # last known states: never declare a job ended on a hiccup
                self.log.warning("INK job API: %s status query failed: %s", name, e)
                continue
            statuses.update({(name, job_id): status for job_id, status in found.items()})
        return [self.store.update(r, statuses.get((r["backend"], r["backend_id"]))) for r in records]

    async def cancel(self, record: dict) -> dict:
        record["cancel_requested"] = True
        self.store.save(record)
        try:
            await self.backend_named(record["backend"]).cancel(record["backend_id"], self.unix_user)
        except BackendError as e:
            record.pop("cancel_requested", None)  # not cancelled: let its real end show
            self.store.save(record)
            raise backend_error(e) from None
        for _ in range(20):  # the scheduler takes a moment to report it gone
            (record,) = await self.refresh([record])
            if record["state"] not in ACTIVE:
                break
            await asyncio.sleep(0.25)
        return record


class InkWorkflowApp(ExtensionApp):
    """``/ink/api/v1``: submit, list, show, cancel batch jobs and read their output."""

    name = "ink_workflow"
    load_other_extensions = True

    jobs_dir = Unicode(
        "~/.ink/jobs",
        help="Where the job API keeps one directory per job (record, stdout, stderr, exit "
        "status); created 0700. '~' is the user's home.",
    ).tag(config=True)

    job_path = Unicode(
        help="PATH of submitted jobs. Default: this server's own PATH (the site's job PATH).",
    ).tag(config=True)

    def initialize_settings(self):
        home = os.path.expanduser("~")
        try:
            profile = Profile.from_env()
        except (ValueError, KeyError, TypeError) as e:
            self.log.error("INK job API: invalid INK_WORKFLOW from the hub (%s); jobs are refused", e)
            profile = None
        workflow = Workflow(
            owner=os.environ.get("JUPYTERHUB_USER") or pwd.getpwuid(os.geteuid()).pw_name,
            server_name=os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
            home=home, profile=profile,
            store=JobStore(os.path.expanduser(self.jobs_dir)), log=self.log,
            config=self.serverapp.config,
            job_path=self.job_path or os.environ.get("PATH") or minimal_env()["PATH"],
        )
        self.settings["ink_workflow"] = workflow
        if profile is not None:
            self.log.info("INK job API: jobs go to %s for %s", profile.backend, workflow.owner)

    def initialize_handlers(self):
        self.handlers.extend(handlers())
