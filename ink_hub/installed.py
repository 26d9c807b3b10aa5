"""Apps whose stack is installed on this machine, for hubs whose sessions run here.

The demo runs every session on the hub host (local backend). Offering an app whose programs
are not installed there gives a tile that can only fail; ``site.only_installed_apps`` drops
such apps from every experiment before the catalogue is used, so the panel, the spawn menu and
the resolver agree, and the panel says how to install the rest. On a batch cluster the apps run
on worker nodes the hub cannot look at, so the setting is off by default.

``python -m ink_hub.installed`` prints the same summary (the quickstart shows it).
"""

from __future__ import annotations

import copy
import os
import sys

from ink_proxy_ext.apps import missing_stack

from .catalogue.load import DEMO, SiteConfig, load_site
from .catalogue.model import Catalogue


def missing_apps(catalogue: Catalogue) -> dict[str, list[tuple[str, str]]]:
    """App name → what it lacks here, for every catalogue app with something missing."""
    return {name: gone for name in catalogue.apps if (gone := missing_stack(name))}


def restrict(site: SiteConfig) -> dict[str, list[tuple[str, str]]]:
    """Drop the apps that lack their stack from every experiment and override (in place).

    Returns what is missing, by app, for the panel's note.
    """
    missing = missing_apps(site.catalogue)
    if not missing:
        return {}
    data = copy.deepcopy(site.merged)
    data.pop("hub", None)
    for exp in data.get("experiments", {}).values():
        exp["apps"] = [a for a in exp.get("apps", []) if a not in missing]
    for override in data.get("overrides", {}).values():
        if "apps" in override:
            override["apps"] = [a for a in override["apps"] if a not in missing]
    site.catalogue = Catalogue.model_validate(data)
    return missing


def install_hints(catalogue: Catalogue, missing: dict[str, list[tuple[str, str]]]) -> list[dict]:
    """``[{app, title, lacks, install}]``: one line per missing app, for the panel."""
    hints = []
    for name, gone in missing.items():
        commands = sorted({how for _, how in gone})
        hints.append({"app": name, "title": catalogue.apps[name].title,
                      "lacks": ", ".join(what for what, _ in gone), "install": " and ".join(commands)})
    return hints


def summary(site_files: list[str] | None = None) -> str:
    site = load_site(site_files or [DEMO])
    missing = missing_apps(site.catalogue)
    offered = sorted({a for e in site.catalogue.experiments.values() for a in e.apps
                      if a not in missing and a != "portal"},
                     key=list(site.catalogue.apps).index)
    text = "apps " + ", ".join(site.catalogue.apps[a].title for a in offered)
    hints = install_hints(site.catalogue, {a: g for a, g in missing.items()
                                           if any(a in e.apps for e in site.catalogue.experiments.values())})
    if hints:
        text += "; not installed: " + "; ".join(f"{h['title']} ({h['install']})" for h in hints)
    return text


if __name__ == "__main__":
    print(summary(sys.argv[1:] or [p for p in os.environ.get("INK_HUB_SITE", "").split(os.pathsep) if p]))
