"""The job API (``/ink/api/v1``) as its own jupyter-server ExtensionApp, in the user's server.

Enabled by ``jupyter-config/jupyter_server_config.d/ink_files_ext_jobs.json`` and served from
the user's portal server (catalogue app with ``jobs: true``), whose profile the hub passes in
``INK_WORKFLOW``. Separate from the file manager's extension: a site can run either alone.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp, ExtensionAppJinjaMixin
from traitlets import Float, Unicode, default, validate

from ink_spawner.backends.base import minimal_env
from ink_spawner.joblens.sampler import check_interval
from ink_spawner.validator import Profile

from .handlers import handlers
from .page import page_handlers
from .service import JobService
from .store import JobStore


HERE = Path(__file__).resolve().parent.parent  # ink_files_ext: the user pages' templates, assets


class InkJobsApp(ExtensionAppJinjaMixin, ExtensionApp):
    """``/ink/api/v1``: submit, list, show, cancel batch jobs and read their output; the Jobs
    page ``/ink/jobs`` on top of it."""

    name = "ink_jobs"
    load_other_extensions = True
    static_paths = [str(HERE / "static")]
    template_paths = [str(HERE / "templates")]

    jobs_dir = Unicode(
        "~/.ink/jobs",
        help="Where the job API keeps one directory per job (record, stdout, stderr, exit "
        "status); created 0700. '~' is the user's home.",
    ).tag(config=True)

    job_path = Unicode(
        help="PATH of submitted jobs. Default: this server's own PATH (the site's job PATH).",
    ).tag(config=True)

    lens_interval = Float(
        help="""Seconds between two Job Lens samples of a job (CPU, memory, I/O, GPU), written to
        ``metrics.jsonl`` in the job's directory and served at ``/ink/api/v1/jobs/ID/metrics``;
        0 turns sampling off. Default: ``INK_LENS_INTERVAL`` from the hub, else 5.""",
    ).tag(config=True)

    status_interval = Float(
        3.0,
        help="""Seconds between two status queries of the scheduler for this user's active jobs.
        One query (e.g. one ``squeue``) serves every request of the job API, the Jobs page
        and the Job Lens figures in that interval, however many jobs and pages there are;
        states shown are at most this old (a new job's first state is asked at once).""",
    ).tag(config=True)

    usage_interval = Float(
        30.0,
        help="""Seconds between two queries of scheduler-reported usage (Slurm: one ``sstat`` for
        all of this user's running jobs whose figures are being looked at; HTCondor's come with
        the status query). Shown as ``scheduler`` in ``/ink/api/v1/jobs/ID/metrics``.""",
    ).tag(config=True)

    @default("lens_interval")
    def _lens_interval_from_env(self):
        try:
            return float(os.environ.get("INK_LENS_INTERVAL", "5"))
        except ValueError:
            self.log.warning("INK_LENS_INTERVAL is not a number; Job Lens samples every 5 s")
            return 5.0

    @validate("lens_interval")
    def _check_lens_interval(self, proposal):
        return check_interval(proposal["value"])

    def initialize_settings(self):
        home = os.path.expanduser("~")
        try:
            profile = Profile.from_env()
        except (ValueError, KeyError, TypeError) as e:
            self.log.error("INK job API: invalid INK_WORKFLOW from the hub (%s); jobs are refused", e)
            profile = None
        service = JobService(
            owner=os.environ.get("JUPYTERHUB_USER") or pwd.getpwuid(os.geteuid()).pw_name,
            server_name=os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
            home=home, profile=profile,
            store=JobStore(os.path.expanduser(self.jobs_dir)), log=self.log,
            config=self.serverapp.config,
            job_path=self.job_path or os.environ.get("PATH") or minimal_env()["PATH"],
            lens_interval=self.lens_interval,
            status_interval=self.status_interval,
            usage_interval=self.usage_interval,
        )
        # not under "ink_jobs": jupyter-server keeps the extension app itself under its name
        self.settings["ink_jobs_service"] = service
        if profile is not None:
            self.log.info("INK job API: jobs go to %s for %s", profile.backend, service.owner)

    def initialize_handlers(self):
        self.handlers.extend(page_handlers() + handlers())
