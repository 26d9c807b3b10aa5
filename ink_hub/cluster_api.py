"""``GET /hub/api/ink/cluster``: running and queued jobs per partition (or accounting group).

The same figures as the panel's platform overview, for programs: the ``ink`` client's MCP
server (``cluster_overview``) and scripts. They come from the backend's one shared queue
sampler (:mod:`ink_spawner.stats`), so a thousand agents asking cost the scheduler nothing
more; a hub that has not sampled yet takes its first sample on the first request.

Any logged-in user may read it (the panel shows it to everyone); a token needs INK's
``custom:ink:jobs:read`` scope on its own user, so a token made for something else (a session's
server token, a token limited to files) gets 403 naming the scope.
"""

from __future__ import annotations

import time

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from jupyterhub.user import User
from tornado import web

from ink_spawner.stats import sampler_for
from ink_files_ext.scopes import SCOPE_JOBS_READ

ROUTE = r"/api/ink/cluster"


class ClusterOverviewHandler(APIHandler):
    async def get(self):
        user = self.current_user
        if not isinstance(user, User):
            raise web.HTTPError(403, "a user's token is required")
        if not has_scope(f"{SCOPE_JOBS_READ}!user={user.name}", self.parsed_scopes):
            raise web.HTTPError(403, f"this token lacks the scope {SCOPE_JOBS_READ}")
        backend = user.spawner.backend_instance
        sampler = sampler_for(backend)
        sampler.start()
        if not sampler.samples and sampler.last_error is None:
            await sampler.sample_now()  # first request on a fresh hub: one query, then the sampler's
        sampled_at = sampler.samples[-1][0] if sampler.samples else None
        latest = sampler.latest()
        self.set_header("Cache-Control", "no-store")
        self.finish({
            "backend": backend.name,
            "groups": [{"name": name, "running": c["running"], "pending": c["pending"]}
                       for name, c in sorted(latest.items())],
            "running": sum(c["running"] for c in latest.values()),
            "pending": sum(c["pending"] for c in latest.values()),
            "sampled_at": sampled_at,
            "age_s": round(time.time() - sampled_at, 1) if sampled_at else None,
            "interval_s": sampler.interval,
            "error": sampler.last_error,
        })


def handlers() -> list[tuple]:
    return [(ROUTE, ClusterOverviewHandler)]
