"""Hub API for SSH into sessions (Enode): user certificates for laptops, host certificates for sessions.

``POST /hub/api/ink/ssh/user-certificate`` ``{"public_key": "ssh-ed25519 AAAA..."}``
    The caller's own public key (the private key never leaves the laptop) signed by the hub's
    SSH user CA for the caller's principal (their Unix name), valid for
    ``SessionSSH.user_certificate_seconds`` at most. Needs the scope ``custom:ink:ssh`` on the
    caller's own user (every user's role grants it; a token page token can carry it). The answer
    also carries the host CA's public key and the host-name pattern of the caller's sessions, so
    ``ink ssh-config`` can write a ``@cert-authority`` line: no "trust on first use".

``POST /hub/api/ink/ssh/host-certificate`` ``{"public_key": "ssh-ed25519 AAAA..."}``
    A running session's per-session host key, authenticated with that session's own server
    token (as the port report), signed by the host CA for exactly one host name,
    ``<server>.<user>.ink-session``: a session can only ever vouch for itself. The answer carries
    the user CA's public key and the user's principal, which its sshd trusts (and nothing else).

Both refuse anything but a JSON object with one well-formed key, naming the field and the
reason; no other key is accepted.
"""

from __future__ import annotations

import asyncio
import json

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.user import User
from tornado import web
from traitlets import Integer
from traitlets.config import LoggingConfigurable

from ink_files_ext.scopes import SCOPE_SSH

from .session_api import spawner_for_token
from .ssh_ca import PublicKeyError, SSHCertificateAuthority, SSHHostCertificateAuthority, parse_public_key

#: the DNS-like suffix of every session's SSH host name (never resolved: ssh uses HostKeyAlias)
HOST_SUFFIX = "ink-session"


def host_name(user: str, server: str) -> str:
    """The name a session's host certificate is valid for: one user, one named server."""
    return f"{server}.{user}.{HOST_SUFFIX}"


class SessionSSH(LoggingConfigurable):
    """Settings of SSH into sessions that the hub decides."""

    user_certificate_seconds = Integer(
        3600,
        help="Longest validity of a certificate for a laptop's key. `ink ssh` asks for a fresh "
        "one before every connection, so this only bounds how long a stolen certificate (with "
        "its private key) stays usable; an open connection is not cut when it expires.",
    ).tag(config=True)


def parse_key_request(body: bytes, extra: tuple[str, ...] = ()) -> tuple[object, dict]:
    """``{"public_key": LINE, ...}`` → (key, the other accepted fields); 400 naming the problem."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPError(400, "body must be a JSON object {\"public_key\": \"ssh-ed25519 AAAA...\"}") from None
    if not isinstance(data, dict):
        raise web.HTTPError(400, "body must be a JSON object {\"public_key\": \"ssh-ed25519 AAAA...\"}")
    unexpected = sorted(set(data) - {"public_key", *extra})
    if unexpected:
        raise web.HTTPError(400, f"unexpected key {unexpected[0]!r}: only "
                            f"{', '.join(repr(k) for k in ('public_key', *extra))} accepted")
    if "public_key" not in data:
        raise web.HTTPError(400, "public_key: missing")
    try:
        key = parse_public_key(data["public_key"])
    except PublicKeyError as e:
        raise web.HTTPError(400, f"public_key: {e}") from None
    return key, {k: data[k] for k in extra if k in data}


class _SSHHandler(APIHandler):
    def initialize(self, user_ca: SSHCertificateAuthority, host_ca: SSHHostCertificateAuthority,
                   settings: SessionSSH):
        self.user_ca = user_ca
        self.host_ca = host_ca
        self.ssh_settings = settings

    def finish_private(self, data: dict):
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


class UserCertificateHandler(_SSHHandler):
    """Sign the caller's own public key for the caller's principal."""

    async def post(self):
        user = self.current_user
        if not isinstance(user, User):
            raise web.HTTPError(403, "a user's token or login is required")
        if not self.has_scope(f"{SCOPE_SSH}!user={user.name}"):
            raise web.HTTPError(403, f"this token lacks the scope {SCOPE_SSH}")
        key, fields = parse_key_request(self.request.body, extra=("valid_seconds",))
        longest = self.ssh_settings.user_certificate_seconds
        seconds = fields.get("valid_seconds", longest)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 60 <= seconds <= longest:
            raise web.HTTPError(400, f"valid_seconds: must be an integer from 60 to {longest}")
        cert, valid_before = await asyncio.to_thread(self.user_ca.certify, key, user.name, seconds,
                                                     key_id="ink-laptop")
        host_ca = await asyncio.to_thread(self.host_ca.public_key_line)
        self.log.info("Signed an SSH user certificate for %s (%d s)", user.name, seconds)
        self.finish_private({"certificate": cert, "principal": user.name, "valid_before": valid_before,
                             "host_ca": host_ca, "host_pattern": host_name(user.name, "*")})


class HostCertificateHandler(_SSHHandler):
    """Sign a running session's host key for that session's own host name."""

    async def post(self):
        user = self.current_user
        if not isinstance(user, User):
            raise web.HTTPError(403, "a session's server token is required")
        spawner = spawner_for_token(user, self.get_auth_token())
        if spawner is None or not spawner.name or not spawner.active:
            raise web.HTTPError(403, "this token does not belong to a running session of this user")
        key, _ = parse_key_request(self.request.body)
        principal = host_name(user.name, spawner.name)
        cert, valid_before = await asyncio.to_thread(
            self.host_ca.certify, key, principal, self.host_ca.validity_seconds, host=True,
            key_id="ink-session")
        user_ca = await asyncio.to_thread(self.user_ca.public_key_line)
        self.log.info("Signed the SSH host key of session %s", principal)
        self.finish_private({"certificate": cert, "host_name": principal, "valid_before": valid_before,
                             "user_ca": user_ca, "principal": user.name})


def handlers(user_ca: SSHCertificateAuthority, host_ca: SSHHostCertificateAuthority,
             settings: SessionSSH) -> list[tuple]:
    kwargs = {"user_ca": user_ca, "host_ca": host_ca, "settings": settings}
    return [(r"/api/ink/ssh/user-certificate", UserCertificateHandler, kwargs),
            (r"/api/ink/ssh/host-certificate", HostCertificateHandler, kwargs)]
