"""Handlers for share links in the owner's server: manage them (``/ink/api/shares``) and serve
them to the hub's relay (``/ink/share/<token>/<sub-path>``)."""

from __future__ import annotations

import os
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .handlers import DownloadHandler, FilesHandlerMixin
from .listing import list_directory
from .roots import FilesError
from .shares import MAX_EXPIRY_S, MIN_EXPIRY_S, ShareStore, resolve_inside

VIEWER_HEADER = "X-Ink-Share-Viewer"


def share_url(token: str) -> str:
    """Where a link points: the hub's relay, named by the owner (so it works while the owner's
    servers are stopped: the hub starts the portal to answer)."""
    base = os.environ.get("JUPYTERHUB_BASE_URL", "/")
    user = os.environ.get("JUPYTERHUB_USER", "")
    return f"{base}hub/ink/share/{quote(user, safe='')}/{token}/"


class ShareMixin(FilesHandlerMixin):
    @property
    def shares(self) -> ShareStore:
        return self.settings["ink_files_shares"]

    def public(self, share: dict) -> dict:
        return {**share, "url": share_url(share["token"])}


class SharesHandler(ShareMixin, APIHandler):
    """GET: my shares. POST {"path", "expires_in", "anonymous"}: a new link."""

    @web.authenticated
    @authorized
    async def get(self):
        shares = await self.in_thread(self.shares.list)
        self.finish({"shares": [self.public(s) for s in shares],
                     "anonymous_allowed": self.settings["ink_files_anonymous_shares"]})

    @web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        target = self.roots.resolve(body.get("path"), "path")
        expires_in = body.get("expires_in", 86400)
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or not MIN_EXPIRY_S <= expires_in <= MAX_EXPIRY_S:
            raise FilesError(400, f"expires_in: seconds between {MIN_EXPIRY_S} and {MAX_EXPIRY_S}")
        anonymous = body.get("anonymous", False)
        if not isinstance(anonymous, bool):
            raise FilesError(400, "anonymous: true or false")
        if anonymous and not self.settings["ink_files_anonymous_shares"]:
            raise FilesError(403, "anonymous: this site does not allow links that work without logging in")
        kind = "directory" if os.path.isdir(target.path) else "file"
        share = await self.in_thread(self.shares.create, target.path, kind, expires_in, anonymous)
        self.set_status(201)
        self.finish(self.public(share))


class ShareHandler(ShareMixin, APIHandler):
    """DELETE /ink/api/shares/ID: revoke (the link stops working at once)."""

    @web.authenticated
    @authorized
    async def delete(self, share_id: str):
        await self.in_thread(self.shares.revoke, share_id)
        self.set_status(204)
        self.finish()


class ShareServeHandler(ShareMixin, DownloadHandler):
    """GET /ink/share/TOKEN/SUBPATH, called by the hub's relay with this server's own token.
    Read-only by construction: GET and HEAD only."""

    check_ink_scope = False  # the caller is the hub, with the server's token; the share token decides

    @web.authenticated
    @authorized
    async def get(self, token: str, subpath: str = "", include_body: bool = True):
        self.check_xsrf_cookie()  # the relay's token requests pass; cross-site cookie requests do not
        share = await self.in_thread(self.shares.check, token)
        viewer = self.request.headers.get(VIEWER_HEADER, "")
        if viewer == "" or (viewer == "anonymous" and not (share["anonymous"] and self.settings["ink_files_anonymous_shares"])):
            raise FilesError(403, "share: this link needs you to log in")
        target = await self.in_thread(resolve_inside, share, subpath, self.roots)
        self.log.info("share %s: %s reads %s", share["id"], viewer, target)
        if os.path.isdir(target):
            page = await self.in_thread(list_directory, target, limit=5000)
            self.set_header("Content-Type", "application/json")
            rel = os.path.relpath(target, share["path"])
            self.finish({"share": {"name": os.path.basename(share["path"]), "expires": share["expires"],
                                   "type": share["type"]},
                         "path": "" if rel == "." else rel, "total": page["total"],
                         "entries": [{"name": e["name"], "type": e["type"], "size": e["size"], "mtime": e["mtime"]}
                                     for e in page["entries"]]})
            return
        self._target = target
        self.inline = False
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(os.path.basename(target))}")
        await web.StaticFileHandler.get(self, target.lstrip("/"), include_body=include_body)

    async def head(self, token: str, subpath: str = ""):
        return await self.get(token, subpath, include_body=False)


def share_handlers() -> list[tuple]:
    return [
        (r"/ink/api/shares", SharesHandler),
        (r"/ink/api/shares/(?P<share_id>[A-Za-z0-9_-]{1,64})", ShareHandler),
        (r"/ink/share/(?P<token>[A-Za-z0-9_.-]{1,100})(?:/(?P<subpath>.*))?", ShareServeHandler),
    ]
