"""The standard idle culler (PyPI ``jupyterhub-idle-culler``) as a managed hub service.

A session nobody uses still holds a batch slot until its wall time ends. JupyterHub's own
answer is the idle culler: a service that reads every server's ``last_activity`` and stops the
idle ones through the REST API. Stopping an INK session cancels its job, so the slot is freed.
The catalogue's ``site.idle_culler`` is the one setting that turns it on; this module turns it
into the service (run by the hub, restarted with it) and the role with the four scopes the
culler needs, and nothing more.
"""

from __future__ import annotations

import sys

SERVICE = "idle-culler"
ROLE = "idle-culler"
#: what the culler reads and does; it never needs admin
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def command(settings) -> list[str]:
    """The culler's argv (a list: never a shell string) from the catalogue's settings."""
    argv = [sys.executable, "-m", "jupyterhub_idle_culler",
            f"--timeout={settings.seconds('timeout')}",
            f"--cull-every={settings.seconds('every')}",
            f"--concurrency={settings.concurrency}"]
    if settings.max_age is not None:
        argv.append(f"--max-age={settings.seconds('max_age')}")
    return argv


def configure(c, settings) -> None:
    """Add the managed service and its role to the hub's config (after the site's own)."""
    services = [s for s in (c.JupyterHub.services if "services" in c.JupyterHub else [])
                if s.get("name") != SERVICE]
    services.append({"name": SERVICE, "command": command(settings)})
    c.JupyterHub.services = services
    roles = [r for r in (c.JupyterHub.load_roles if "load_roles" in c.JupyterHub else [])
             if r.get("name") != ROLE]
    roles.append({"name": ROLE, "description": "The idle culler: stops sessions idle for too long",
                  "scopes": list(SCOPES), "services": [SERVICE]})
    c.JupyterHub.load_roles = roles
