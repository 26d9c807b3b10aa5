"""The hub's side of share links: ``/hub/ink/share/<owner>/<token>/<sub-path>``.

A user's server only lets its owner in (hub OAuth), so a link to someone else's file cannot
point at that server. It points here instead. This handler decides who is looking (a
logged-in hub user, or, when the site allows it, anyone), starts the owner's portal server if
it is not running, and relays a read-only GET to it with the server's own API token. The
owner's server checks the token, its expiry and revocation, and confines the path; the hub
checks nothing about paths (it never acts on a path that came from a browser).

Nothing a user's server sends back is trusted: directory listings arrive as JSON and are
rendered here with autoescaping; file bytes are relayed with headers chosen here (download,
``nosniff``, a sandboxing CSP), never the server's own, so a user cannot make the hub's origin
serve their HTML or script to another user. Bytes are pulled in bounded ranges, so a large
file to a slow reader never piles up in the hub's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from urllib.parse import quote, unquote

from jupyterhub.handlers.base import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

TOKEN = re.compile(r"^([A-Za-z0-9_-]{16,32})\.([0-9]{1,12})\.([0-9a-f]{32})$")
RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
CHUNK = 8 << 20
SAFE_INLINE = {"image/png", "image/jpeg", "image/gif", "image/webp"}
VIEWER_HEADER = "X-Ink-Share-Viewer"


class ShareLinks(LoggingConfigurable):
    """The hub's secret for share links: each user's servers sign their links with a key derived
    from it (given to the session as ``INK_SHARE_KEY``), so the hub can refuse a forged or expired
    link itself, before it starts anybody's portal server for it."""

    secret_file = Unicode(
        help="File holding the share-link secret (created with mode 0600 if missing; readable by "
        "the hub only). Changing it invalidates every share link.",
    ).tag(config=True)

    @default("secret_file")
    def _default_secret_file(self):
        return os.path.join(os.getcwd(), "ink-share-secret")

    _secret: bytes | None = None

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            try:
                fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32))
            with open(self.secret_file) as f:
                self._secret = f.read().strip().encode()
        return self._secret

    def key_for(self, username: str) -> str:
        """The key a user's servers sign share links with."""
        return hmac.new(self.secret, b"ink-share:" + username.encode(), hashlib.sha256).hexdigest()

    def check(self, owner: str, token: str) -> None:
        """403 for a link the owner's servers did not sign, 410 for an expired one."""
        match = TOKEN.match(token)
        if not match:
            raise web.HTTPError(404, "This is not a valid share link.")
        share_id, expires, signature = match.groups()
        expected = hmac.new(self.key_for(owner).encode(), f"{share_id}.{expires}".encode(),
                            hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(signature, expected):
            raise web.HTTPError(403, "This is not a valid share link.")
        if int(expires) < time.time():
            raise web.HTTPError(410, "This link has expired.")


class ShareRelayHandler(BaseHandler):
    def initialize(self, portal: str, allow_anonymous: bool, links: ShareLinks):
        self.portal = portal
        self.allow_anonymous = allow_anonymous
        self.links = links

    def check_xsrf_cookie(self):
        return None  # GET only, and nothing here changes state for the visitor

    async def get(self, owner_name: str, token: str, subpath: str | None = None):
        visitor = self.current_user
        if visitor is None:
            if not self.allow_anonymous:
                self._to_login()
                return
            viewer = "anonymous"
        else:
            viewer = visitor.name
        owner = self.find_user(owner_name)
        if owner is None:
            raise web.HTTPError(404, "This is not a valid share link.")
        self.links.check(owner.name, token)  # before anything is started for this link
        spawner = await self._running_portal(owner)
        # every segment quoted: a '?', '#' or '%' typed by the visitor stays part of the path the
        # owner's server checks (it refuses '..' itself); nothing else of that server is reachable
        segments = [quote(part, safe="") for part in (subpath or "").split("/")]
        url = url_path_join(spawner.server.url, "ink", "share", token, *segments)
        if (subpath or "").endswith("/") or not subpath:
            url += "/"
        headers = {"Authorization": f"token {spawner.api_token}", VIEWER_HEADER: viewer}
        start, end = 0, None
        wanted = RANGE.match(self.request.headers.get("Range", ""))
        if wanted:
            start = int(wanted.group(1))
            end = int(wanted.group(2)) if wanted.group(2) else None
        try:
            first = await self._fetch(url, headers, start, end)
        except web.HTTPError as e:
            if viewer == "anonymous" and e.status_code == 403:
                self._to_login()  # the share is for logged-in users only
                return
            raise
        if first.headers.get("Content-Type", "").startswith("application/json"):
            await self._render_listing(json.loads(first.body), owner_name, token)
            return
        await self._relay_file(url, headers, first, start, end, bool(wanted))

    def _to_login(self):
        self.redirect(url_path_join(self.hub.base_url, "login") + "?next=" + quote(self.request.uri, safe=""))

    async def _running_portal(self, owner):
        spawner = owner.spawners.get(self.portal) if self.portal in owner.orm_spawners else None
        if spawner is None or not spawner.ready:
            if spawner is not None and spawner.pending:
                raise web.HTTPError(503, "The owner's file server is starting; try again in a few seconds.")
            self.log.info("share link: starting %s's %s server", owner.name, self.portal)
            try:
                await self.spawn_single_user(owner, server_name=self.portal)
                spawner = owner.spawners[self.portal]
                if spawner._spawn_future is not None:
                    await spawner._spawn_future
            except Exception as e:
                self.log.warning("share link: cannot start %s's %s server: %s", owner.name, self.portal, e)
                raise web.HTTPError(503, "The owner's file server could not be started.") from None
        return owner.spawners[self.portal]

    async def _fetch(self, url: str, headers: dict, start: int, end: int | None):
        last = start + CHUNK - 1 if end is None else min(end, start + CHUNK - 1)
        request = HTTPRequest(url, headers={**headers, "Range": f"bytes={start}-{last}"},
                              follow_redirects=False, request_timeout=120)
        try:
            return await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            message = "This link does not work."
            if e.response is not None and e.response.body:
                try:
                    message = json.loads(e.response.body).get("message", message)
                except ValueError:
                    pass
            if e.code == 416:
                raise web.HTTPError(416, "Requested range not satisfiable") from None
            code = e.code if e.code in (400, 403, 404, 410) else 502
            raise web.HTTPError(code, message.removeprefix("share: ")) from None

    async def _render_listing(self, listing: dict, owner: str, token: str):
        base = url_path_join(self.hub.base_url, "ink", "share", quote(owner, safe=""), token)
        here = listing.get("path") or ""
        rows = []
        for entry in listing.get("entries", []):
            name = str(entry.get("name", ""))
            is_dir = entry.get("type") == "directory"
            href = url_path_join(base, *[quote(p) for p in (here.split("/") if here else [])], quote(name))
            rows.append({"name": name, "href": href + ("/" if is_dir else ""), "dir": is_dir,
                         "size": int(entry.get("size") or 0)})
        up = None
        if here:
            parent = here.rsplit("/", 1)[0] if "/" in here else ""
            up = url_path_join(base, *[quote(p) for p in parent.split("/") if p]) + "/"
        share = listing.get("share", {})
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'")
        self.finish(await self.render_template("ink_share.html", owner=owner, share_name=str(share.get("name", "")),
                                               here=here, rows=rows, up=up, total=listing.get("total", len(rows))))

    async def _relay_file(self, url, headers, first, start, end, ranged):
        content_range = first.headers.get("Content-Range", "")
        total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else len(first.body)
        last = total - 1 if end is None else min(end, total - 1)
        kind = first.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        name = _filename(first.headers.get("Content-Disposition", ""))
        self.set_header("Content-Type", kind if kind in SAFE_INLINE else "application/octet-stream")
        self.set_header("Content-Disposition",
                        ("inline" if kind in SAFE_INLINE else "attachment") + f"; filename*=UTF-8''{quote(name)}")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Content-Length", str(last - start + 1 if total else 0))
        if ranged:
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{last}/{total}")
        position = start
        body = first.body
        while True:
            self.write(body)
            await self.flush()
            position += len(body)
            if position > last or not body:
                break
            body = (await self._fetch(url, headers, position, last)).body
        self.finish()


def _filename(disposition: str) -> str:
    match = re.search(r"filename\*=UTF-8''([^;]+)", disposition)
    return unquote(match.group(1)) if match else "download"


def handlers(links: ShareLinks, portal: str = "portal", allow_anonymous: bool = False) -> list[tuple]:
    return [(r"/ink/share/(?P<owner_name>[^/]+)/(?P<token>[^/]+)(?:/(?P<subpath>.*))?", ShareRelayHandler,
             {"portal": portal, "allow_anonymous": allow_anonymous, "links": links})]
