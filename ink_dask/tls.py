"""The session's Dask certificate: TLS with a key only this user can read.

Without it a plain ``SLURMCluster()`` starts a scheduler that accepts anyone on the network
(``tcp://``, no authentication): whoever reaches its port can run code as the user. At
session start ``ink-session`` writes one self-signed certificate and key (made as
:meth:`distributed.security.Security.temporary` makes its in-memory one) into the session's
directory on the shared home (0700, files 0600), so that workers on other nodes read the same
files, and the session's Dask config (:func:`ink_dask.config.dask_config`) points every role
(scheduler, worker, client) at them with ``distributed.comm.require-encryption``. Mutual TLS:
the scheduler accepts only a peer that presents this certificate, so another user (who cannot
read the key) cannot connect.

Needs ``cryptography`` (the ``dask`` extra; JupyterHub depends on it too).
"""

from __future__ import annotations

import datetime
import os

CERT_FILE = "dask-cert.pem"
KEY_FILE = "dask-key.pem"


def write_certificate(directory: str, days: int = 30) -> tuple[str, str]:
    """Write a new key and self-signed certificate into ``directory`` (created 0700, files
    0600, never readable by anyone else at any moment); return (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask-internal")])
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("dask-internal")]), critical=False)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    paths = []
    for filename, data in ((CERT_FILE, cert.public_bytes(serialization.Encoding.PEM)), (KEY_FILE, key_pem)):
        path = os.path.join(directory, filename)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        paths.append(path)
    return paths[0], paths[1]


def tls_config(cert: str, key: str) -> dict:
    """Dask's ``distributed.comm`` settings: every role uses the session's certificate, and
    nothing in this session talks or listens without encryption."""
    role = {"cert": cert, "key": key}
    return {"require-encryption": True,
            "tls": {"ca-file": cert, "scheduler": dict(role), "worker": dict(role), "client": dict(role)}}


def worker_args(cert: str, key: str) -> list[str]:
    """``dask-worker`` arguments for the same certificate (the worker job may not see the
    session's ``$DASK_CONFIG``)."""
    return ["--protocol", "tls://", "--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key]
