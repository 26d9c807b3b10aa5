"""The spawn menu (experiment-profile menu) built from the catalogue, and its parsing.

The form shows only what the user may use and starts from their last choice for this app
(JupyterHub keeps the last user_options of each named server). It decides nothing: the
catalogue resolver checks every value again when the spawn is submitted.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from jupyterhub.utils import url_path_join

from .catalogue.model import Catalogue, app_defaults
from .catalogue.resolve import CatalogueResolver

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
)


class SpawnForm:
    """``options_form`` and ``options_from_form`` for InkSpawner, bound to one catalogue."""

    def __init__(self, resolver: CatalogueResolver):
        self.resolver = resolver

    @property
    def catalogue(self) -> Catalogue:
        return self.resolver.catalogue

    async def render(self, spawner) -> str:
        if not spawner.name:
            # The unnamed server is no app. JupyterHub 6 also re-renders a refused form with
            # the unnamed spawner instead of the app's: its error shows above, and these links
            # lead back to the apps' menus.
            offered = set()
            hub_groups = {g.name for g in getattr(spawner.user, "groups", [])}
            for exp in await self.resolver.experiments_for(spawner.user.name, hub_groups):
                offered.update(self.resolver.apps_of(spawner.user.name, exp))
            # a refused POST (an app the user may not start) fails in start() after JupyterHub
            # made its server record, and comes here: records of such apps go again
            # (never when nothing is offered: a directory hiccup that empties the user's
            # experiments for a moment must not forget every stopped server they have)
            user = spawner.user
            for name in [n for n in user.orm_user.orm_spawners if n and offered and n not in offered]:
                await forget_refused_server(user.spawners[name])
            return _TEMPLATES.get_template("ink_choose_app.html").render(
                apps=[(app.title, url_path_join(spawner.hub.base_url, "spawn",
                                                spawner.user.escaped_name, name))
                      for name, app in self.catalogue.apps.items() if name in offered])
        cat = self.catalogue
        if spawner.name not in cat.apps:
            await forget_refused_server(spawner)
            return _TEMPLATES.get_template("ink_spawn_refused.html").render(
                reason=f"There is no app named {spawner.name!r} on {cat.site.name}.",
                panel_url=url_path_join(spawner.hub.base_url, "ink"))
        app = spawner.app_info()
        if app.name in cat.apps and not cat.apps[app.name].form:
            return ""  # starts at once with the experiment's defaults
        username = spawner.user.name
        hub_groups = {g.name for g in getattr(spawner.user, "groups", [])}
        allowed = await self.resolver.experiments_for(username, hub_groups)
        last = dict(getattr(spawner.orm_spawner, "user_options", None) or {})
        experiments = []
        for name in allowed:
            if app.name not in self.resolver.apps_of(username, name):
                continue
            exp = cat.experiments[name]
            limits = self.resolver.limits_for(username, exp)
            defaults = app_defaults(cat.defaults.merged(exp.defaults), cat.apps.get(app.name), limits)
            same = last.get("experiment") == name
            chosen = {key: last.get(key) if same and last.get(key) is not None else getattr(defaults, key)
                      for key in ("cpus", "memory", "walltime")}
            own = cat.apps[app.name].defaults if app.name in cat.apps else None
            app_sized = own is not None and (own.cpus is not None or own.memory is not None)
            # an app with its own size (Enode's cores) starts from it, not from the first preset
            preset = "custom" if (same and "cpus" in last) or app_sized else \
                (exp.presets[0] if exp.presets else "custom")
            for pname in exp.presets:
                p = cat.presets[pname]
                if same and last.get("cpus") == p.cpus and last.get("memory") == p.memory:
                    preset = pname
            experiments.append({
                "name": name, "title": exp.title, "limits": limits, "chosen": chosen,
                "images": [{"name": i, "title": cat.images[i].title} for i in exp.images],
                "chosen_image": last.get("image") if same and last.get("image") in exp.images
                else exp.default_image,
                "presets": [{"name": p, "title": cat.presets[p].title} for p in exp.presets],
                "chosen_preset": preset,
            })
        if not experiments:
            # refused: the page shows why and no Start button (templates/spawn.html), and the
            # server record JupyterHub made for this request goes again
            await forget_refused_server(spawner)
            return _TEMPLATES.get_template("ink_spawn_refused.html").render(
                reason=f"You are not a member of any experiment that offers {app.title} on "
                       f"{cat.site.name}. Ask your site's INK administrators to add you.",
                panel_url=url_path_join(spawner.hub.base_url, "ink"))
        chosen_exp = last.get("experiment") if last.get("experiment") in [e["name"] for e in experiments] \
            else (experiments[0]["name"] if experiments else None)
        return _TEMPLATES.get_template("ink_spawn_form.html").render(
            app=app, experiments=experiments, chosen={"experiment": chosen_exp},
            site_name=cat.site.name)

    def parse(self, form_data: dict) -> dict:
        """Form fields (lists of strings) → user_options; values are checked by the resolver."""
        def one(key):
            values = form_data.get(key) or [""]
            return values[0].strip()

        options = {}
        if one("experiment"):
            options["experiment"] = one("experiment")
        if one("image"):
            options["image"] = one("image")
        preset = one("preset")
        if preset and preset != "custom":
            p = self.catalogue.presets.get(preset)
            if p is None:
                options["preset"] = preset  # the resolver refuses unknown keys with a message
            else:
                options.update(cpus=p.cpus, memory=p.memory, gpus=p.gpus)
        elif preset == "custom" or not preset:
            cpus = one("cpus")
            if cpus:
                options["cpus"] = int(cpus) if cpus.isascii() and cpus.isdigit() else cpus
            for key in ("memory", "walltime"):
                if one(key):
                    options[key] = one(key)
        if one("walltime") and "walltime" not in options:
            options["walltime"] = one("walltime")
        return options


async def forget_refused_server(spawner) -> None:
    """Remove the named server record of an app the user may not start.

    JupyterHub 6's spawn page creates the record (``get_or_create_spawner``) before it asks
    for the form; a refused app would otherwise stay as a stopped server in the hub's
    database, in ``/hub/home`` and the REST API. A server that is running or starting is
    never touched. This is what ``DELETE /hub/api/users/NAME/servers/APP`` with
    ``remove: true`` does for a stopped server (``_delete_spawner``, then the ORM row)."""
    user = spawner.user
    name = spawner.name
    if not name or spawner.active or spawner.ready or name not in user.orm_user.orm_spawners:
        return
    try:
        await user._delete_spawner(spawner)
    except Exception:  # a spawner's own cleanup failed: keep the row rather than half of it
        spawner.log.exception("Could not forget the refused server %s", name)
        return
    user.db.delete(spawner.orm_spawner)
    user.spawners.pop(name, None)
    user.db.commit()
