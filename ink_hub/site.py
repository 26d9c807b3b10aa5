"""A site directory made by ``ink-hub init``, read when the hub starts.

The directory holds the list of YAML layers (``layers``: the deployment profile, extras, then
the site overlay), the thin ``jupyterhub_config.py`` that calls :func:`configure_site`, and the
``secrets/`` directory (0700). Secrets that JupyterHub reads from a file itself (cookie secret,
TLS key) are named in the overlay's ``hub:`` section; the ones JupyterHub only takes as values
(the auth_state key, the proxy's token, a demo password, an OAuth client secret) are read here,
so that no secret is ever written into a YAML file or a unit file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

LAYERS_FILE = "layers"
SECRETS_DIR = "secrets"
DEFAULT_SITE_DIR = "/etc/ink-hub"

#: secret file -> the traitlets option it sets (when the file exists)
VALUE_SECRETS = {
    "crypt_key": ("CryptKeeper", "keys"),
    "proxy-auth-token": ("ConfigurableHTTPProxy", "auth_token"),
    "demo-password": ("DummyAuthenticator", "password"),
    "oidc-client-secret": ("InkOIDCAuthenticator", "client_secret"),
}


class SiteDirError(ValueError):
    """The site directory cannot be used (missing layers file, a secret readable by others)."""


def site_dir_default() -> str:
    return os.environ.get("INK_HUB_DIR") or DEFAULT_SITE_DIR


def read_layers(site_dir: str | os.PathLike) -> list[str]:
    """The layers named in ``site_dir/layers``: one per line, ``#`` comments, relative paths
    relative to the site directory, ``builtin:`` names (INK's shipped profiles) as they are."""
    path = Path(site_dir) / LAYERS_FILE
    try:
        text = path.read_text()
    except OSError as e:
        raise SiteDirError(f"{path}: cannot read: {e.strerror} (run `ink-hub init` first)") from None
    layers = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("builtin:") and not os.path.isabs(line):
            line = str(Path(site_dir) / line)
        layers.append(line)
    if not layers:
        raise SiteDirError(f"{path}: names no layer")
    return layers


def read_secret(path: Path) -> str:
    """A secret file's content; refused when others can read it (the hub's secrets are 0600)."""
    mode = path.stat().st_mode
    if stat.S_IMODE(mode) & 0o077:
        raise SiteDirError(f"{path} must be readable by its owner only (chmod 600 {path})")
    return path.read_text().strip()


def configure_site(c, site_dir: str | os.PathLike) -> None:
    """``configure()`` with the site's layers, then the secrets that JupyterHub takes as values.

    An environment variable JupyterHub reads itself (``JUPYTERHUB_CRYPT_KEY``,
    ``CONFIGPROXY_AUTH_TOKEN``) still wins, so a site can keep those in a vault instead.
    """
    import sys

    from .config import configure

    try:
        layers = read_layers(site_dir)
    except SiteDirError as e:
        print(f"INK site directory: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    configure(c, layers)
    secrets = Path(site_dir) / SECRETS_DIR
    from_env = {"crypt_key": "JUPYTERHUB_CRYPT_KEY", "proxy-auth-token": "CONFIGPROXY_AUTH_TOKEN"}
    for name, (cls, option) in VALUE_SECRETS.items():
        path = secrets / name
        if not path.exists() or os.environ.get(from_env.get(name, "")):
            continue
        try:
            value = read_secret(path)
        except SiteDirError as e:
            print(f"INK site directory: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        setattr(c[cls], option, [value] if option == "keys" else value)
