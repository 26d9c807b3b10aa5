"""Configure a JupyterHub for INK: the one place that wires ink_hub and ink_spawner together.

``jupyterhub_config.py`` stays thin: it calls :func:`configure` with the site's YAML layers
(and, with none, :func:`configure_demo`). The catalogue becomes ``c.InkSpawner.resolver`` and
``c.InkSpawner.apps``; the files' ``hub:`` sections become traitlets config.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path

from jupyterhub.utils import url_path_join

from traitlets.config import Config

from . import (cluster_api, credentials_api, culler, dashboard, installed, lens, scopes, service_plugins,
               session_api, shares, ssh_api, stats_page)
from .catalogue.load import CatalogueError, SiteConfig, load_site
from .catalogue.resolve import CatalogueResolver
from .kerberos import TicketKeeper
from .spawn_form import SpawnForm
from .ssh_ca import SSHCertificateAuthority, SSHHostCertificateAuthority

REPO_ROOT = Path(__file__).resolve().parent.parent

DEMO_USERS = ("alice", "bob")


DEFAULT_APP = "jupyter"


def landing_url(handler) -> str:
    """Where a user lands after login: the INK panel."""
    return url_path_join(handler.hub.base_url, "ink")


def configure(c, site_files: list[str] | tuple[str, ...] = ()) -> None:
    """Settings every INK hub needs, then the site's layered configuration.

    ``site_files`` are the deployment profile and the site overlay (YAML), merged over the
    built-in defaults. An invalid configuration stops the hub with file, key and reason.
    """
    c.JupyterHub.spawner_class = "ink"
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0  # one server per app; apps bound the count
    c.JupyterHub.default_server_name = DEFAULT_APP
    c.JupyterHub.default_url = landing_url
    # sessions are batch jobs with their own wall time: a hub restart or upgrade must not kill them
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.extra_handlers.extend(session_api.handlers)
    c.JupyterHub.extra_handlers.extend(cluster_api.handlers())  # running/queued per partition (agents, scripts)
    c.JupyterHub.extra_handlers.extend(lens.handlers())  # a session's Job Lens figures (owner, admins)
    c.JupyterHub.extra_handlers.extend(stats_page.handlers())  # /hub/ink/admin/stats (admins)
    scopes.configure_scopes(c)  # INK's token scopes (jobs, files, ssh) for every user
    chp = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if chp.exists() and not shutil.which("configurable-http-proxy"):
        c.ConfigurableHTTPProxy.command = [str(chp)]
    try:
        site = load_site(site_files)
    except CatalogueError as e:
        print(e, file=sys.stderr)
        raise SystemExit(1) from None
    apply_site(c, site)


def apply_site(c, site: SiteConfig) -> None:
    """Wire a validated site configuration into the hub's config."""
    # a one-machine hub offers only the apps installed here (the demo): drop the others first
    missing = installed.restrict(site) if site.catalogue.site.only_installed_apps else {}
    catalogue = site.catalogue
    # the CAs' settings come from the hub: section (SSHCertificateAuthority.key_file, ...)
    ssh_ca = SSHCertificateAuthority(config=Config(site.hub_config))
    if not ssh_ca.key_file:
        ssh_ca.key_file = os.path.join(os.getcwd(), "ink-ssh-user-ca")
    host_ca = SSHHostCertificateAuthority(config=Config(site.hub_config))
    if not host_ca.key_file:
        host_ca.key_file = os.path.join(os.getcwd(), "ink-ssh-host-ca")
    # SSH into sessions (Enode): laptops' keys and sessions' host keys signed on demand
    c.JupyterHub.extra_handlers.extend(
        ssh_api.handlers(ssh_ca, host_ca, ssh_api.SessionSSH(config=Config(site.hub_config))))
    share_links = shares.ShareLinks(config=Config(site.hub_config))
    # portal sessions get a certificate at start only where there are login nodes to use it on
    resolver = CatalogueResolver(catalogue, ssh_ca=ssh_ca if catalogue.site.login_nodes else None,
                                 share_links=share_links)
    form = SpawnForm(resolver)
    c.InkSpawner.resolver = resolver
    c.InkSpawner.options_form = form.render
    c.InkSpawner.options_from_form = form.parse
    # Kerberos tickets from encrypted auth_state reach the sessions, renewed by the hub
    # (TicketKeeper.* settings come from the hub: section)
    keeper = TicketKeeper(config=Config(site.hub_config))
    c.InkSpawner.credentials = keeper.session_env
    c.JupyterHub.extra_handlers.extend(credentials_api.handlers(keeper))
    # the INK authenticators admit members of the catalogue's experiments: one mapping
    c.InkOIDCAuthenticator.experiments_for = resolver.experiments_for
    c.KerberosAuthenticator.experiments_for = resolver.experiments_for
    c.JupyterHub.extra_handlers.extend(dashboard.handlers(
        resolver, keeper, not_installed=installed.install_hints(catalogue, missing)))
    c.JupyterHub.extra_handlers.extend(shares.handlers(share_links, allow_anonymous=catalogue.site.anonymous_shares))
    extension = catalogue.site.walltime_extension
    if extension is not None:
        c.WalltimeExtension.extend_by = extension.extend_by
        c.WalltimeExtension.when_left = extension.when_left
        c.WalltimeExtension.active_within = extension.active_within
        c.WalltimeExtension.max_walltime = extension.max_walltime
    c.JupyterHub.template_vars = {"ink_site_name": catalogue.site.name}
    if catalogue.site.logo:
        c.JupyterHub.logo_file = catalogue.site.logo
    c.InkSpawner.apps = {name: {"title": app.title, "default_url": app.default_url,
                                **({"backend": app.backend} if app.backend else {})}
                         for name, app in catalogue.apps.items()}
    c.merge(Config(site.hub_config))
    # service plugins the catalogue's experiments list: their JupyterHub services and access check
    c.JupyterHub.extra_handlers.extend(service_plugins.handlers(resolver))
    service_plugins.configure_services(c, catalogue, service_plugins.InkServices(config=Config(site.hub_config)))
    if catalogue.site.idle_culler is not None:
        culler.configure(c, catalogue.site.idle_culler)  # after the site's own services and roles
    # a site's own templates (hub: JupyterHub: template_paths) come first, INK's after them
    ours = str(Path(__file__).parent / "templates")
    site_paths = list(c.JupyterHub.template_paths) if "template_paths" in c.JupyterHub else []
    c.JupyterHub.template_paths = [p for p in site_paths if p != ours] + [ours]


def configure_demo(c, state_dir: str | os.PathLike | None = None) -> None:
    """The embedded default: local backend, demo users, hub on localhost only."""
    state = Path(state_dir or os.environ.get("INK_DEMO_STATE") or REPO_ROOT / ".ink-demo")
    state.mkdir(mode=0o700, exist_ok=True)
    state.chmod(0o700)  # cookie secret and database: never readable by sessions or other users
    c.JupyterHub.bind_url = f"http://127.0.0.1:{int(os.environ.get('INK_DEMO_PORT', 8000))}"
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = demo_password(state)
    c.Authenticator.allowed_users = set(DEMO_USERS)
    c.InkSpawner.backend = "local"


def demo_password(state: Path) -> str:
    """The demo users' shared password: random per installation, kept 0600 in the state dir.

    A fixed, published password would let anyone on the machine log in as a demo user.
    """
    path = state / "demo-password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(12) + "\n")
    password = path.read_text().strip()
    print(f"INK Hub demo: log in as {' or '.join(DEMO_USERS)} with password {password} "
          f"(kept in {path})", file=sys.stderr)
    return password
