"""Apps' own resource defaults (catalogue ``apps.NAME.defaults``) for spawns that leave them out.

A thin layer over :class:`CatalogueResolver`: a spawn that does not give ``cpus``, ``memory``,
``gpus`` or ``walltime`` gets the app's default (lowered to the user's limit), then the resolver
checks everything as for any spawn. The spawn form shows the same values
(:func:`ink_hub.catalogue.model.app_defaults`). It lives apart from the resolver only while that
moves into the one job validator; the defaults belong there.
"""

from __future__ import annotations

from .model import app_defaults
from .resolve import CatalogueResolver

RESOURCE_KEYS = ("cpus", "memory", "gpus", "walltime")


class AppDefaultsResolver(CatalogueResolver):
    async def __call__(self, spawner, user_options: dict):
        options = user_options
        app = self.catalogue.apps.get(spawner.name or "")
        if app is not None and isinstance(user_options, dict) and \
                any(v is not None for v in app.defaults.model_dump().values()):
            experiment = await self._experiment_of(spawner, user_options)
            if experiment is not None:
                exp = self.catalogue.experiments[experiment]
                limits = self.limits_for(spawner.user.name, exp)
                chosen = app_defaults(self.catalogue.defaults.merged(exp.defaults), app, limits)
                options = dict(user_options)
                for key in RESOURCE_KEYS:
                    if key not in options and getattr(app.defaults, key) is not None:
                        options[key] = getattr(chosen, key)
        return await super().__call__(spawner, options)

    async def _experiment_of(self, spawner, options: dict) -> str | None:
        """The experiment the resolver will use (it refuses the spawn itself if there is none)."""
        name = options.get("experiment")
        if isinstance(name, str):
            return name if name in self.catalogue.experiments else None
        hub_groups = {g.name for g in getattr(spawner.user, "groups", [])}
        for exp in await self.experiments_for(spawner.user.name, hub_groups):
            if spawner.name in self.apps_of(spawner.user.name, exp):
                return exp
        return None
