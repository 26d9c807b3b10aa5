"""Experiment services as plugins: a package adds a Services tile and a web service.

A package declares a :class:`ServicePlugin` under the entry point group ``ink_hub.services``
(IHEP's Monitor, DAQ Shift, a HERD event display, ...). An experiment of the catalogue lists
the services it offers (``experiments.NAME.services``); only its members see the tile, and
the service itself asks the hub whether a user may use it (:func:`check_access`), so hiding
the tile is not the only guard. Two kinds:

``hub-service``
    a JupyterHub managed service (a process the hub starts, at ``/services/NAME/``, logged in
    through the hub's OAuth). INK adds it to ``c.JupyterHub.services`` and grants every user
    ``access:services!service=NAME``; the service then checks membership with the hub.
``portal``
    a jupyter-server extension of the package, served by the user's own portal server at
    ``path`` (it runs as the user, with the user's permissions, like Files and EShell).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points

from jupyterhub.apihandlers.base import APIHandler
from tornado import web
from traitlets import Dict, Unicode
from traitlets.config import LoggingConfigurable

ENTRY_POINT_GROUP = "ink_hub.services"
KINDS = ("hub-service", "portal")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_PATH = re.compile(r"^/[A-Za-z0-9_./-]*$")


class PluginError(ValueError):
    pass


@dataclass(frozen=True)
class ServicePlugin:
    """What a service package declares (the object its entry point names)."""

    name: str
    title: str
    description: str = ""
    kind: str = "hub-service"
    #: hub-service: argv of the service process the hub starts (JupyterHub managed service)
    command: tuple[str, ...] = ()
    #: hub-service: the loopback port it listens on unless InkServices.urls says otherwise
    port: int = 0
    #: hub-service: extra environment of the process
    environment: dict = field(default_factory=dict)
    #: portal: the page inside the user's portal server, e.g. "/ink-example/"
    path: str = ""

    def __post_init__(self):
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"name {self.name!r}: must match {_NAME.pattern}")
        if not self.title or "\n" in self.title:
            problems.append("title: must be one line")
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r}: must be one of {', '.join(KINDS)}")
        if self.kind == "hub-service":
            if not self.command:
                problems.append("command: a hub-service needs the argv of its process")
            if not 1024 <= self.port <= 65535:
                problems.append(f"port {self.port}: a hub-service needs a port 1024-65535")
        if self.kind == "portal" and not _PATH.match(self.path or ""):
            problems.append(f"path {self.path!r}: a portal service needs an absolute URL path")
        if problems:
            raise PluginError(f"service plugin {self.name!r}: " + "; ".join(problems))


@lru_cache(maxsize=1)
def available_services() -> dict[str, ServicePlugin]:
    """The installed service plugins, by name (entry point group ``ink_hub.services``)."""
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        plugin = ep.load()
        if callable(plugin) and not isinstance(plugin, ServicePlugin):
            plugin = plugin()
        if not isinstance(plugin, ServicePlugin):
            raise PluginError(f"entry point {ep.name!r} of {ENTRY_POINT_GROUP} is not an ink_hub ServicePlugin")
        if plugin.name != ep.name:
            raise PluginError(f"entry point {ep.name!r} names the plugin {plugin.name!r}: they must agree")
        found[plugin.name] = plugin
    return found


class InkServices(LoggingConfigurable):
    """Where the hub-service plugins listen (a site moves one off its default port here)."""

    urls = Dict(
        Unicode(),
        help="URL of each hub-service plugin by name, e.g. {'monitor': 'http://127.0.0.1:10200'} "
        "(default: loopback on the plugin's own port).",
    ).tag(config=True)


def offered(catalogue) -> list[str]:
    """Services some experiment lists, in the catalogue's order."""
    names: list[str] = []
    for exp in catalogue.experiments.values():
        names += [s for s in exp.services if s not in names]
    return names


def configure_services(c, catalogue, settings: InkServices) -> None:
    """JupyterHub services for the hub-service plugins the catalogue offers, and the scope that
    lets users log in to them (INK's access check inside the service decides the rest)."""
    plugins = available_services()
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    user_role = next((r for r in roles if r.get("name") == "user"), None)
    for name in offered(catalogue):
        plugin = plugins[name]
        if plugin.kind != "hub-service" or any(s.get("name") == name for s in services):
            continue
        services.append({
            "name": name,
            "display": False,  # INK's panel shows it, to the experiments that list it
            "url": settings.urls.get(name) or f"http://127.0.0.1:{plugin.port}",
            "command": list(plugin.command),
            "environment": dict(plugin.environment),
            "oauth_no_confirm": True,
            "oauth_client_allowed_scopes": [],
        })
        if user_role is not None:
            user_role["scopes"] = [*user_role.get("scopes", []), f"access:services!service={name}"]
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


class ServiceAccessHandler(APIHandler):
    """GET /hub/api/ink/services/SERVICE/access/USER: may USER use SERVICE?

    Only SERVICE's own token may ask (a service learns nothing about other services, a user
    token gets 403). The answer comes from the catalogue: a member of an experiment that lists
    the service may use it.
    """

    def initialize(self, resolver):
        self.resolver = resolver

    async def get(self, service: str, username: str):
        from jupyterhub.orm import Service

        caller = self.current_user  # an orm.Service for a service's token
        if not isinstance(caller, Service):
            raise web.HTTPError(403, "only the service itself may ask who may use it")
        if caller.name != service:
            raise web.HTTPError(403, f"the token of service {caller.name!r} cannot ask about {service!r}")
        user = self.find_user(username)
        if user is None:
            self.finish({"allowed": False, "experiments": []})
            return
        experiments = await self.resolver.experiments_for(user.name, {g.name for g in user.groups})
        cat = self.resolver.catalogue
        granting = [e for e in experiments if service in cat.experiments[e].services]
        self.set_header("Cache-Control", "no-store")
        self.finish({"allowed": bool(granting), "experiments": granting})


def handlers(resolver) -> list[tuple]:
    return [(r"/api/ink/services/([a-z][a-z0-9_-]{0,31})/access/([^/]+)", ServiceAccessHandler,
             {"resolver": resolver})]


async def check_access(username: str, service: str | None = None, api_url: str | None = None,
                       token: str | None = None) -> dict:
    """In a hub-service plugin: ``{"allowed": bool, "experiments": [...]}`` for ``username``,
    asked of the hub with the service's own token (``JUPYTERHUB_*`` from the environment)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from urllib.parse import quote

    service = service or os.environ["JUPYTERHUB_SERVICE_NAME"]
    api_url = (api_url or os.environ["JUPYTERHUB_API_URL"]).rstrip("/")
    token = token or os.environ["JUPYTERHUB_API_TOKEN"]
    request = HTTPRequest(f"{api_url}/ink/services/{quote(service)}/access/{quote(username, safe='')}",
                          headers={"Authorization": f"token {token}"}, request_timeout=20)
    response = await AsyncHTTPClient().fetch(request)
    return json.loads(response.body)


def tiles_for(catalogue, experiments: list[str], hub_base_url: str, base_url: str, user) -> list[dict]:
    """The Services tiles of the plugins the user's experiments list (each once)."""
    from jupyterhub.utils import url_path_join

    plugins = available_services()
    names: list[str] = []
    for exp in experiments:
        names += [s for s in catalogue.experiments[exp].services if s not in names and s in plugins]
    tiles = []
    for name in names:
        plugin = plugins[name]
        if plugin.kind == "portal":
            next_url = url_path_join(user.url, "portal", plugin.path.lstrip("/"))
            url = url_path_join(hub_base_url, "spawn", user.escaped_name, "portal") + "?next=" + next_url
        else:
            url = url_path_join(base_url, "services", name) + "/"
        tiles.append({"name": name, "title": plugin.title, "description": plugin.description,
                      "url": url, "portal": plugin.kind == "portal"})
    return tiles
