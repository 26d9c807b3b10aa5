"""The session's SSH endpoint (Enode): a user-level OpenSSH sshd, one ``sshd -i`` per connection.

Why it runs this way:

- **No listening socket at all.** Each SSH connection arrives as a websocket through the hub's
  proxy (:mod:`ink_proxy_ext.ssh_socket`, authenticated by jupyter-server's hub login) and gets
  its own ``sshd -i``, which speaks SSH on its stdin/stdout. Nothing on the node, TCP or unix
  socket, accepts SSH connections, so other users of a shared node have nothing to reach.
- **Run as the user, by the session.** Debian's (or the image's) openssh-server binary, no
  root, no PAM: it can only log in its own user (``AllowUsers``).
- **Only the hub's user CA, only the user's principal.** ``TrustedUserCAKeys`` holds the hub's
  SSH user CA (the one EShell's login nodes trust), ``AuthorizedPrincipalsFile`` the user's
  name, ``AuthorizedKeysFile none``: a key in ``~/.ssh/authorized_keys`` does not open it.
- **A host key made per session and certified by the hub.** At the first connection the
  session makes an ed25519 host key in a private 0700 directory on the node's local disk and has
  the hub sign it (with the session's own server token) for the host name
  ``<server>.<user>.ink-session``; the laptop trusts the hub's host CA for that pattern
  (``ink ssh-config``), so it checks the host without "trust on first use".
- **Only local forwarding.** ``ssh -L``/``-D`` (the laptop listens) work, as VS Code Remote-SSH
  needs; ``-R`` would make sshd listen on the node, so it is refused.
- **The session's environment.** sshd starts logins with a clean environment; the session's
  variables (``PATH``, the experiment's setup, ``KRB5CCNAME``, Slurm's ``SLURM_*``) are passed
  with ``SetEnv``, except credentials (the server token, share keys and the like).

Job side: imports nothing of the hub.
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import json
import os
import pwd
import re
import shutil
import sys
import tempfile
import time

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from .apps import find_program

HOST_CERT_PATH = "ink/ssh/host-certificate"
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031  # Linux fcntl


def widen_pipe(fd: int) -> None:
    """1 MiB pipe buffers to sshd: fewer wake-ups per MiB than the default 64 KiB."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass

#: variables sshd sets itself for a login, or that describe the jupyter-server, not the shell
_SSHD_OWN = {"HOME", "USER", "LOGNAME", "SHELL", "MAIL", "TERM", "PWD", "OLDPWD", "SHLVL", "_",
             "DISPLAY", "SSH_AUTH_SOCK", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY",
             "SSH_ORIGINAL_COMMAND", "TMUX", "PS1"}


class SSHEndpoint(LoggingConfigurable):
    """Per-session sshd settings and state (host key, host certificate, config file)."""

    sshd = Unicode(
        help="The OpenSSH server binary (Debian's openssh-server, or the image's). Default: "
        "$INK_SSHD, sshd on PATH, /usr/sbin/sshd.",
    ).tag(config=True)

    @default("sshd")
    def _default_sshd(self):
        try:
            return find_program("sshd", "INK_SSHD", "/usr/sbin/sshd", "/usr/local/sbin/sshd")
        except RuntimeError:
            return ""

    sftp_server = Unicode(
        help="sftp-server for the sftp subsystem (scp uses it since OpenSSH 9; so do VS Code and "
        "rsync's file listing tools). Default: the first of Debian's and RHEL's paths that exists.",
    ).tag(config=True)

    @default("sftp_server")
    def _default_sftp_server(self):
        for path in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                     "/usr/lib/ssh/sftp-server"):
            if os.access(path, os.X_OK):
                return path
        return ""

    allow_agent_forwarding = Bool(
        False,
        help="Let `ssh -A` forward the laptop's agent into the session. Off by default: on a "
        "shared batch node root (and any process of the user) could use the forwarded agent.",
    ).tag(config=True)

    env_exclude = List(
        Unicode(),
        [r"^JUPYTERHUB_", r"^JPY_", r"^INK_SHARE_KEY$", r"^INK_SSH_", r"TOKEN", r"SECRET",
         r"PASSW", r"_KEY$", r"^MUNGE_"],
        help="Regular expressions (searched in the name) of session environment variables that "
        "SSH logins do not get: the server's credentials. Everything else of the session's "
        "environment (PATH, the experiment's setup, KRB5CCNAME, SLURM_*) is passed with SetEnv.",
    ).tag(config=True)

    renew_before_seconds = Integer(
        3600,
        help="Ask the hub for a new host certificate when the current one has less than this "
        "left, at the next connection.",
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._dir: str | None = None
        self._valid_before = 0.0
        self._lock = asyncio.Lock()
        self.processes: set[asyncio.subprocess.Process] = set()
        atexit.register(self.cleanup)

    # ---- preparation (once per session, host certificate renewed when it runs out) -------------

    @property
    def user(self) -> str:
        return pwd.getpwuid(os.getuid()).pw_name

    async def config_file(self) -> str:
        """The sshd_config of this session, host key certified; made at the first connection."""
        async with self._lock:
            if self._dir is None or time.time() > self._valid_before - self.renew_before_seconds:
                await self._prepare()
            return os.path.join(self._dir, "sshd_config")

    async def _prepare(self) -> None:
        if not self.sshd:
            raise RuntimeError("sshd is not installed on this node (openssh-server; set $INK_SSHD)")
        if self._dir is None:
            # the node's local disk, not the (shared) home: the private host key stays on the node
            self._dir = tempfile.mkdtemp(prefix="ink-sshd-")
            os.chmod(self._dir, 0o700)
            key = os.path.join(self._dir, "host_ed25519")
            proc = await asyncio.create_subprocess_exec(
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ink-session", "-f", key,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
            output, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"ssh-keygen failed: {output.decode(errors='replace')[:300]}")
        with open(os.path.join(self._dir, "host_ed25519.pub")) as f:
            public_key = f.read().strip()
        answer = await self._host_certificate(public_key)
        self._write(answer)
        self._valid_before = float(answer["valid_before"])
        self.log.info("SSH endpoint ready for %s (host certificate valid until %s)",
                      answer["host_name"], time.strftime("%Y-%m-%d %H:%M", time.localtime(self._valid_before)))

    async def _host_certificate(self, public_key: str) -> dict:
        api = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not api or not token:
            raise RuntimeError("not an INK session (no hub API URL or token): no SSH endpoint")
        request = HTTPRequest(f"{api}/{HOST_CERT_PATH}", method="POST",
                              headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
                              body=json.dumps({"public_key": public_key}), request_timeout=30)
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            body = e.response.body.decode(errors="replace")[:300] if e.response else ""
            raise RuntimeError(f"the hub refused the host certificate: HTTP {e.code} {body}") from None
        answer = json.loads(response.body)
        # what the session writes into its sshd_config must be what it expects: check the shapes
        for field, pattern in (("certificate", r"^ssh-ed25519-cert-v01@openssh\.com [A-Za-z0-9+/=]+\s*$"),
                               ("user_ca", r"^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) [A-Za-z0-9+/=]+$"),
                               ("principal", r"^[A-Za-z0-9._][A-Za-z0-9._-]*$"),
                               ("host_name", r"^[A-Za-z0-9._@-]+$")):
            if not isinstance(answer.get(field), str) or not re.match(pattern, answer[field]):
                raise RuntimeError(f"the hub's host certificate answer has no valid {field!r}")
        if answer["principal"] != self.user:
            raise RuntimeError(f"the hub certified {answer['principal']!r}, this session runs as {self.user!r}")
        return answer

    def _write(self, answer: dict) -> None:
        d = self._dir
        files = {
            "host_ed25519-cert.pub": answer["certificate"].strip() + "\n",
            "user_ca.pub": answer["user_ca"].strip() + "\n",
            "principals": self.user + "\n",
            "sshd_config": self.sshd_config(d),
        }
        for name, text in files.items():
            tmp = os.path.join(d, name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, os.path.join(d, name))

    def session_env(self) -> dict[str, str]:
        """The session's environment as SSH logins get it (credentials left out)."""
        patterns = [re.compile(p) for p in self.env_exclude]
        env = {}
        for name, value in os.environ.items():
            if name in _SSHD_OWN or any(p.search(name) for p in patterns):
                continue
            # SetEnv takes NAME=VALUE words: leave out what its quoting cannot carry
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or not value.isprintable() \
                    or any(c in value for c in '"\\\'#'):
                continue
            env[name] = value
        return env

    def sshd_config(self, d: str) -> str:
        lines = [
            "# INK session sshd: run as the user, one `sshd -i` per connection, no listener",
            f"HostKey {d}/host_ed25519",
            f"HostCertificate {d}/host_ed25519-cert.pub",
            f"TrustedUserCAKeys {d}/user_ca.pub",
            f"AuthorizedPrincipalsFile {d}/principals",
            "AuthorizedKeysFile none",
            f"AllowUsers {self.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "GSSAPIAuthentication no",
            "UsePAM no",
            # StrictModes refuses files under the node's /tmp (1777); ours are in a 0700 directory
            "StrictModes no",
            "PermitRootLogin no",
            "PermitUserEnvironment no",
            "PermitUserRC no",
            "PidFile none",
            "PrintMotd no",
            "X11Forwarding no",
            "PermitTunnel no",
            "GatewayPorts no",
            # -L and -D only: a remote forward (-R) would listen on the node
            "AllowTcpForwarding local",
            "AllowStreamLocalForwarding local",
            f"AllowAgentForwarding {'yes' if self.allow_agent_forwarding else 'no'}",
            "ClientAliveInterval 60",
            "LogLevel INFO",
        ]
        if self.sftp_server:
            lines.append(f"Subsystem sftp {self.sftp_server}")
        env = self.session_env()
        if env:  # one line: sshd uses only the first SetEnv directive
            lines.append("SetEnv " + " ".join(f'"{name}={value}"' for name, value in sorted(env.items())))
        return "\n".join(lines) + "\n"

    # ---- connections ----------------------------------------------------------------------------

    async def spawn(self) -> asyncio.subprocess.Process:
        """A new ``sshd -i`` for one connection (its stdin/stdout are the SSH stream), under a
        supervisor that keeps what the login leaves running in the job
        (:mod:`ink_proxy_ext.ssh_supervisor`)."""
        config = await self.config_file()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ink_proxy_ext.ssh_supervisor", self.sshd, "-i", "-e", "-f", config,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=PIPE_SIZE)
        for fd in (0, 1):
            transport = proc._transport.get_pipe_transport(fd)  # the documented API has no pipe sizes
            pipe = transport.get_extra_info("pipe") if transport is not None else None
            if pipe is not None:
                widen_pipe(pipe.fileno())
        self.processes.add(proc)
        return proc

    async def finish(self, proc: asyncio.subprocess.Process) -> None:
        """A connection's websocket closed: sshd gets end-of-file and ends the login as on a
        dropped connection. Its supervisor stays while processes the login left run (they end
        with the session), then exits by itself."""
        try:
            if proc.stdin and not proc.stdin.is_closing():
                proc.stdin.close()
            await proc.wait()
        except ProcessLookupError:
            pass
        finally:
            self.processes.discard(proc)

    def cleanup(self) -> None:
        """At server exit: no sshd, nothing a login left, no host key (each supervisor passes
        SIGTERM on to everything below it)."""
        for proc in list(self.processes):
            try:
                proc.terminate()
            except ProcessLookupError:
                pass
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
