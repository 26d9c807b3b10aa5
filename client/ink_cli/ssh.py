"""``ink ssh APP`` (ssh's ProxyCommand) and ``ink ssh-config``: SSH into a session through the hub.

The laptop's own OpenSSH client does the SSH; ``ink`` only carries its bytes and its trust:

- ``ink ssh-config`` makes (or takes) the laptop's key pair — the private key never leaves the
  laptop — and writes, under ``~/.config/ink/ssh/`` (mode 0700): a certificate for it signed by
  the hub's user CA, a ``known_hosts`` with the hub's session host CA as a ``@cert-authority``
  line for this user's session host names, and a ``config`` with one ``Host ink-APP`` block
  per app (ProxyCommand, IdentityFile, CertificateFile, UserKnownHostsFile,
  StrictHostKeyChecking yes). ``ssh ink-APP``, scp, rsync and VS Code Remote-SSH use it.
- ``ink ssh-cert`` has the hub sign the key again. The config runs it from a
  ``Match ... exec`` line, which ssh evaluates while it reads its configuration, before it
  loads the certificate file (a ProxyCommand would be too late: ssh has read the file by then).
  Certificates therefore live an hour at most and every connection gets a fresh one.
- ``ink ssh APP`` is the ProxyCommand: it opens the session's ``/ink/ssh`` websocket through
  the hub's proxy with the token in the ``Authorization`` header (never in the URL) and copies
  stdin/stdout to and from it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import config
from .api import EXIT_REFUSED, EXIT_UNAVAILABLE, Client, InkError

CHUNK = 1024 * 1024
F_SETPIPE_SZ = 1031  # Linux fcntl: a pipe's buffer size


def widen_pipe(fd: int) -> None:
    """A 1 MiB pipe buffer (Linux; the default 64 KiB costs a context switch per 64 KiB)."""
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK)
    except (ImportError, OSError):
        pass  # not a pipe (a socketpair, a terminal), or not Linux: fine as it is
HOST_SUFFIX = "ink-session"


def ssh_dir() -> Path:
    """``~/.config/ink/ssh`` (beside the login file), 0700."""
    path = config.config_path().parent / "ssh"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def host_name(user: str, app: str) -> str:
    """The host name a session's host certificate is valid for (the hub's ``ssh_api.host_name``)."""
    return f"{app}.{user}.{HOST_SUFFIX}"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def default_key() -> Path:
    return ssh_dir() / "id_ed25519"


def ensure_key(key: Path, comment: str) -> Path:
    """The key pair to use; a new ed25519 one (no passphrase) if it is the default and missing."""
    if key.exists():
        if not Path(str(key) + ".pub").exists():
            raise InkError(f"{key}.pub is missing (ink needs the public key next to the private one)",
                           EXIT_REFUSED)
        return key
    if key != default_key():
        raise InkError(f"{key} does not exist", EXIT_REFUSED)
    if not shutil.which("ssh-keygen"):
        raise InkError("ssh-keygen is not installed (install the OpenSSH client)", EXIT_UNAVAILABLE)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                   check=True, stdin=subprocess.DEVNULL)
    return key


def cert_path(key: Path) -> Path:
    """Where the certificate of ``key`` goes: in ink's directory, never beside a key of
    ``~/.ssh`` (ssh would offer ``X-cert.pub`` to every host)."""
    return ssh_dir() / f"{key.name}-cert.pub"


def refresh_certificate(client: Client, key: Path, valid_seconds: int | None = None) -> dict:
    """Have the hub sign the public key of ``key``; write the certificate (0600)."""
    public = Path(str(key) + ".pub").read_text().strip()
    body = {"public_key": public}
    if valid_seconds is not None:
        body["valid_seconds"] = valid_seconds
    answer = client.hub_api("POST", "/ink/ssh/user-certificate", json=body).json()
    _write_private(cert_path(key), answer["certificate"])
    return answer


def _ink_command(*args: str) -> str:
    """This ``ink`` (absolute path) with ``args``, quoted for the shell ssh runs it with."""
    ink = shutil.which("ink")
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0 and os.path.basename(argv0) == "ink" and os.access(argv0, os.X_OK):
        ink = argv0
    command = [ink] if ink else [sys.executable, "-m", "ink_cli.main"]
    return " ".join(shlex.quote(part) for part in
                    [*command, *args[:1], "--ink-config", str(config.config_path()), *args[1:]])


def _config_value(value: str) -> str:
    # ssh_config quoting: double quotes around values with spaces
    return f'"{value}"' if any(c.isspace() for c in value) else value


def host_block(user: str, app: str, key: Path, known_hosts: Path) -> str:
    name = host_name(user, app)
    lines = [
        f"Host ink-{app}",
        f"    HostName {name}",
        f"    HostKeyAlias {name}",
        f"    User {user}",
        f"    ProxyCommand {_ink_command('ssh', app)}",
        f"    IdentityFile {_config_value(str(key))}",
        f"    CertificateFile {_config_value(str(cert_path(key)))}",
        "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {_config_value(str(known_hosts))}",
        "    StrictHostKeyChecking yes",
        "    ServerAliveInterval 30",
    ]
    return "\n".join(lines) + "\n"


def write_ssh_config(client: Client, apps: list[str], key: Path | None) -> dict:
    """Key, certificate, known_hosts and config for ``apps``; returns what was written."""
    hub_host = urlsplit(client.hub).hostname or "hub"
    key = ensure_key(key or default_key(), f"ink-{client.user}@{hub_host}")
    answer = refresh_certificate(client, key)
    d = ssh_dir()
    known_hosts = d / "known_hosts"
    _write_private(known_hosts, f"@cert-authority {answer['host_pattern']} {answer['host_ca']} "
                                f"INK hub {client.hub}\n")
    config_file = d / "config"
    hosts = ",".join(f"ink-{app}" for app in apps)
    refresh = _ink_command("ssh-cert", "--key", str(key)).replace('"', '\\"')
    text = (f"# written by `ink ssh-config` for {client.user} on {client.hub}; re-run it to update\n"
            + "\n".join(host_block(client.user, app, key, known_hosts) for app in apps)
            + "\n# a fresh certificate before ssh loads it (this Match sets nothing)\n"
            + f'Match originalhost {hosts} exec "{refresh}"\n')
    _write_private(config_file, text)
    return {"config": str(config_file), "known_hosts": str(known_hosts), "key": str(key),
            "certificate": str(cert_path(key)), "hosts": [f"ink-{a}" for a in apps], "text": text}


def add_include(config_file: str) -> Path:
    """Put ``Include <ink's config>`` at the top of ``~/.ssh/config`` (once)."""
    ssh_config = Path(os.path.expanduser("~")) / ".ssh" / "config"
    ssh_config.parent.mkdir(mode=0o700, exist_ok=True)
    line = f"Include {_config_value(config_file)}"
    old = ssh_config.read_text() if ssh_config.exists() else ""
    if line not in old.splitlines():
        _write_private(ssh_config, f"{line}\n{old}")
    return ssh_config


# ---- the ProxyCommand ---------------------------------------------------------------------------

def socket_url(client: Client, app: str) -> str:
    parts = urlsplit(client.hub)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/user/{quote(client.user)}/{quote(app)}/ink/ssh"


def proxy(client: Client, app: str, token: str, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Copy stdin → websocket and websocket → stdout until either side ends."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    try:
        ws = connect(socket_url(client, app), additional_headers={"Authorization": f"token {token}"},
                     compression=None, max_size=None, open_timeout=30, ping_interval=30,
                     ping_timeout=60, user_agent_header="ink-cli ssh")
    except InvalidStatus as e:
        status = e.response.status_code
        if status in (302, 303, 307, 404, 424, 503):
            server = client.servers().get(app)
            if not (server and server.get("ready")):
                raise InkError(f"{app} is not running: start it with `ink sessions start {app}`",
                               EXIT_UNAVAILABLE) from None
        raise InkError(f"the session refused the SSH connection: HTTP {status}",
                       EXIT_REFUSED if status in (401, 403) else EXIT_UNAVAILABLE, status) from None
    except (OSError, TimeoutError) as e:
        raise InkError(f"cannot reach {client.hub}: {e}", EXIT_UNAVAILABLE) from None

    def upstream():
        try:
            while True:
                data = os.read(stdin_fd, CHUNK)
                if not data:
                    break
                ws.send(data)
        except (ConnectionClosed, OSError):
            pass
        finally:
            ws.close()

    widen_pipe(stdin_fd)
    widen_pipe(stdout_fd)
    threading.Thread(target=upstream, daemon=True).start()
    try:
        for message in ws:
            view = memoryview(message if isinstance(message, bytes) else message.encode())
            while view:
                view = view[os.write(stdout_fd, view):]
    except (ConnectionClosed, BrokenPipeError):
        pass
    return 0


def _client(args) -> tuple[Client, str]:
    if args.ink_config:
        os.environ["INK_CONFIG"] = args.ink_config
    data = config.load()
    return Client(data.get("hub", ""), data.get("token", ""), data.get("user")), data.get("token", "")


def cmd_ssh(args, out) -> int:
    client, token = _client(args)
    return proxy(client, args.app, token)


def cmd_ssh_cert(args, out) -> int:
    client, _ = _client(args)
    key = Path(os.path.expanduser(args.key)) if args.key else default_key()
    if not Path(str(key) + ".pub").exists():
        raise InkError(f"{key}.pub is missing: run `ink ssh-config`", EXIT_REFUSED)
    answer = refresh_certificate(client, key)
    out.emit({"certificate": str(cert_path(key)), "valid_before": answer["valid_before"]})
    return 0


def cmd_ssh_config(args, out) -> int:
    from .main import client_from

    client = client_from(args, out)
    result = write_ssh_config(client, args.apps or ["enode"],
                              Path(os.path.expanduser(args.key)) if args.key else None)
    if args.include:
        result["included_in"] = str(add_include(result["config"]))
    hint = (f"Included in {result['included_in']}." if args.include else
            f"Add this line at the top of ~/.ssh/config (or run with --include):\n"
            f"  Include {_config_value(result['config'])}")
    out.emit({k: v for k, v in result.items() if k != "text"},
             f"{result['text']}\n# Written to {result['config']}. {hint}\n"
             f"# Then: ssh {result['hosts'][0]}")
    return 0
