"""``ink-hub init``: a site directory from a deployment profile, in one command.

What init writes is fully determined by the profile and the settings (recorded in the
manifest), so running it again changes nothing and says so. Every file it writes is recorded
in the manifest with its SHA-256: a file whose content no longer matches is an admin's edit and
is kept (the new version goes next to it as ``NAME.ink-new``) unless ``--force`` is given.
Secrets are generated once and never regenerated, not even with ``--force``: an existing site
keeps its cookie secret, auth_state key, SSH user CA and share-link key across re-runs and
upgrades.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from .site import LAYERS_FILE, SECRETS_DIR

MANIFEST = ".ink-hub-init.json"
PROFILES = ("demo", "slurm-site", "htcondor-site", "course")
#: the configurable-http-proxy version the hub image installs (the one package.json pins)
CHP_VERSION = "5.3.0"
AUTHENTICATORS = {"dummy": "dummy", "pam": "pam", "ink-oidc": "ink-oidc", "ink-kerberos": "ink-kerberos"}
_LIST = re.compile(r"^[A-Za-z0-9_.@-]+(,[A-Za-z0-9_.@-]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
_URL = re.compile(r"^https?://[^\s'\"]+$")


class InitError(ValueError):
    """A setting or the site directory is not usable; the message names the key."""


@dataclass(frozen=True)
class Setting:
    key: str
    help: str
    default: Callable[[str, dict], str]
    profiles: tuple[str, ...] = PROFILES
    check: Callable[[str], str | None] = lambda v: None  # returns a reason when invalid
    secret: bool = False  # written to secrets/, never recorded in the manifest
    when: Callable[[dict], bool] = lambda s: True  # asked only when this holds


def _pattern(regex: re.Pattern, what: str, empty_ok: bool = True):
    def check(value: str) -> str | None:
        if value == "" and empty_ok:
            return None
        return None if regex.match(value) else f"must be {what}"
    return check


def _choice(*choices: str):
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _abs_path(value: str) -> str | None:
    return None if value == "" or (os.path.isabs(value) and "\n" not in value) else "must be an absolute path"


def _single(profile):
    return profile in ("demo", "course")


SETTINGS = [
    Setting("site_name", "the name on the hub's pages",
            lambda p, s: {"demo": "INK Hub demo", "course": "INK Hub course"}.get(p, "INK Hub"),
            check=lambda v: None if v and "\n" not in v and len(v) <= 80 else "must be one line of at most 80 characters"),
    Setting("hostname", "the hub host's name (TLS certificate, the address jobs reach)",
            lambda p, s: "localhost" if p == "demo" else socket.getfqdn(), check=_pattern(_HOST, "a host name", False)),
    Setting("bind_url", "the public URL the hub (its proxy) listens on",
            lambda p, s: "https://127.0.0.1:8443" if p == "demo" else "https://0.0.0.0:443",
            check=_pattern(_URL, "an http(s) URL", False)),
    Setting("hub_bind_url", "where the hub's own API listens (sessions call it)",
            lambda p, s: "http://127.0.0.1:8081" if _single(p) else "http://0.0.0.0:8081",
            check=_pattern(_URL, "an http(s) URL", False)),
    Setting("hub_connect_url", "the hub API's address as the worker nodes reach it",
            lambda p, s: "" if _single(p) else f"http://{s.get('hostname') or socket.getfqdn()}:8081",
            check=_pattern(_URL, "an http(s) URL")),
    Setting("proxy_api_url", "where configurable-http-proxy's REST API listens (loopback)",
            lambda p, s: "http://127.0.0.1:8001", check=_pattern(re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\]):\d+$"),
                                                          "an http URL on loopback", False)),
    Setting("state_dir", "the hub's state: database, proxy pid (0700, owned by the hub's user)",
            lambda p, s: "/var/lib/ink-hub", check=lambda v: _abs_path(v) if v else "must be an absolute path"),
    Setting("tls_cert", "TLS certificate (PEM) of the public URL; empty: a self-signed one is made",
            lambda p, s: "", check=_abs_path),
    Setting("tls_key", "the TLS certificate's private key (PEM), with tls_cert",
            lambda p, s: "", check=_abs_path),
    Setting("authenticator", "how users log in: dummy (demo password), pam, ink-oidc, ink-kerberos",
            lambda p, s: "dummy" if p == "demo" else "pam", check=_choice(*AUTHENTICATORS)),
    Setting("allowed_users", "who may log in, comma-separated (empty: whoever the authenticator admits)",
            lambda p, s: "alice,bob" if p == "demo" else "", check=_pattern(_LIST, "comma-separated user names")),
    Setting("admin_users", "hub admins, comma-separated", lambda p, s: "",
            check=_pattern(_LIST, "comma-separated user names")),
    Setting("experiment", "the first experiment's name", lambda p, s: "course" if p == "course" else "main",
            profiles=("slurm-site", "htcondor-site", "course"), check=_pattern(_NAME, "a catalogue name", False)),
    Setting("experiment_title", "the first experiment's title", lambda p, s: "Course" if p == "course" else "Main",
            profiles=("slurm-site", "htcondor-site", "course"),
            check=lambda v: None if v and "\n" not in v else "must be one line"),
    Setting("members_unix_group", "Unix group whose members belong to it (empty: everyone)",
            lambda p, s: "", profiles=("slurm-site", "htcondor-site", "course"),
            check=_pattern(_WORD, "a group name")),
    Setting("apps", "the experiment's apps, comma-separated",
            lambda p, s: "jupyter,portal" if p == "course" else "jupyter,vscode,desktop,rootbrowse,portal",
            profiles=("slurm-site", "htcondor-site", "course"), check=_pattern(_LIST, "comma-separated app names", False)),
    Setting("partition", "Slurm partition of the experiment's sessions (empty: the default)",
            lambda p, s: "", profiles=("slurm-site",), check=_pattern(_WORD, "a Slurm word")),
    Setting("account", "Slurm account of the experiment's sessions", lambda p, s: "",
            profiles=("slurm-site",), check=_pattern(_WORD, "a Slurm word")),
    Setting("accounting_group", "HTCondor accounting group of the experiment's sessions", lambda p, s: "",
            profiles=("htcondor-site",), check=_pattern(_WORD, "an accounting group")),
    Setting("login_node", "a login node EShell opens password-free SSH sessions to (host name)",
            lambda p, s: "", profiles=("slurm-site", "htcondor-site"), check=_pattern(_HOST, "a host name")),
    Setting("oidc_issuer", "the OpenID Connect issuer URL (its /.well-known/openid-configuration is read)",
            lambda p, s: "", check=_pattern(_URL, "an http(s) URL"), when=lambda s: s.get("authenticator") == "ink-oidc"),
    Setting("oidc_client_id", "the hub's OAuth client id at the provider", lambda p, s: "",
            check=_pattern(_WORD, "a client id"), when=lambda s: s.get("authenticator") == "ink-oidc"),
    Setting("oidc_client_secret", "the hub's OAuth client secret (kept in secrets/, 0600)", lambda p, s: "",
            secret=True, when=lambda s: s.get("authenticator") == "ink-oidc"),
    Setting("kerberos_realm", "the users' Kerberos realm (empty: krb5.conf's default)", lambda p, s: "",
            check=_pattern(re.compile(r"^[A-Z0-9][A-Z0-9.-]*$"), "a realm in capitals"),
            when=lambda s: s.get("authenticator") == "ink-kerberos"),
]
SETTING = {s.key: s for s in SETTINGS}


# ---- settings --------------------------------------------------------------------------------

def resolve_settings(profile: str, recorded: dict, given: dict, ask: Callable | None = None) -> dict:
    """Defaults of the profile, then what an earlier init recorded, then --set values (and the
    answers to ``ask`` in interactive mode). Unknown keys and invalid values are refused."""
    for key in given:
        if key not in SETTING:
            raise InitError(f"--set {key}: unknown setting (known: {', '.join(SETTING)})")
        if profile not in SETTING[key].profiles:
            raise InitError(f"--set {key}: not a setting of the {profile} profile")
    values: dict = {}
    for s in SETTINGS:
        if profile not in s.profiles:
            continue
        if s.key in given:
            value = given[s.key]
        elif s.key in recorded:
            value = recorded[s.key]
        else:
            value = s.default(profile, values)
        if ask is not None and s.key not in given and s.when(values):
            value = ask(s, value)
        values[s.key] = str(value).strip()
    for key, value in values.items():
        reason = SETTING[key].check(value)
        if reason:
            raise InitError(f"setting {key}={value!r}: {reason}")
    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        raise InitError("settings tls_cert and tls_key: give both or neither")
    for key in ("tls_cert", "tls_key"):
        if values[key] and not os.path.isfile(values[key]):
            raise InitError(f"setting {key}: {values[key]} is not a file")
    if values["authenticator"] == "ink-oidc":
        for key in ("oidc_issuer", "oidc_client_id"):
            if not values[key]:
                raise InitError(f"setting {key}: required with authenticator=ink-oidc")
    if values["authenticator"] == "dummy" and profile != "demo":
        raise InitError("setting authenticator=dummy: only for the demo profile (one shared password)")
    return values


def split_list(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


# ---- the files init writes ---------------------------------------------------------------------

@dataclass
class Plan:
    """What init would write: files (relative path -> text) and secrets to create if missing."""

    files: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, Callable[[Path], None]] = field(default_factory=dict)


def oidc_endpoints(issuer: str, timeout: float = 10) -> dict:
    """The provider's endpoints from its discovery document (read once, at init)."""
    import urllib.request

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (http(s) checked)
            doc = json.loads(r.read(1_000_000))
    except Exception as e:  # noqa: BLE001 - reported with the key
        raise InitError(f"setting oidc_issuer: cannot read {url}: {e}") from None
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint") if k not in doc]
    if missing:
        raise InitError(f"setting oidc_issuer: {url} has no {', '.join(missing)}")
    return {"discovery_url": url, "authorize_url": doc["authorization_endpoint"],
            "token_url": doc["token_endpoint"], "userdata_url": doc["userinfo_endpoint"]}


def site_overlay(profile: str, s: dict, site_dir: Path, oidc: dict | None) -> dict:
    """The site overlay (site.yaml): the catalogue's site-specific part and the hub settings."""
    secrets_dir = site_dir / SECRETS_DIR
    state = Path(s["state_dir"])
    overlay: dict = {"site": {"name": s["site_name"]}}
    if s.get("login_node"):
        overlay["site"]["login_nodes"] = {"login": {"title": s["login_node"], "host": s["login_node"]}}
    if profile != "demo":
        exp: dict = {"title": s["experiment_title"],
                     "members": ({"unix_groups": [s["members_unix_group"]]} if s["members_unix_group"]
                                 else {"everyone": True}),
                     "apps": split_list(s["apps"]), "presets": ["small", "medium"]}
        routing = {}
        if profile == "slurm-site" and (s["partition"] or s["account"]):
            routing["slurm"] = {k: s[k] for k in ("partition", "account") if s[k]}
        if profile == "htcondor-site" and s["accounting_group"]:
            routing["htcondor"] = {"accounting_group": s["accounting_group"]}
        if routing:
            exp["routing"] = routing
        overlay["experiments"] = {s["experiment"]: exp}
    jh = {
        "bind_url": s["bind_url"],
        "hub_bind_url": s["hub_bind_url"],
        **({"hub_connect_url": s["hub_connect_url"]} if s["hub_connect_url"] else {}),
        "db_url": f"sqlite:///{state / 'jupyterhub.sqlite'}",
        "cookie_secret_file": str(secrets_dir / "jupyterhub_cookie_secret"),
        "authenticator_class": AUTHENTICATORS[s["authenticator"]],
    }
    if s["bind_url"].startswith("https:"):
        jh["ssl_cert"] = s["tls_cert"] or str(secrets_dir / "tls.crt")
        jh["ssl_key"] = s["tls_key"] or str(secrets_dir / "tls.key")
    auth: dict = {"enable_auth_state": True}
    if s["allowed_users"]:
        auth["allowed_users"] = split_list(s["allowed_users"])
    elif s["authenticator"] == "pam":
        auth["allow_all"] = True  # sessions still need an experiment of the catalogue
    if s["admin_users"]:
        auth["admin_users"] = split_list(s["admin_users"])
    hub: dict = {
        "JupyterHub": jh,
        "Authenticator": auth,
        "ConfigurableHTTPProxy": {"pid_file": str(state / "proxy.pid"), "api_url": s["proxy_api_url"]},
        "SSHCertificateAuthority": {"key_file": str(secrets_dir / "ssh-user-ca")},
        "SSHHostCertificateAuthority": {"key_file": str(secrets_dir / "ssh-host-ca")},
        "ShareLinks": {"secret_file": str(secrets_dir / "share-secret")},
    }
    if oidc:
        hub["InkOIDCAuthenticator"] = {
            "client_id": s["oidc_client_id"],
            "oauth_callback_url": s["bind_url"].rstrip("/") + "/hub/oauth_callback",
            "authorize_url": oidc["authorize_url"], "token_url": oidc["token_url"],
            "userdata_url": oidc["userdata_url"],
        }
        hub["Doctor"] = {"oidc_discovery_url": oidc["discovery_url"]}
    if s["authenticator"] == "ink-kerberos" and s.get("kerberos_realm"):
        hub["KerberosAuthenticator"] = {"realm": s["kerberos_realm"]}
    overlay["hub"] = hub
    return overlay


def render(profile: str, s: dict, site_dir: Path, oidc: dict | None = None) -> Plan:
    site_dir = Path(site_dir)
    venv_bin = Path(sys.prefix) / "bin"
    state = s["state_dir"]
    header = (f"# Site overlay of {site_dir}, written by `ink-hub init --profile {profile}`.\n"
              "# The last layer (see ./layers): edit it freely; init keeps your edits unless --force.\n"
              "# Reference: the site catalogue and configuration pages of the admin guide.\n")
    plan = Plan()
    plan.files["site.yaml"] = header + yaml.safe_dump(site_overlay(profile, s, site_dir, oidc),
                                                      sort_keys=False, default_flow_style=False)
    plan.files[LAYERS_FILE] = (
        "# The site's configuration layers, merged in this order over INK's built-in defaults.\n"
        "# builtin: names are profiles shipped with INK Hub (an upgrade brings their new defaults);\n"
        "# add your own extras between the profile and site.yaml.\n"
        f"builtin:profiles/{profile}.yaml\nsite.yaml\n")
    plan.files["jupyterhub_config.py"] = (
        "# INK Hub configuration entry point, written by `ink-hub init` (keep it thin).\n"
        "# The site's YAML layers are listed in ./layers, its secrets are in ./secrets (0700).\n"
        f"#   ink-hub config check --dir {site_dir}\n#   ink-hub doctor --dir {site_dir}\n"
        "# Python-only settings (hooks) go after the configure_site(...) line.\n"
        "from ink_hub.site import configure_site\n\n"
        "c = get_config()  # noqa: F821\n"
        f"configure_site(c, {str(site_dir)!r})\n")
    plan.files["ink-hub.service"] = (
        f"# systemd unit of the INK Hub of {site_dir}, written by `ink-hub init`.\n"
        f"# Install: cp {site_dir}/ink-hub.service /etc/systemd/system/ && systemctl daemon-reload\n"
        "#          systemctl enable --now ink-hub\n"
        "[Unit]\n"
        "Description=INK Hub (JupyterHub)\n"
        "After=network-online.target munge.service\n"
        "Wants=network-online.target\n\n"
        "[Service]\n"
        "Type=simple\n"
        "User=root\n"
        f"WorkingDirectory={state}\n"
        f"Environment=PATH={venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        f"ExecStartPre={venv_bin}/ink-hub config check --quiet --dir {site_dir}\n"
        f"ExecStart={venv_bin}/jupyterhub -f {site_dir}/jupyterhub_config.py\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "# the proxy and the sessions outlive a hub restart or upgrade (cleanup_servers = False)\n"
        "KillMode=process\n"
        "TimeoutStopSec=30\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n")
    plan.files["images/Dockerfile.hub"] = hub_dockerfile(profile, site_dir, state)
    plan.secrets = secret_makers(profile, s, site_dir)
    return plan


def hub_dockerfile(profile: str, site_dir: Path, state: str) -> str:
    apt = ["python3", "python3-venv", "nodejs", "npm", "ca-certificates"]
    if profile == "slurm-site":
        apt += ["slurm-client", "munge"]
    extras = {"htcondor-site": "[htcondor]"}.get(profile, "")
    return (
        f"# OCI image of the INK Hub of {site_dir} (profile {profile}), written by `ink-hub init`.\n"
        "# Build it with a checkout of INK Hub as the context:\n"
        f"#   docker build -f {site_dir}/images/Dockerfile.hub -t ink-hub /path/to/ink-hub\n"
        "# Run it with the site directory and the state mounted (the secrets stay out of the image):\n"
        f"#   docker run -v {site_dir}:{site_dir}:ro -v {state}:{state} -p 443:443 -p 8081:8081 ink-hub\n"
        + ("# A Slurm submit host also needs /etc/slurm and the MUNGE socket mounted.\n"
           if profile == "slurm-site" else "")
        + "FROM debian:12\n"
        f"ARG CHP_VERSION={CHP_VERSION}\n"
        "RUN apt-get update \\\n"
        f" && apt-get install -y --no-install-recommends {' '.join(apt)} \\\n"
        " && rm -rf /var/lib/apt/lists/*\n"
        "RUN npm install -g configurable-http-proxy@${CHP_VERSION}\n"
        "COPY . /src/ink-hub\n"
        "RUN python3 -m venv /opt/ink-hub/venv \\\n"
        f" && /opt/ink-hub/venv/bin/pip install --no-cache-dir '/src/ink-hub{extras}' \\\n"
        " && chmod -R a+rX /opt/ink-hub\n"
        "ENV PATH=/opt/ink-hub/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "EXPOSE 443 8081\n"
        f"WORKDIR {state}\n"
        f'CMD ["/opt/ink-hub/venv/bin/jupyterhub", "-f", "{site_dir}/jupyterhub_config.py"]\n')


# ---- secrets ------------------------------------------------------------------------------------

def _write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _token(nbytes: int = 32):
    return lambda path: _write_new(path, (secrets.token_hex(nbytes) + "\n").encode())


def _ssh_ca(path: Path) -> None:
    from .ssh_ca import SSHCertificateAuthority

    SSHCertificateAuthority(key_file=str(path)).ca_key()  # creates key (0600) and .pub


def _ssh_host_ca(path: Path) -> None:
    from .ssh_ca import SSHHostCertificateAuthority

    SSHHostCertificateAuthority(key_file=str(path)).ca_key()  # signs the sessions' SSH host keys


def _share_secret(path: Path) -> None:
    from .shares import ShareLinks

    _ = ShareLinks(secret_file=str(path)).secret  # created 0600 if missing


def self_signed_cert(key_path: Path, hostname: str) -> None:
    """A self-signed ECDSA certificate for ``hostname`` (and localhost), key 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(hostname), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if hostname == "localhost":
        names = names[1:]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    _write_new(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.with_name("tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.with_name("tls.crt").chmod(0o644)


def secret_makers(profile: str, s: dict, site_dir: Path) -> dict:
    makers = {
        "jupyterhub_cookie_secret": _token(32),
        "crypt_key": _token(32),
        "proxy-auth-token": _token(32),
        "ssh-user-ca": _ssh_ca,
        "ssh-host-ca": _ssh_host_ca,
        "share-secret": _share_secret,
    }
    if not s["tls_cert"] and s["bind_url"].startswith("https:"):
        makers["tls.key"] = lambda path: self_signed_cert(path, s["hostname"])
    if s["authenticator"] == "dummy":
        makers["demo-password"] = lambda path: _write_new(path, (secrets.token_urlsafe(12) + "\n").encode())
    if s.get("oidc_client_secret"):
        value = s["oidc_client_secret"]
        makers["oidc-client-secret"] = lambda path: _write_new(path, (value + "\n").encode())
    return makers


# ---- applying a plan -----------------------------------------------------------------------------

def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.ink-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def load_manifest(site_dir: Path) -> dict:
    path = site_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InitError(f"{path}: unreadable manifest ({e}); move it away to start over") from None
    return data if isinstance(data, dict) else {}


def run_init(site_dir: str | os.PathLike, profile: str | None, given: dict, force: bool = False,
             ask: Callable | None = None, out=print) -> int:
    """Create or update the site directory; returns the number of things changed."""
    site_dir = Path(site_dir).absolute()
    manifest = load_manifest(site_dir)
    recorded_profile = manifest.get("profile")
    if profile is None:
        profile = recorded_profile
        if profile is None:
            raise InitError(f"--profile: required for a new site ({', '.join(PROFILES)})")
    if profile not in PROFILES:
        raise InitError(f"--profile {profile}: unknown profile ({', '.join(PROFILES)})")
    if recorded_profile and recorded_profile != profile and not force:
        raise InitError(f"--profile {profile}: {site_dir} was made with --profile {recorded_profile} "
                        "(give --force to change it; its secrets are kept)")
    values = resolve_settings(profile, manifest.get("settings", {}) if recorded_profile == profile else {},
                              given, ask)
    oidc = None
    if values["authenticator"] == "ink-oidc":
        recorded_oidc = manifest.get("oidc") or {}
        if recorded_oidc.get("issuer") == values["oidc_issuer"]:
            oidc = recorded_oidc["endpoints"]
        else:
            oidc = oidc_endpoints(values["oidc_issuer"])
    plan = render(profile, values, site_dir, oidc)

    changed = 0
    site_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir = site_dir / SECRETS_DIR
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    if secrets_dir.stat().st_mode & 0o077:
        secrets_dir.chmod(0o700)
        out(f"  fixed      {SECRETS_DIR}/ (mode 0700)")
        changed += 1
    state = Path(values["state_dir"])
    if not state.exists():
        state.mkdir(mode=0o700, parents=True)
        out(f"  created    {state}/ (state, 0700)")
        changed += 1
    for name, make in plan.secrets.items():
        path = secrets_dir / name
        if path.exists():
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
                out(f"  fixed      {SECRETS_DIR}/{name} (mode 0600)")
                changed += 1
            continue
        make(path)
        out(f"  created    {SECRETS_DIR}/{name} (0600)")
        changed += 1

    written = dict(manifest.get("files", {}))
    kept = []
    for rel, text in plan.files.items():
        path = site_dir / rel
        new_hash = sha256(text)
        if path.exists():
            current = sha256(path.read_bytes())
            if current == new_hash:
                written[rel] = new_hash
                continue
            edited = written.get(rel) != current
            if edited and not force:
                _write_atomic(path.with_name(path.name + ".ink-new"), text)
                kept.append(rel)
                out(f"  kept       {rel} (edited since init wrote it; the new version is in "
                    f"{rel}.ink-new; --force overwrites)")
                continue
            _write_atomic(path, text)
            out(f"  {'overwrote' if edited else 'updated'}  {rel}")
        else:
            _write_atomic(path, text)
            out(f"  created    {rel}")
        written[rel] = new_hash
        changed += 1
        stale = path.with_name(path.name + ".ink-new")
        if stale.exists():
            stale.unlink()

    new_manifest = {
        "written_by": "ink-hub init",
        "profile": profile,
        "settings": {k: v for k, v in values.items() if not SETTING[k].secret},
        "files": written,
        "secrets": sorted(p.name for p in secrets_dir.iterdir() if not p.name.endswith(".pub")),
    }
    if oidc:
        new_manifest["oidc"] = {"issuer": values["oidc_issuer"], "endpoints": oidc}
    text = json.dumps(new_manifest, indent=2, sort_keys=True) + "\n"
    manifest_path = site_dir / MANIFEST
    if not manifest_path.exists() or manifest_path.read_text() != text:
        _write_atomic(manifest_path, text, 0o600)
        if changed == 0:
            out(f"  updated    {MANIFEST}")
    if changed == 0:
        out(f"Nothing changed: {site_dir} is up to date with profile {profile}"
            + (f" ({len(kept)} file(s) keep the admin's edits)" if kept else "") + ".")
    else:
        out(f"{site_dir}: {changed} change(s), profile {profile}.")
    return changed
