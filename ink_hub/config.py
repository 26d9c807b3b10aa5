"""Configure a JupyterHub for INK: the one place that wires ink_hub and ink_spawner together.

``jupyterhub_config.py`` stays thin: it calls :func:`configure` (and, with no site config,
:func:`configure_demo`). The site catalogue (experiments, apps, presets) arrives with the
profiles work and will set ``c.InkSpawner.resolver`` here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from jupyterhub.utils import url_path_join

from . import session_api

REPO_ROOT = Path(__file__).resolve().parent.parent

DEMO_USERS = ("alice", "bob")
DEMO_PASSWORD = "ink-demo"


DEFAULT_APP = "jupyter"


def landing_url(handler) -> str:
    """Where a user lands after login: their JupyterLab session (the dashboard comes later)."""
    user = handler.current_user
    return url_path_join(handler.hub.base_url, "spawn", user.escaped_name, DEFAULT_APP)


def configure(c) -> None:
    """Settings every INK hub needs."""
    c.JupyterHub.spawner_class = "ink"
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0  # one server per app; apps bound the count
    c.JupyterHub.default_server_name = DEFAULT_APP
    c.JupyterHub.default_url = landing_url
    # sessions are batch jobs with their own wall time: a hub restart or upgrade must not kill them
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.extra_handlers.extend(session_api.handlers)
    chp = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if chp.exists() and not shutil.which("configurable-http-proxy"):
        c.ConfigurableHTTPProxy.command = [str(chp)]


def configure_demo(c, state_dir: str | os.PathLike | None = None) -> None:
    """The embedded default: local backend, demo users, hub on localhost only."""
    state = Path(state_dir or os.environ.get("INK_DEMO_STATE") or REPO_ROOT / ".ink-demo")
    state.mkdir(mode=0o700, exist_ok=True)
    c.JupyterHub.bind_url = f"http://127.0.0.1:{int(os.environ.get('INK_DEMO_PORT', 8000))}"
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = DEMO_PASSWORD
    c.Authenticator.allowed_users = set(DEMO_USERS)
    c.Authenticator.admin_users = {"alice"}
    c.InkSpawner.backend = "local"
