"""Job Lens figures of running sessions, read by the hub: the panel's sparkline and efficiency
line, the admin statistics page, and ``GET /hub/api/ink/lens/USER/SERVER``.

A session's sampler (``ink-session``) writes ``~/.ink/lens/session-APP.jsonl`` (0600) as the
user. The hub reads the same file instead of asking the user's portal: a session's figures
must not depend on the portal running, and an admin must not need the user's token. The hub
may be root, and the path lies in a directory the user controls, so the file is opened without
following a symlink and is trusted only if it is a regular file owned by the session's Unix
user: a link to another user's file (or to /etc/shadow) yields nothing. A home on NFS with
root squash hides the file from a root hub; the figures are then simply absent.

Who may read: whoever holds ``read:servers`` on the session's owner — the user (``self``) and
admins; bob gets 403 on alice's sessions.
"""

from __future__ import annotations

import asyncio
import math
import os
import pwd
import stat

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from ink_spawner.joblens import summary as lens
from ink_spawner.session import session_lens_path

MAX_BYTES = 4 << 20
ROUTE = r"/api/ink/lens/([^/]+)/([A-Za-z0-9_-]{1,64})"


#: parsed files by path: (inode, mtime, size) → (header, samples, end). The panel asks every few
#: seconds for every running session; a file that has not changed is not parsed again.
_parsed: dict[str, tuple[tuple, tuple]] = {}
_MAX_CACHED = 4096


def _read_owned(path: str, uid: int) -> tuple[tuple, bytes | None] | None:
    """``(identity, bytes)`` of the file if it is a regular file of ``uid``; the bytes are None
    when ``identity`` (inode, mtime, size) is the cached one (blocking: run in a thread)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != uid:
            return None
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = _parsed.get(path)
        if cached is not None and cached[0] == identity:
            return identity, None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return identity, f.read(MAX_BYTES)
    finally:
        if fd >= 0:
            os.close(fd)


def _figures(unix_user: str, server_name: str, cpus, limit: int) -> dict | None:
    try:
        entry = pwd.getpwnam(unix_user)
    except KeyError:
        return None
    path = session_lens_path(entry.pw_dir, server_name)
    read = _read_owned(path, entry.pw_uid)
    if read is None:
        return None
    identity, data = read
    try:
        if data is None:
            header, samples, end = _parsed[path][1]
        else:
            header, samples, end = lens.parse(data)
            if len(_parsed) >= _MAX_CACHED:
                _parsed.clear()
            _parsed[path] = (identity, (header, samples, end))
        summary = lens.summarize(header, samples, end, cpus=cpus)
        return {"interval": (header or {}).get("interval"), "samples": samples[-limit:],
                "summary": summary, "efficiency": lens.efficiency(summary)}
    except Exception:  # noqa: BLE001 - the file is the user's: what it holds must not break a page
        return None


async def session_figures(spawner, limit: int = 120) -> dict | None:
    """Samples (last ``limit``), summary and efficiency line of a spawner's session, or None."""
    job_user = getattr(spawner, "job_user", "") or ""
    if not getattr(spawner, "job_id", "") or not job_user or not spawner.name:
        return None
    cpus = (spawner.user_options or {}).get("cpus")
    try:
        cpus = int(cpus) if cpus else None
    except (TypeError, ValueError):
        cpus = None
    return await asyncio.to_thread(_figures, job_user, spawner.name, cpus, limit)


def cpu_series(figures: dict | None, points: int = 60) -> list[float]:
    """The last CPU figures (% of one core) for a sparkline."""
    if not figures:
        return []
    series = []
    for sample in figures["samples"][-points:]:
        value = sample.get("cpu", 0.0)
        series.append(round(float(value), 1) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0)
    return series


class LensAPIHandler(APIHandler):
    """GET /hub/api/ink/lens/USER/SERVER?limit=N — a session's Job Lens figures."""

    async def get(self, user_name, server_name):
        if not has_scope(f"read:servers!user={user_name}", self.parsed_scopes):
            raise web.HTTPError(403, f"you may not read the sessions of {user_name}")
        user = self.find_user(user_name)
        spawner = user.spawners.get(server_name) if user is not None and server_name in user.orm_spawners else None
        if spawner is None or not getattr(spawner, "job_id", ""):
            raise web.HTTPError(404, f"{user_name} has no running session {server_name!r}")
        text = self.get_argument("limit", "720")
        if not text.isdigit() or not 1 <= int(text) <= 5000:
            raise web.HTTPError(400, "limit: must be an integer from 1 to 5000")
        figures = await session_figures(spawner, int(text))
        if figures is None:
            raise web.HTTPError(404, f"no Job Lens figures for session {server_name!r} of {user_name}")
        self.set_header("Cache-Control", "no-store")
        self.finish({"user": user_name, "session": server_name, "job_id": spawner.job_id, **figures})


def handlers() -> list[tuple]:
    return [(ROUTE, LensAPIHandler)]
