"""Hub side of the workflow (job) API: INK's token scopes and the user's batch profile.

The job API itself runs in the user's portal server (``ink_files_ext.workflow``), as the user.
The hub's part is small: it defines INK's custom scopes and lets every user put them on their
own tokens (the ``user`` role), and at each start of an app that serves the job API (catalogue
``jobs: true``, the portal) it passes the user's batch profile — backend, experiments with their
defaults, limits, routing and images — in ``INK_WORKFLOW``. The catalogue resolver stays the
authority: the portal accepts only jobs inside what the hub handed it.
"""

from __future__ import annotations

import json

from ink_spawner.workflow import CUSTOM_SCOPES, PROFILE_ENV, user_role_scopes


def configure_scopes(c) -> None:
    """Define INK's custom scopes and grant them (on the user's own resources) to every user.

    A site that redefines the ``user`` role itself must keep these scopes in it."""
    c.JupyterHub.custom_scopes = {**CUSTOM_SCOPES, **dict(c.JupyterHub.custom_scopes or {})} \
        if "custom_scopes" in c.JupyterHub else dict(CUSTOM_SCOPES)
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    if not any(r.get("name") == "user" for r in roles):
        roles.append({"name": "user", "description": "Every user: their own resources and INK's scopes",
                      "scopes": user_role_scopes()})
    c.JupyterHub.load_roles = roles


async def profile_env(resolver, username: str, hub_groups: set[str], backend: str) -> dict[str, str]:
    """``{INK_WORKFLOW: json}``: what the user may run as batch jobs, per experiment."""
    catalogue = resolver.catalogue
    experiments = {}
    for name in await resolver.experiments_for(username, hub_groups):
        exp = catalogue.experiments[name]
        routing: dict = {}
        if backend == "slurm":
            r = exp.routing.slurm
            routing = {"partition": r.partition, "account": r.account, "qos": r.qos}
        elif backend == "htcondor":
            r = exp.routing.htcondor
            routing = {"account": r.accounting_group, "requirements": r.requirements}
        experiments[name] = {
            "title": exp.title,
            "defaults": catalogue.defaults.merged(exp.defaults).model_dump(),
            "limits": resolver.limits_for(username, exp).model_dump(),
            "routing": {k: v for k, v in routing.items() if v},
            "images": {i: catalogue.images[i].path for i in exp.images},
            "default_image": exp.default_image,
        }
    profile = {"backend": backend, "experiments": experiments}
    return {PROFILE_ENV: json.dumps(profile, separators=(",", ":"))}
