"""The INK panel: Services and Applications tiles, "My sessions" (live), usage statistics and
the platform overview. Rendered by the hub; all figures come from the hub's own state and the
backend's shared queue sampler, never from a scheduler query per page view.
"""

from __future__ import annotations

import asyncio
import html
from collections import Counter
from pathlib import Path

from jupyterhub import orm
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

from ink_spawner.stats import sampler_for

from . import lens, service_plugins
from .catalogue.resolve import CatalogueResolver
from .kerberos import STATE_KEY, Ticket


async def offered_apps(resolver: CatalogueResolver, user) -> set[str]:
    """The apps this user may start (in any of their experiments)."""
    hub_groups = {g.name for g in user.groups}
    offered: set[str] = set()
    for exp_name in await resolver.experiments_for(user.name, hub_groups):
        offered.update(resolver.apps_of(user.name, exp_name))
    return offered


def session_rows(user, catalogue, offered: set[str] | None = None) -> list[dict]:
    """The user's sessions (named servers) with their job, profile and state.

    A stopped server of an app the user cannot start is left out: JupyterHub creates the
    server's record when its spawn page is merely opened, so a refused spawn page would
    otherwise leave a "stopped" row of an app the panel does not offer.
    """
    rows = []
    for name in sorted(user.orm_spawners):
        if not name:
            continue
        spawner = user.spawners[name]
        if spawner.ready:
            state = "running"
        elif spawner.pending == "spawn":
            state = "starting"
        elif spawner.pending == "stop":
            state = "stopping"
        else:
            state = "stopped"
        if state == "stopped" and offered is not None and name not in offered:
            continue
        options = spawner.user_options or {}
        app = catalogue.apps.get(name)
        orm_spawner = user.orm_spawners[name]
        if state == "starting":
            message = spawner.progress_log.latest()
        elif state == "stopped":
            message = getattr(spawner, "end_reason", "")  # why its job ended (OOM, node failure...)
        else:
            message = ""
        rows.append({
            "name": name,
            "title": app.title if app else name,
            "job_id": getattr(spawner, "job_id", "") or "",
            "experiment": options.get("experiment", ""),
            "image": options.get("image", ""),
            "state": state,
            "message": message,
            "url": user.server_url(name) if spawner.ready else "",
            "node": _node_of(spawner) if state == "running" else "",
            "cpus": options.get("cpus"),
            "memory": options.get("memory", ""),
            "started": _iso(orm_spawner.started) if spawner.ready else None,
        })
    return rows


async def with_lens(user, rows: list[dict]) -> list[dict]:
    """Add each running session's Job Lens CPU series (% of one core) and efficiency line."""
    running = [r for r in rows if r["state"] == "running" and r["job_id"]]
    figures = await asyncio.gather(*(lens.session_figures(user.spawners[r["name"]], 60) for r in running))
    for row, fig in zip(running, figures):
        row["cpu"] = lens.cpu_series(fig)
        row["efficiency"] = fig["efficiency"] if fig else ""
    return rows


def _iso(when) -> str | None:
    """A database time (JupyterHub keeps UTC, naive) as ISO 8601 for the browser."""
    if when is None:
        return None
    return when.isoformat() + ("Z" if when.tzinfo is None else "")


def _node_of(spawner) -> str:
    """Where a session runs, from the backend's status cache (no scheduler query)."""
    job_id = getattr(spawner, "job_id", "")
    backend = getattr(spawner, "backend_instance", None)
    status = backend.status_cache.get(job_id) if job_id and backend is not None else None
    return (status.node or "") if status is not None else ""


def bar_chart_svg(counts: dict[str, int], width: int = 320, bar: int = 22) -> str:
    """A small horizontal bar chart as inline SVG (no chart library needed for a few bars)."""
    if not counts:
        return '<p class="text-muted">No sessions are running.</p>'
    top = max(counts.values()) or 1
    height = bar * len(counts) + 4
    parts = [f'<svg class="ink-chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="sessions by app">']
    for i, (label, value) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1])):
        y = i * bar + 2
        w = int((width - 140) * value / top)
        parts.append(f'<text x="0" y="{y + 15}" font-size="13">{html.escape(label)}</text>'
                     f'<rect x="110" y="{y + 3}" width="{w}" height="{bar - 8}" fill="#f37524"/>'
                     f'<text x="{114 + w}" y="{y + 15}" font-size="13" class="ink-count">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline_svg(series: list[tuple[float, int, int]], width: int = 160, height: int = 28) -> str:
    """Running (solid) and pending (dashed) jobs over the sampled window."""
    if len(series) < 2:
        return ""
    top = max(max(r, p) for _, r, p in series) or 1
    t0, t1 = series[0][0], series[-1][0]
    span = (t1 - t0) or 1

    def points(index):
        return " ".join(f"{(t - t0) / span * (width - 2) + 1:.1f},{height - 1 - v[index] / top * (height - 2):.1f}"
                        for t, *v in [(s[0], s[1], s[2]) for s in series])

    return (f'<svg width="{width}" height="{height}" class="ink-sparkline">'
            f'<polyline fill="none" stroke="#2a7ae2" points="{points(0)}"/>'
            f'<polyline fill="none" stroke="#999" stroke-dasharray="3,2" points="{points(1)}"/></svg>')


class InkPageHandler(BaseHandler):
    def initialize(self, resolver: CatalogueResolver, keeper=None, not_installed=()):
        self.resolver = resolver
        self.keeper = keeper
        self.not_installed = list(not_installed)

    async def credential_warning(self, user) -> str:
        """The user's Kerberos ticket warning (it cannot be renewed any more), if any."""
        if self.keeper is None:
            return ""
        state = await user.get_auth_state() or {}
        return self.keeper.warning(Ticket.from_state(state.get(STATE_KEY)))

    @property
    def catalogue(self):
        return self.resolver.catalogue


class DashboardHandler(InkPageHandler):
    """GET /hub/ink: the user's INK panel."""

    @web.authenticated
    async def get(self):
        user = self.current_user
        cat = self.catalogue
        hub_groups = {g.name for g in user.groups}
        experiments = await self.resolver.experiments_for(user.name, hub_groups)
        apps = []
        for name, app in cat.apps.items():
            choices = []
            for exp_name in experiments:
                if name not in self.resolver.apps_of(user.name, exp_name):
                    continue
                exp = cat.experiments[exp_name]
                for image in exp.images or [None]:
                    label = exp.title + (f" · {cat.images[image].title}" if image else "")
                    choices.append({"label": label, "experiment": exp_name, "image": image or ""})
            if choices:
                apps.append({"name": name, "title": app.title, "description": app.description,
                             "choices": choices,
                             "icon_url": url_path_join(self.hub.base_url, "ink", "icons", name) if app.icon else None,
                             "spawn_url": url_path_join(self.hub.base_url, "spawn", user.escaped_name, name)})
        shell_url = files_url = jobs_url = None
        if any(a["name"] == "portal" for a in apps):
            # Services open in the portal server, started on the way if it is not running
            portal = url_path_join(self.hub.base_url, "spawn", user.escaped_name, "portal") + "?next="
            shell_url = portal + url_path_join(user.url, "portal", "ink", "shell")
            files_url = portal + url_path_join(user.url, "portal", "ink", "files")
            if cat.apps["portal"].jobs:  # the portal serves the job API: the Jobs page is there
                jobs_url = portal + url_path_join(user.url, "portal", "ink", "jobs")
            apps = [a for a in apps if a["name"] != "portal"]  # a service, not an application
        sampler = sampler_for(user.spawner.backend_instance)
        sampler.start()
        overview = [{"group": group, "running": c["running"], "pending": c["pending"],
                     "spark": sparkline_svg(sampler.series(group))}
                    for group, c in sorted(sampler.latest().items())]
        html_page = await self.render_template(
            "ink_dashboard.html",
            site_name=cat.site.name,
            experiments=[cat.experiments[e].title for e in experiments],
            apps=apps,
            shell_url=shell_url,
            files_url=files_url,
            jobs_url=jobs_url,
            plugin_services=service_plugins.tiles_for(cat, experiments, self.hub.base_url, self.base_url, user),
            sessions=await with_lens(user, session_rows(user, cat, await offered_apps(self.resolver, user))),
            not_installed=self.not_installed,
            usage_chart=bar_chart_svg(self._sessions_by_app()),
            overview=overview,
            sampled=bool(sampler.samples),
            overview_error=sampler.last_error,
            sessions_api=url_path_join(self.hub.base_url, "ink", "api", "sessions"),
            credential_warning=await self.credential_warning(user),
        )
        self.finish(html_page)

    def _sessions_by_app(self) -> dict[str, int]:
        """Current interactive sessions of everyone, by app (from the hub's database)."""
        names = Counter(
            name for (name,) in self.db.query(orm.Spawner.name).filter(orm.Spawner.server_id.isnot(None))
            if name)
        return {self.catalogue.apps[n].title if n in self.catalogue.apps else n: c for n, c in names.items()}


class SessionsAPIHandler(InkPageHandler):
    """GET /hub/ink/api/sessions: the current user's sessions, polled by the panel."""

    @web.authenticated
    async def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        user = self.current_user
        rows = session_rows(user, self.catalogue, await offered_apps(self.resolver, user))
        self.finish({"sessions": await with_lens(user, rows)})


#: icons shipped with INK's apps (ink_proxy_ext/icons), by the name a catalogue entry gives
BUILTIN_ICONS = Path(__file__).resolve().parent.parent / "ink_proxy_ext" / "icons"
ICON_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


class AppIconHandler(InkPageHandler):
    """GET /hub/ink/icons/APP: the icon of a catalogue app, for its tile.

    A catalogue ``icon`` is a built-in name (``vscode``, ``desktop``, ``rootbrowse``,
    ``jupyter``) or the absolute path of an .svg/.png file on the hub host; only files the site
    named in its catalogue are ever served.
    """

    @web.authenticated
    async def get(self, app_name):
        app = self.catalogue.apps.get(app_name)
        if app is None or not app.icon:
            raise web.HTTPError(404, f"app {app_name!r} has no icon")
        path = Path(app.icon) if app.icon.startswith("/") else BUILTIN_ICONS / f"{app.icon}.svg"
        kind = ICON_TYPES.get(path.suffix.lower())
        if kind is None or not path.is_file():
            raise web.HTTPError(404, f"icon of app {app_name!r} not found")
        data = await asyncio.to_thread(path.read_bytes)
        self.set_header("Content-Type", kind)
        self.set_header("Cache-Control", "max-age=3600")
        # an SVG opened directly must not run script on the hub's origin
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)


def handlers(resolver: CatalogueResolver, keeper=None, not_installed=()) -> list[tuple]:
    """``not_installed``: ``[{app, title, lacks, install}]`` for the panel's note (the demo)."""
    return [
        (r"/ink/?", DashboardHandler, {"resolver": resolver, "keeper": keeper,
                                       "not_installed": list(not_installed)}),
        (r"/ink/icons/([a-z][a-z0-9_-]{0,31})", AppIconHandler, {"resolver": resolver}),
        (r"/ink/api/sessions", SessionsAPIHandler, {"resolver": resolver}),
    ]
