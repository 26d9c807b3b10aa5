"""The hub as an SSH certificate authority, for password-free "SSH to the login node" in EShell.

At each portal start the hub mints a fresh key pair and a short-lived OpenSSH user certificate
for the user's principal (their Unix name) and hands both to the portal session in its
environment (never argv, never a world-readable file; ``ink-session`` moves them into a 0700
directory and out of the environment). Login nodes trust the CA's public key
(``TrustedUserCAKeys`` in sshd_config). Certificates are minted in-process with
``cryptography`` (no ssh-keygen subprocess on the hub).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import SSHCertificateBuilder, SSHCertificateType
from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

_EXTENSIONS = (b"permit-pty", b"permit-port-forwarding", b"permit-agent-forwarding",
               b"permit-X11-forwarding")


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

    def ca_key(self) -> ed25519.Ed25519PrivateKey:
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
                Path(str(path) + ".pub").write_bytes(pub + b" ink-hub-user-ca\n")
                self.log.info("Created the INK SSH user CA %s", path)
            self._key = key
        return self._key

    def public_key_line(self) -> str:
        return self.ca_key().public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()

    def mint(self, principal: str, validity_seconds: int | None = None) -> tuple[str, str]:
        """A new user key pair and its certificate for ``principal``: (private key, certificate)."""
        seconds = self.validity_seconds if validity_seconds is None else validity_seconds
        user_key = ed25519.Ed25519PrivateKey.generate()
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            SSHCertificateBuilder()
            .public_key(user_key.public_key())
            .serial(int.from_bytes(os.urandom(8), "big"))
            .type(SSHCertificateType.USER)
            .key_id(f"ink:{principal}:{int(now.timestamp())}".encode())
            .valid_principals([principal.encode()])
            .valid_after(int((now - datetime.timedelta(minutes=1)).timestamp()))
            .valid_before(int((now + datetime.timedelta(seconds=seconds)).timestamp()))
        )
        for extension in _EXTENSIONS:
            builder = builder.add_extension(extension, b"")
        cert = builder.sign(self.ca_key())
        private = user_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption()).decode()
        return private, cert.public_bytes().decode() + "\n"
