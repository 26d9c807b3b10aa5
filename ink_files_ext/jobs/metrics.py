"""The Job Lens API: ``GET /ink/api/v1/jobs/ID/metrics`` and ``/sessions/NAME/metrics``.

Reads the samples file the job's launcher (or the session's ``ink-session``) wrote into the
user's own directories (:mod:`ink_spawner.joblens`) and answers the recent samples, the
summary (duration, CPU avg/max/p99, RSS avg/peak, I/O, GPU) and the efficiency line; for a
job-API job also what the scheduler itself counted (``scheduler``: Slurm ``sstat``, HTCondor's
job ad), read from the backend's status cache (:meth:`JobService.scheduler_usage`). Same
checks as the rest of the job API: a token needs ``custom:ink:jobs:read`` on the owner, and
another user's token is refused before anything is read (403, :mod:`ink_files_ext.api_auth`).
"""

from __future__ import annotations

import asyncio
import os
import re

from jupyter_server.auth.decorator import allow_unauthenticated

from ink_spawner.joblens import summary as lens
from ink_spawner.session import session_lens_path

from ..scopes import SCOPE_JOBS_READ
from .handlers import API, JobsAPIHandler, _NUMBER
from .service import METRICS_FILE

SESSION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_SAMPLES = 5000


class MetricsMixin:
    def limit(self) -> int:
        text = self.get_argument("limit", "720")
        if not _NUMBER.match(text) or not 1 <= int(text) <= MAX_SAMPLES:
            raise self.fail(400, f"limit: must be an integer from 1 to {MAX_SAMPLES}")
        return int(text)

    async def answer(self, path: str, cpus: int | None, extra: dict) -> None:
        limit = self.limit()
        try:
            header, samples, end = await asyncio.to_thread(lens.read, path)
        except FileNotFoundError:
            header, samples, end = None, [], None
        except OSError as e:
            raise self.fail(500, f"cannot read the Job Lens file: {e.strerror}") from None
        summary = lens.summarize(header, samples, end, cpus=cpus)
        self.set_header("Cache-Control", "no-store")
        self.write_json({**extra, "interval": (header or {}).get("interval"),
                         "source": (header or {}).get("source"), "samples": samples[-limit:],
                         "summary": summary, "efficiency": lens.efficiency(summary)})


class JobMetricsHandler(MetricsMixin, JobsAPIHandler):
    """GET /jobs/ID/metrics?limit=N — the job's last N samples, summary and efficiency."""

    required_scope = SCOPE_JOBS_READ

    @allow_unauthenticated
    async def get(self, key):
        record = await self.get_record(key)
        (record,) = await self.jobs.refresh([record])
        await self.answer(self.jobs.store.path(record["id"], METRICS_FILE), record.get("cpus"),
                          {"id": record["id"], "state": record["state"],
                           "scheduler": self.jobs.scheduler_usage(record)})


class SessionMetricsHandler(MetricsMixin, JobsAPIHandler):
    """GET /sessions/NAME/metrics — the same for the user's session of app NAME (its newest)."""

    required_scope = SCOPE_JOBS_READ

    @allow_unauthenticated
    async def get(self, name):
        if not SESSION_NAME.match(name):
            raise self.fail(400, "name: a session (server) name: letters, digits, '-' or '_'")
        path = session_lens_path(self.jobs.home, name)
        if not os.path.exists(path):
            raise self.fail(404, f"no Job Lens figures for your session {name!r}")
        await self.answer(path, None, {"session": name})


def metrics_handlers() -> list[tuple[str, type]]:
    return [(rf"{API}/jobs/([^/]+)/metrics/?", JobMetricsHandler),
            (rf"{API}/sessions/([^/]+)/metrics/?", SessionMetricsHandler)]
