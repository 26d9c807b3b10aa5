"""``GET /hub/ink/admin/stats``: the admins' statistics page.

Sessions by app and experiment over the last day, queue waits by app and experiment, and the
Job Lens efficiency line of every running session ("used 4 % of 4 cores over 2 h": the wasted
cores). Nothing here samples or queries a scheduler: session counts over time are taken on the
tick of the backend's one queue sampler (:class:`ink_spawner.stats.QueueSampler`), queue waits
are those the spawn metrics recorded (:mod:`ink_spawner.metrics`), efficiency comes from the
sessions' own Job Lens files (:mod:`ink_hub.lens`). Admins only; anyone else gets 403.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from jupyterhub.handlers.base import BaseHandler
from tornado import web

from ink_spawner import metrics
from ink_spawner.stats import sampler_for

from . import lens
from .dashboard import sparkline_svg


def session_series(sampler) -> list[dict]:
    """One row per (app, experiment) seen in the window: its count now and over time."""
    keys = sorted({key for _, counts in sampler.sessions for key in counts})
    latest = sampler.sessions[-1][1] if sampler.sessions else {}
    rows = []
    for app, experiment in keys:
        series = [(t, counts.get((app, experiment), 0), 0) for t, counts in sampler.sessions]
        rows.append({"backend": sampler.backend.name, "app": app, "experiment": experiment or "—",
                     "now": latest.get((app, experiment), 0),
                     "peak": max(n for _, n, _ in series), "spark": sparkline_svg(series)})
    return rows


def queue_wait_rows(now: float | None = None) -> list[dict]:
    """Queue waits of the last day by (backend, app, experiment): count, median, max."""
    now = time.time() if now is None else now
    groups: dict[tuple, list[float]] = defaultdict(list)
    for t, backend, app, experiment, _queue, seconds in list(metrics.RECENT_WAITS):
        if t >= now - metrics.WAITS_KEPT_S:
            groups[(backend, app, experiment)].append(seconds)
    rows = []
    for (backend, app, experiment), waits in sorted(groups.items()):
        ordered = sorted(waits)
        rows.append({"backend": backend, "app": app, "experiment": experiment or "—",
                     "count": len(ordered), "median_s": round(ordered[len(ordered) // 2], 1),
                     "max_s": round(ordered[-1], 1)})
    return rows


async def efficiency_rows() -> list[dict]:
    """Every running session with its Job Lens efficiency line (worst first)."""
    running = metrics.running_sessions()
    figures = await asyncio.gather(*(lens.session_figures(r["spawner"], 1) for r in running))
    rows = []
    for r, fig in zip(running, figures):
        spawner, summary = r["spawner"], (fig or {}).get("summary") or {}
        used = None
        if summary.get("duration_s"):
            used = summary["cpu_seconds"] / (summary["duration_s"] * (summary["cpus"] or 1)) * 100
        rows.append({"user": spawner.user.name, "app": r["app"], "experiment": r["experiment"] or "—",
                     "job_id": spawner.job_id, "backend": r["backend"],
                     "efficiency": (fig or {}).get("efficiency") or "no Job Lens figures",
                     "used": used})
    rows.sort(key=lambda row: (row["used"] is None, row["used"] or 0))
    return rows


class AdminStatsHandler(BaseHandler):
    """GET /hub/ink/admin/stats (admins only)."""

    @web.authenticated
    async def get(self):
        user = self.current_user
        if not user.admin:
            raise web.HTTPError(403, "the statistics page is for the hub's administrators")
        default = user.spawner.backend_instance
        samplers = [sampler_for(default)]
        samplers[0].start()
        html_page = await self.render_template(
            "ink_admin_stats.html",
            sessions=[row for s in samplers for row in session_series(s)],
            sample_interval=samplers[0].interval,
            sampled=any(s.sessions for s in samplers),
            waits=queue_wait_rows(),
            efficiency=await efficiency_rows(),
        )
        self.finish(html_page)


def handlers() -> list[tuple]:
    return [(r"/ink/admin/stats/?", AdminStatsHandler)]
