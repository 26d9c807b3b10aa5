"""The default resolver: user_options of one spawn → a validated JobSpec.

ink_hub replaces it with the site catalogue's resolver (experiments, presets, limits). This one
knows the built-in apps and the spawner's own default/maximum resources, which is all a
one-machine install needs. A resolver raises :class:`~jupyterhub.spawner.SpawnException` (HTTP
400) naming the field and the reason; nothing is submitted then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jupyterhub.spawner import SpawnException

from .jobspec import JobSpecError, parse_memory_mb, parse_walltime_s


@dataclass(frozen=True)
class AppInfo:
    """What the spawner needs to know of an app: where the user lands and what it is called."""

    name: str
    title: str
    default_url: str


BUILTIN_APPS = {
    "jupyter": AppInfo("jupyter", "JupyterLab", "/lab"),
}

#: keys the default resolver accepts in user_options
OPTION_KEYS = ("cpus", "memory", "gpus", "walltime")


def bad_option(field: str, reason: str) -> SpawnException:
    return SpawnException(f"Invalid {field}: {reason}", reason="invalid_option", status_code=400)


def _int_option(options: dict, key: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_option(key, f"{value!r} is not a whole number")
    if not low <= value <= high:
        raise bad_option(key, f"{value} is outside the allowed range {low}-{high}")
    return value


async def default_resolver(spawner, user_options: dict):
    """Resolve a spawn with the spawner's built-in defaults and limits."""
    options = dict(user_options or {})
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise bad_option(unknown[0], f"unknown option (allowed: {', '.join(OPTION_KEYS)})")
    app = spawner.app_info()
    try:
        cpus = _int_option(options, "cpus", spawner.default_cpus, 1, spawner.max_cpus)
        gpus = _int_option(options, "gpus", 0, 0, spawner.max_gpus)
        memory_mb = parse_memory_mb(options.get("memory", spawner.default_memory))
        max_memory_mb = parse_memory_mb(spawner.max_memory)
        if memory_mb > max_memory_mb:
            raise bad_option("memory", f"{options['memory']} is more than the limit {spawner.max_memory}")
        walltime_s = parse_walltime_s(options.get("walltime", spawner.default_walltime))
        if walltime_s > parse_walltime_s(spawner.max_walltime):
            raise bad_option("walltime", f"{options['walltime']} is more than the limit {spawner.max_walltime}")
        return await spawner.make_jobspec(
            app=app, cpus=cpus, gpus=gpus, memory_mb=memory_mb, walltime_s=walltime_s,
            max_walltime_s=parse_walltime_s(spawner.max_walltime),
            partition=spawner.partition or None, account=spawner.account or None,
            qos=spawner.qos or None,
        )
    except JobSpecError as e:
        raise bad_option(e.field, e.reason) from None
