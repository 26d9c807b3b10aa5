"""The catalogue resolver: the server-side check of every spawn, from the form or the REST API.

It decides experiment, app, image, resources and scheduler routing for one spawn from the
user's memberships and overrides, and refuses anything else with HTTP 400 naming the field
and the reason, before anything is submitted. InkSpawner calls it as its ``resolver``.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd

from jupyterhub.spawner import SpawnException

from ink_spawner.jobspec import JobSpec, JobSpecError, parse_memory_mb, parse_walltime_s

from .. import workflow
from .model import Catalogue, Experiment, Resources

#: user_options the REST API accepts (all optional; defaults come from the profile)
OPTION_TYPES = {"experiment": str, "image": str, "cpus": int, "memory": str, "gpus": int,
                "walltime": str}


def refuse(field: str, reason: str) -> SpawnException:
    return SpawnException(f"{field}: {reason}", reason="not_allowed", status_code=400)


def unix_groups(username: str) -> set[str]:
    """Names of the Unix groups of a user (blocking NSS lookups: call in a thread)."""
    try:
        entry = pwd.getpwnam(username)
    except KeyError:
        return set()
    names = set()
    for gid in os.getgrouplist(username, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


class CatalogueResolver:
    """Callable resolver bound to one validated catalogue."""

    def __init__(self, catalogue: Catalogue, ssh_ca=None, share_links=None):
        self.catalogue = catalogue
        self.ssh_ca = ssh_ca  # SSHCertificateAuthority, when the site has login nodes
        self.share_links = share_links  # ink_hub.shares.ShareLinks: keys for signing share links

    # ---- who may use what -------------------------------------------------------------------

    async def experiments_for(self, username: str, hub_groups: set[str]) -> list[str]:
        """The experiments a user belongs to, in catalogue order."""
        needs_unix = any(e.members.unix_groups for e in self.catalogue.experiments.values())
        groups = await asyncio.to_thread(unix_groups, username) if needs_unix else set()
        override = self.catalogue.overrides.get(username)
        allowed = []
        for name, exp in self.catalogue.experiments.items():
            m = exp.members
            if (m.everyone or username in m.users or hub_groups & set(m.groups)
                    or groups & set(m.unix_groups) or (override and name in override.experiments)):
                allowed.append(name)
        return allowed

    def apps_of(self, username: str, experiment: str) -> list[str]:
        override = self.catalogue.overrides.get(username)
        apps = list(self.catalogue.experiments[experiment].apps)
        return apps + [a for a in (override.apps if override else []) if a not in apps]

    def limits_for(self, username: str, exp: Experiment) -> Resources:
        override = self.catalogue.overrides.get(username)
        return self.catalogue.limits.merged(exp.limits).merged(override.limits if override else None)

    # ---- the resolver -----------------------------------------------------------------------

    async def __call__(self, spawner, user_options: dict) -> JobSpec:
        options = self._typed_options(user_options or {})
        app = spawner.app_info()
        username = spawner.user.name
        hub_groups = {g.name for g in getattr(spawner.user, "groups", [])}
        allowed = await self.experiments_for(username, hub_groups)
        if not allowed:
            raise refuse("experiment", "you are not a member of any experiment on this site")

        name = options.get("experiment")
        if name is None:
            offering = [e for e in allowed if app.name in self.apps_of(username, e)]
            if not offering:
                raise refuse("app", f"{app.title} is not available in your experiments")
            name = offering[0]
        elif name not in self.catalogue.experiments:
            raise refuse("experiment", f"unknown experiment {name!r}")
        elif name not in allowed:
            raise refuse("experiment", f"you are not a member of {name!r}")
        exp = self.catalogue.experiments[name]
        if app.name not in self.apps_of(username, name):
            raise refuse("app", f"{app.title} is not available in experiment {name!r}")

        image_path = None
        image = options.get("image", exp.default_image)
        if image is not None:
            if image not in exp.images:
                offered = ", ".join(exp.images) or "none"
                raise refuse("image", f"{image!r} is not offered by {name!r} (offered: {offered})")
            image_path = self.catalogue.images[image].path

        self._check_session_cap(spawner)
        defaults = self.catalogue.defaults.merged(exp.defaults)
        limits = self.limits_for(username, exp)
        resources = self._resources(options, defaults, limits)

        routing = {}
        extra = {}
        if spawner.backend_name == "slurm":
            r = exp.routing.slurm
            routing = dict(partition=r.partition, account=r.account, qos=r.qos)
        elif spawner.backend_name == "htcondor":
            r = exp.routing.htcondor
            routing = dict(account=r.accounting_group)
            extra["requirements"] = r.requirements
        env = {"INK_EXPERIMENT": name}
        if image is not None:
            env["INK_IMAGE"] = image
        if exp.setup:
            env["INK_SETUP_SCRIPT"] = exp.setup
        if exp.kernels:
            env["INK_KERNELS"] = json.dumps({k: v.model_dump() for k, v in exp.kernels.items()})
        site = self.catalogue.site
        if site.storage_roots:
            env["INK_STORAGE_ROOTS"] = json.dumps([r.model_dump(exclude_none=True) for r in site.storage_roots])
        if site.anonymous_shares:
            env["INK_ANONYMOUS_SHARES"] = "1"
        if self.share_links is not None:
            env["INK_SHARE_KEY"] = self.share_links.key_for(spawner.user.name)
        app_entry = self.catalogue.apps.get(app.name)
        if app_entry is not None and app_entry.idle_timeout:
            env["INK_IDLE_TIMEOUT"] = str(parse_walltime_s(app_entry.idle_timeout))
        if app_entry is not None and app_entry.shell_idle_timeout:
            env["INK_SHELL_IDLE_TIMEOUT"] = str(parse_walltime_s(app_entry.shell_idle_timeout))
        if self.ssh_ca is not None and app_entry is not None and app_entry.ssh_certificate:
            unix_user = spawner.user.name
            key, cert = await asyncio.to_thread(self.ssh_ca.mint, unix_user)
            env["INK_SSH_KEY"], env["INK_SSH_CERT"] = key, cert
            env["INK_LOGIN_NODES"] = json.dumps(
                {n: node.model_dump() for n, node in self.catalogue.site.login_nodes.items()})
        if app_entry is not None and app_entry.jobs:
            env.update(await workflow.profile_env(self, username, hub_groups, spawner.backend))
        try:
            return await spawner.make_jobspec(app=app, image=image_path, extra_env=env,
                                              **resources, **routing, **extra)
        except JobSpecError as e:
            raise refuse(e.field, e.reason) from None

    # ---- pieces -----------------------------------------------------------------------------

    @staticmethod
    def _typed_options(options) -> dict:
        if not isinstance(options, dict):
            raise refuse("user_options", "must be a JSON object")
        for key, value in options.items():
            expected = OPTION_TYPES.get(key)
            if expected is None:
                raise refuse(key, f"unknown option (allowed: {', '.join(OPTION_TYPES)})")
            if isinstance(value, bool) or not isinstance(value, expected):
                raise refuse(key, f"must be {'an integer' if expected is int else 'a string'}")
            if expected is str and (len(value) > 64 or not value.isprintable()):
                raise refuse(key, "must be a short printable string")
        return options

    def _check_session_cap(self, spawner) -> None:
        cap = self.catalogue.site.max_sessions_per_user
        others = [s for n, s in spawner.user.spawners.items() if n != spawner.name and s.active]
        if len(others) >= cap:
            raise refuse("sessions", f"you already have {len(others)} sessions running (limit {cap}); "
                         "stop one first")

    @staticmethod
    def _resources(options: dict, defaults: Resources, limits: Resources) -> dict:
        cpus = options.get("cpus", defaults.cpus)
        gpus = options.get("gpus", defaults.gpus or 0)
        if not 1 <= cpus <= limits.cpus:
            raise refuse("cpus", f"{cpus} is outside the allowed range 1-{limits.cpus}")
        if not 0 <= gpus <= (limits.gpus or 0):
            raise refuse("gpus", f"{gpus} is outside the allowed range 0-{limits.gpus or 0}")
        try:
            memory_mb = parse_memory_mb(options.get("memory", defaults.memory))
            walltime_s = parse_walltime_s(options.get("walltime", defaults.walltime))
        except JobSpecError as e:
            raise refuse(e.field, e.reason) from None
        if memory_mb > parse_memory_mb(limits.memory):
            memory = options.get("memory", defaults.memory)
            raise refuse("memory", f"{memory} is more than the limit {limits.memory}")
        if walltime_s > parse_walltime_s(limits.walltime):
            walltime = options.get("walltime", defaults.walltime)
            raise refuse("walltime", f"{walltime} is more than the limit {limits.walltime}")
        return dict(cpus=cpus, gpus=gpus, memory_mb=memory_mb, walltime_s=walltime_s,
                    max_walltime_s=parse_walltime_s(limits.walltime))
