"""The hub as an SSH certificate authority: EShell's login nodes and SSH into sessions (Enode).

At each portal start the hub mints a fresh key pair and a short-lived OpenSSH user certificate
for the user's principal (their Unix name) and hands both to the portal session in its
environment (never argv, never a world-readable file; ``ink-session`` moves them into a 0700
directory and out of the environment). Login nodes trust the CA's public key
(``TrustedUserCAKeys`` in sshd_config). Certificates are minted in-process with
``cryptography`` (no ssh-keygen subprocess on the hub).

For SSH from a laptop into a session (:mod:`ink_hub.ssh_api`) the same user CA signs the
laptop's own public key (the private key never leaves the laptop), and a second CA,
:class:`SSHHostCertificateAuthority`, signs each session's per-session host key for a host
name bound to that user and session, so the client checks the host with a
``@cert-authority`` line instead of trusting the first key it sees.
"""

from __future__ import annotations

import datetime
import os
import threading
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import SSHCertificateBuilder, SSHCertificateType
from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

_EXTENSIONS = (b"permit-pty", b"permit-port-forwarding", b"permit-agent-forwarding",
               b"permit-X11-forwarding")

#: the longest public key line accepted (an RSA-16384 key is about 2.8 kB)
MAX_PUBLIC_KEY_LENGTH = 4096


class PublicKeyError(ValueError):
    """A public key the CA will not sign, with the reason."""


def parse_public_key(line: str):
    """An OpenSSH public key line (``type base64 [comment]``) → a key the CA can sign.

    ed25519, ECDSA and RSA of at least 2048 bits; no certificates, no DSA, no security-key
    types (sk-*, which ``cryptography`` cannot certify)."""
    if not isinstance(line, str) or not line.strip():
        raise PublicKeyError("must be an OpenSSH public key line, e.g. 'ssh-ed25519 AAAA...'")
    if len(line) > MAX_PUBLIC_KEY_LENGTH or "\n" in line.strip() or "\x00" in line:
        raise PublicKeyError("must be one OpenSSH public key line")
    parts = line.strip().split()
    if len(parts) < 2:
        raise PublicKeyError("must be 'TYPE BASE64 [comment]'")
    if "-cert-" in parts[0]:
        raise PublicKeyError("give the public key, not a certificate")
    try:
        key = serialization.load_ssh_public_key(" ".join(parts[:2]).encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise PublicKeyError(f"not a usable OpenSSH public key ({e})") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise PublicKeyError(f"an RSA key of {key.key_size} bits is too weak (at least 2048)")
    if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise PublicKeyError(f"key type {parts[0]} is not accepted (use ed25519, ECDSA or RSA)")
    return key


def public_key_line(key) -> str:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


_KEY_LOCK = threading.Lock()


class SSHCertificateAuthority(LoggingConfigurable):
    key_file = Unicode(
        "",
        help="The CA's private key (OpenSSH format, mode 0600, readable by the hub only). Created "
        "(ed25519) on first use if missing; give its .pub to the login nodes' TrustedUserCAKeys.",
    ).tag(config=True)

    validity_seconds = Integer(
        8 * 3600,
        help="How long a user certificate is valid. Short: a leaked certificate expires soon; a "
        "new one is minted at every portal start.",
    ).tag(config=True)

    _key = None
    pub_comment = "ink-hub-user-ca"

    def ca_key(self) -> ed25519.Ed25519PrivateKey:
        with _KEY_LOCK:  # two first uses in threads must not both create the key
            return self._load_or_create()

    def _load_or_create(self) -> ed25519.Ed25519PrivateKey:
        if self._key is None:
            path = Path(self.key_file)
            if path.exists():
                if path.stat().st_mode & 0o077:
                    raise PermissionError(f"{path} must not be readable by others (chmod 600)")
                key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
            else:
                key = ed25519.Ed25519PrivateKey.generate()
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()))
                pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                    serialization.PublicFormat.OpenSSH)
                Path(str(path) + ".pub").write_bytes(pub + f" {self.pub_comment}\n".encode())
                self.log.info("Created the INK SSH user CA %s", path)
            self._key = key
        return self._key

    def public_key_line(self) -> str:
        return self.ca_key().public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()

    def certify(self, public_key, principal: str, seconds: int, host: bool = False,
                key_id: str = "ink") -> tuple[str, int]:
        """Sign ``public_key`` for ``principal``, valid ``seconds`` from now (one minute back for
        clock skew): (certificate line, valid_before as seconds since the epoch)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        valid_before = int((now + datetime.timedelta(seconds=seconds)).timestamp())
        builder = (
            SSHCertificateBuilder()
            .public_key(public_key)
            .serial(int.from_bytes(os.urandom(8), "big"))
            .type(SSHCertificateType.HOST if host else SSHCertificateType.USER)
            .key_id(f"{key_id}:{principal}:{int(now.timestamp())}".encode())
            .valid_principals([principal.encode()])
            .valid_after(int((now - datetime.timedelta(minutes=1)).timestamp()))
            .valid_before(valid_before)
        )
        if not host:  # host certificates carry no extensions
            for extension in _EXTENSIONS:
                builder = builder.add_extension(extension, b"")
        cert = builder.sign(self.ca_key())
        return cert.public_bytes().decode() + "\n", valid_before

    def mint(self, principal: str, validity_seconds: int | None = None) -> tuple[str, str]:
        """A new user key pair and its certificate for ``principal``: (private key, certificate)."""
        seconds = self.validity_seconds if validity_seconds is None else validity_seconds
        user_key = ed25519.Ed25519PrivateKey.generate()
        cert, _ = self.certify(user_key.public_key(), principal, seconds)
        private = user_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption()).decode()
        return private, cert


class SSHHostCertificateAuthority(SSHCertificateAuthority):
    """The CA that signs the per-session host keys of SSH into sessions (Enode).

    A separate key from the user CA: a host certificate must never pass as a user's, and the
    laptops that trust this key for ``*.ink-session`` trust nothing else of the hub's."""

    key_file = Unicode(
        "",
        help="The host CA's private key (OpenSSH format, mode 0600, readable by the hub only). "
        "Created (ed25519) on first use if missing. `ink ssh-config` puts its public key in the "
        "laptop's known_hosts as a @cert-authority line for the user's sessions.",
    ).tag(config=True)

    pub_comment = "ink-hub-session-host-ca"

    validity_seconds = Integer(
        24 * 3600,
        help="How long a session's host certificate is valid. The session asks for a new one "
        "when less than an hour is left, so a session that runs for days keeps a valid one.",
    ).tag(config=True)
