"""Share links: signed, expiring, revocable, read-only links to one file or directory.

The owner's server keeps the shares in ``~/.ink/shares.json`` (0600, in a 0700 directory) and
signs links with the key the hub derived for this user (``INK_SHARE_KEY``; outside a hub, a
secret kept in that file). A link points at the hub (``/hub/ink/share/<owner>/<token>/…``):
the hub checks who is looking (a logged-in user, or anyone when the site and the share allow
it), and relays the request to the owner's portal server with that server's own token. The hub
checks the signature and expiry first (see ``ink_hub.shares``), so a forged link starts
nothing. This module is the owner's side: it checks the token's signature and expiry, that the share still
exists (revoking is deleting it, effective at once), and that the requested sub-path stays
inside the shared path. It returns a JSON listing for directories (the hub renders it, never
trusting HTML from a user's server) and the bytes for files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import time

from .roots import FilesError, Roots

TOKEN = re.compile(r"^([A-Za-z0-9_-]{16,32})\.([0-9]{1,12})\.([0-9a-f]{32})$")
MAX_EXPIRY_S = 90 * 24 * 3600
MIN_EXPIRY_S = 60


class ShareStore:
    """The user's shares, in one small JSON file written atomically.

    A token is ``ID.EXPIRES.HMAC(key, "ID.EXPIRES")`` (first 128 bits, hex)."""

    def __init__(self, path: str, key: str | None = None):
        self.path = path
        # Under an INK hub, links are signed with the key the hub derived for this user
        # (INK_SHARE_KEY), so that the hub can check a link before relaying it; outside one,
        # with a secret kept in the store.
        self.key = key
        self._lock = threading.Lock()

    def _secret(self, data: dict) -> str:
        return self.key or data["secret"]

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                data = json.load(f)
            if isinstance(data, dict) and isinstance(data.get("secret"), str):
                data.setdefault("shares", {})
                return data
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            pass  # unreadable: start again (old links stop working, which is the safe way)
        return {"secret": secrets.token_hex(32), "shares": {}}

    def _write(self, data: dict) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".shares-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

    @staticmethod
    def _sign(secret: str, share_id: str, expires: int) -> str:
        return hmac.new(secret.encode(), f"{share_id}.{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def create(self, path: str, kind: str, expires_in: int, anonymous: bool) -> dict:
        with self._lock:
            data = self._read()
            now = int(time.time())
            self._drop_expired(data, now)
            share_id = secrets.token_urlsafe(12)
            expires = now + expires_in
            share = {"id": share_id, "path": path, "type": kind, "created": now, "expires": expires,
                     "anonymous": anonymous}
            data["shares"][share_id] = share
            self._write(data)
            token = f"{share_id}.{expires}.{self._sign(self._secret(data), share_id, expires)}"
            return {**share, "token": token}

    def list(self) -> list[dict]:
        with self._lock:
            data = self._read()
            now = int(time.time())
            if self._drop_expired(data, now):
                self._write(data)
            out = []
            for share in data["shares"].values():
                token = f"{share['id']}.{share['expires']}.{self._sign(self._secret(data), share['id'], share['expires'])}"
                out.append({**share, "token": token})
            return sorted(out, key=lambda s: s["created"], reverse=True)

    def revoke(self, share_id: str) -> None:
        with self._lock:
            data = self._read()
            if data["shares"].pop(share_id, None) is None:
                raise FilesError(404, "share: no such share (already revoked or expired)")
            self._write(data)

    def check(self, token: str) -> dict:
        """The share a token stands for, or 403/410. Constant-time signature check first."""
        match = TOKEN.match(token or "")
        if not match:
            raise FilesError(403, "share: this is not a valid share link")
        share_id, expires_s, signature = match.groups()
        with self._lock:
            data = self._read()
        if not hmac.compare_digest(signature, self._sign(self._secret(data), share_id, int(expires_s))):
            raise FilesError(403, "share: this is not a valid share link")
        if int(expires_s) < time.time():
            raise FilesError(410, "share: this link has expired")
        share = data["shares"].get(share_id)
        if share is None or share["expires"] != int(expires_s):
            raise FilesError(410, "share: this link was revoked by its owner")
        return share

    @staticmethod
    def _drop_expired(data: dict, now: int) -> bool:
        expired = [k for k, s in data["shares"].items() if s["expires"] < now]
        for k in expired:
            del data["shares"][k]
        return bool(expired)


def resolve_inside(share: dict, subpath: str, roots: Roots) -> str:
    """The path of ``subpath`` inside the shared directory (or the shared file itself); a
    sub-path leaving the share, by ``..`` or by a symlink, is refused."""
    base = share["path"]
    subpath = (subpath or "").strip("/")
    if share["type"] != "directory":
        if subpath:
            raise FilesError(404, "share: a file share has no sub-paths")
        return roots.resolve(base).path
    if "\0" in subpath or any(part in ("..", ".") for part in subpath.split("/")):
        raise FilesError(400, "share: invalid path in the link")
    target = roots.resolve(os.path.join(base, subpath) if subpath else base).path
    real = os.path.realpath(target)
    real_base = os.path.realpath(base)
    if real != real_base and not real.startswith(real_base.rstrip("/") + "/"):
        raise FilesError(403, "share: that path is outside the shared folder")
    return target
