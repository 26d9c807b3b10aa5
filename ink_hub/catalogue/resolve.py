"""The catalogue resolver: what each user may run, and the server-side check of every spawn.

The catalogue decides what a user is *allowed*: :meth:`CatalogueResolver.profile_for` turns
the user's memberships and overrides into a :class:`~ink_spawner.validator.Profile` (their
experiments, apps, images, defaults, limits, routing, session cap). Whether one request fits
it is decided by the one validator, :mod:`ink_spawner.validator`, for sessions here (InkSpawner
calls this object as its ``resolver``) and for batch jobs in the portal, which receives the
same profile. A refusal is HTTP 400 naming the field and the reason; nothing is submitted.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd

from ink_spawner.jobspec import JobSpec, JobSpecError, parse_walltime_s
from ink_spawner.resolver import refused
from ink_spawner.validator import (PROFILE_ENV, ExperimentProfile, Profile, Refused, Resolved,
                                   check_session)

from .model import Catalogue, Experiment, Resources, app_defaults


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

    def routing_for(self, exp: Experiment, backend: str) -> dict[str, str]:
        """The scheduler routing of an experiment on one backend (only the values set)."""
        routing: dict = {}
        if backend == "slurm":
            r = exp.routing.slurm
            routing = {"partition": r.partition, "account": r.account, "qos": r.qos}
        elif backend == "htcondor":
            r = exp.routing.htcondor
            routing = {"account": r.accounting_group, "requirements": r.requirements}
        return {k: v for k, v in routing.items() if v}

    async def profile_for(self, username: str, hub_groups: set[str], backend: str) -> Profile:
        """Everything this user may run on ``backend``: the input of the one validator
        (:mod:`ink_spawner.validator`), for sessions here and for batch jobs in the portal."""
        catalogue = self.catalogue
        experiments = {}
        for name in await self.experiments_for(username, hub_groups):
            exp = catalogue.experiments[name]
            apps = tuple(self.apps_of(username, name))
            defaults = catalogue.defaults.merged(exp.defaults)
            limits = self.limits_for(username, exp)
            own = {a: app_defaults(defaults, catalogue.apps.get(a), limits).model_dump() for a in apps
                   if a in catalogue.apps and any(v is not None for v in catalogue.apps[a].defaults.model_dump().values())}
            experiments[name] = ExperimentProfile(
                name=name, title=exp.title, apps=apps, app_defaults=own,
                defaults=defaults.model_dump(), limits=limits.model_dump(),
                images={i: catalogue.images[i].path for i in exp.images},
                default_image=exp.default_image, routing=self.routing_for(exp, backend))
        return Profile(backend=backend, experiments=experiments,
                       site_experiments=frozenset(catalogue.experiments),
                       max_sessions=catalogue.site.max_sessions_per_user)

    # ---- the resolver -----------------------------------------------------------------------

    async def __call__(self, spawner, user_options: dict) -> JobSpec:
        app = spawner.app_info()
        username = spawner.user.name
        hub_groups = {g.name for g in getattr(spawner.user, "groups", [])}
        profile = await self.profile_for(username, hub_groups, spawner.backend_name)
        others = [s for n, s in spawner.user.spawners.items() if n != spawner.name and s.active]
        try:
            decision = check_session(profile, user_options or {}, app=app.name,
                                     app_title=app.title, other_sessions=len(others))
        except Refused as e:
            raise refused(e.field, e.reason) from None
        env = await self.session_env(spawner, decision, hub_groups)
        try:
            return await spawner.make_jobspec(app=app, extra_env=env, **decision.jobspec_fields())
        except JobSpecError as e:
            raise refused(e.field, e.reason) from None

    async def session_env(self, spawner, decision: Resolved, hub_groups: set[str]) -> dict[str, str]:
        """What a session of this experiment gets in its environment from the catalogue."""
        exp = self.catalogue.experiments[decision.experiment]
        env = {"INK_EXPERIMENT": decision.experiment}
        if decision.image is not None:
            env["INK_IMAGE"] = decision.image
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
        app_entry = self.catalogue.apps.get(spawner.name)
        if app_entry is not None and app_entry.idle_timeout:
            env["INK_IDLE_TIMEOUT"] = str(parse_walltime_s(app_entry.idle_timeout))
        if app_entry is not None and app_entry.shell_idle_timeout:
            env["INK_SHELL_IDLE_TIMEOUT"] = str(parse_walltime_s(app_entry.shell_idle_timeout))
        if self.ssh_ca is not None and app_entry is not None and app_entry.ssh_certificate:
            key, cert = await asyncio.to_thread(self.ssh_ca.mint, spawner.user.name)
            env["INK_SSH_KEY"], env["INK_SSH_CERT"] = key, cert
            env["INK_LOGIN_NODES"] = json.dumps(
                {n: node.model_dump() for n, node in site.login_nodes.items()})
        if app_entry is not None and app_entry.jobs:
            # batch jobs go to the hub's default backend, whichever backend the portal runs on
            jobs_profile = await self.profile_for(spawner.user.name, hub_groups, spawner.backend)
            env[PROFILE_ENV] = jobs_profile.to_json()
        return env
