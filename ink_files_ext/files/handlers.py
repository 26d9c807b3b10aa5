"""The file manager's JSON API (``/ink/api/files/...``), as the user, inside the user's server.

Every handler is jupyter-server's: hub OAuth or token authentication, ``@authorized`` on the
``contents`` resource, XSRF checks on anything that changes files when the request carries a
cookie. Paths arrive as real absolute paths (what the address bar shows) and go through
:class:`~.roots.Roots` before anything touches the disk. Blocking file-system work runs in a
worker thread.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import posixpath
import re
from urllib.parse import quote

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import iostream, web

from ..scopes import SCOPE_FILES, SCOPE_FILES_READ

from .. import api_auth
from . import operations, xrootd
from .listing import describe, list_directory
from .roots import WITHIN_HEADER, ConfinedRoots, FilesError, Roots, check_name
from .uploads import ChunkWriter, Uploads

# Types a browser may show inline; everything else is a download. Inline text is sent as
# text/plain and every file response carries a sandbox CSP, so an uploaded .html or .svg cannot
# run script in the server's origin.
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")


class FilesHandlerMixin(ExtensionHandlerMixin):
    """Shared by the API handlers: the roots, the uploads, errors as JSON, and INK's token scopes."""

    auth_resource = "contents"
    #: a JSON API (401 when nobody is logged in), not a page (sent to log in)
    api = True
    #: a request with a token (a script, the ``ink`` client) needs INK's files scope on top of
    #: access to this server; the owner's browser login does not
    check_ink_scope = True

    async def prepare(self):
        try:
            await super().prepare()
        except web.HTTPError as e:
            raise self.as_unauthenticated(e) from None
        if self._finished or not self.api:  # pages go to the login page, as jupyter-server's do
            return
        if self.current_user is None:  # the methods allow it (see file_handlers): answer 401 here
            raise self.as_unauthenticated(web.HTTPError(403))
        await self.require_files_scope()
        if WITHIN_HEADER in self.request.headers and self.request.method in self.allowed_methods():
            self.roots  # noqa: B018 - a workspace is checked on every request, used or not

    @classmethod
    def allowed_methods(cls) -> list[str]:
        return [m.upper() for m in ("get", "head", "post", "put", "delete")
                if getattr(cls, m) is not getattr(web.RequestHandler, m)]

    def upload(self, upload_id: str):
        """An upload by id; seen through a workspace, only one whose file goes inside it."""
        upload = self.uploads.get(upload_id)
        if isinstance(self.roots, ConfinedRoots):
            self.roots.resolve(upload.path, "upload", must_exist=False)
        return upload

    def write_error(self, status_code: int, **kwargs) -> None:
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'token realm="INK"')
        if status_code == 405:  # RFC 9110: say what is allowed
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        APIHandler.write_error(self, status_code, **kwargs)  # JSON (downloads too)

    def as_unauthenticated(self, error: web.HTTPError) -> web.HTTPError:
        """Nobody logged in and no token: 401 saying how to authenticate (jupyter-server answers
        403, from its XSRF check, before it knows there is no user)."""
        if error.status_code == 403 and getattr(self, "_jupyter_current_user", None) is None:
            return web.HTTPError(401, "authentication required: log in, or send 'Authorization: token <hub token>'")
        return error

    async def require_files_scope(self) -> None:
        if not self.check_ink_scope or not api_auth.header_token(self):
            return
        model = await api_auth.authenticate(self)  # checked with the hub, uncached: revocation is immediate
        read_only = self.request.method in ("GET", "HEAD")
        api_auth.require_scope(self, model, SCOPE_FILES_READ if read_only else SCOPE_FILES)

    @property
    def roots(self) -> Roots | ConfinedRoots:
        """The user's roots; seen through one folder when the request names a workspace
        (``X-Ink-Within``, sent by ``ink mcp --workspace``): nothing outside it is reachable."""
        if not hasattr(self, "_ink_roots"):
            roots = self.settings["ink_files_roots"]
            within = self.request.headers.get(WITHIN_HEADER)
            if within is not None:
                if not within.strip():
                    raise FilesError(400, f"{WITHIN_HEADER}: must name a folder (absolute, or relative to your home)")
                if len(within) > self.MAX_QUERY_PATH:
                    raise FilesError(400, f"{WITHIN_HEADER}: longer than {self.MAX_QUERY_PATH} characters")
                roots = ConfinedRoots(roots, within)
            self._ink_roots = roots
        return self._ink_roots

    @property
    def uploads(self) -> Uploads:
        return self.settings["ink_files_uploads"]

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise FilesError(400, "body: must be a JSON object") from None
        if not isinstance(data, dict):
            raise FilesError(400, "body: must be a JSON object")
        return data

    #: longest path accepted in a URL: percent-encoded, a longer one would not fit the proxy's
    #: 16 KiB request line (it would answer 431 before we see it)
    MAX_QUERY_PATH = 1024

    def query_path(self, default: str = "") -> str:
        if default == "~" and isinstance(self.roots, ConfinedRoots):
            default = self.roots.path  # a workspace's listings start in the workspace
        path = self.get_argument("path", default)
        if len(path) > self.MAX_QUERY_PATH:
            raise FilesError(400, f"path: longer than {self.MAX_QUERY_PATH} characters in a URL")
        return path

    async def in_thread(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)


class ListHandler(FilesHandlerMixin, APIHandler):
    @web.authenticated
    @authorized
    async def get(self):
        path = self.query_path("~")
        try:
            options = dict(offset=int(self.get_argument("offset", "0")), limit=int(self.get_argument("limit", "200")),
                           sort=self.get_argument("sort", "name"), order=self.get_argument("order", "asc"),
                           name_filter=self.get_argument("filter", ""), hidden=self.get_argument("hidden", "0") == "1")
            if self.get_argument("hidden", "0") not in ("0", "1"):
                raise ValueError
        except ValueError:
            raise FilesError(400, "offset, limit: whole numbers; hidden: 0 or 1") from None
        if path.startswith("root://"):
            root, server, remote = xrootd.resolve(self.roots, path)
            page = await self.in_thread(xrootd.list_directory, server, remote, **options)
            page["root"] = root.as_json()
            parent = posixpath.dirname(remote)
            page["parent"] = None if f"{server}/{remote}" == root.url or remote == "/" else f"{server}/{parent}"
            try:
                xrootd.resolve(self.roots, page["parent"] or "")
            except FilesError:
                page["parent"] = None
            self.finish(page)
            return
        target = self.roots.resolve(path)
        page = await self.in_thread(list_directory, target.path, **options)
        page["writable"] = page["writable"] and target.writable
        page["root"] = target.root.as_json()
        parent = os.path.dirname(target.path)
        page["parent"] = parent if parent != target.path and self.roots.root_of(parent) else None
        self.finish(page)


class StatHandler(FilesHandlerMixin, APIHandler):
    @web.authenticated
    @authorized
    async def get(self):
        path = self.query_path("~")
        if path.startswith("root://"):
            _, server, remote = xrootd.resolve(self.roots, path)
            self.finish({**await self.in_thread(xrootd.stat, server, remote), "writable": False})
            return
        target = self.roots.resolve(path)
        try:
            entry = await self.in_thread(describe, target.path)
        except OSError as e:
            raise FilesError(404, f"path: cannot read {target.path}: {e.strerror}") from None
        entry["writable"] = target.writable and os.access(target.path, os.W_OK)
        self.finish(entry)


class RootsHandler(FilesHandlerMixin, APIHandler):
    @web.authenticated
    @authorized
    def get(self):
        self.finish({"roots": [r.as_json() for r in self.roots.all]})


class UsageHandler(FilesHandlerMixin, APIHandler):
    """GET /ink/api/files/usage: size, used and free bytes of the file system under each root
    (``statvfs``, so the figures are the file system's as the user sees it, quota-less). XRootD
    roots report nulls: their servers are not asked."""

    @web.authenticated
    @authorized
    async def get(self):
        roots = self.roots
        entries = []
        for root in roots.all:
            entry = root.as_json()
            entry.update(await self.in_thread(_usage, root.path) if not root.url else
                         {"total": None, "used": None, "free": None})
            entries.append(entry)
        self.finish({"roots": entries})


def _usage(path: str) -> dict:
    try:
        st = os.statvfs(path)
    except OSError as e:
        return {"total": None, "used": None, "free": None, "error": e.strerror}
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize  # what the user may still write (root's reserve excluded)
    return {"total": total, "used": total - st.f_bfree * st.f_frsize, "free": free}


class DownloadHandler(FilesHandlerMixin, JupyterHandler, web.StaticFileHandler):
    """GET /ink/api/files/download?path=P[&inline=1]: the file, streamed, with HTTP Range
    (tornado's StaticFileHandler does ranges, conditional requests and streaming)."""

    CHUNK = 1 << 20

    def initialize(self, **kwargs):
        web.StaticFileHandler.initialize(self, path="/")
        ExtensionHandlerMixin.initialize(self, **kwargs)

    @property
    def content_security_policy(self) -> str:
        return "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"

    @web.authenticated
    @authorized
    async def get(self, include_body: bool = True):
        self.check_xsrf_cookie()  # cookie requests must come from our own pages (Referer)
        path = self.query_path()
        if path.startswith("root://"):
            await self._xrootd_download(path, include_body)
            return
        target = self.roots.resolve(path)
        if not os.path.isfile(target.path):
            raise FilesError(400, f"path: {target.path} is not a file")
        if not os.access(target.path, os.R_OK):
            raise FilesError(403, f"path: permission denied reading {target.path}")
        self._target = target.path
        name = os.path.basename(target.path)
        self.inline = self.get_argument("inline", "0") == "1"
        if not self.inline:
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        await web.StaticFileHandler.get(self, target.path.lstrip("/"), include_body=include_body)

    async def head(self):
        return await self.get(include_body=False)

    async def _xrootd_download(self, url: str, include_body: bool) -> None:
        """Stream an XRootD file (one byte range at most, like StaticFileHandler)."""
        _, server, remote = xrootd.resolve(self.roots, url)
        entry = await self.in_thread(xrootd.stat, server, remote)
        if entry["type"] != "file":
            raise FilesError(400, f"path: {url} is not a file")
        size = entry["size"]
        start, end = 0, size - 1
        wanted = self.request.headers.get("Range")
        if wanted:
            match = re.match(r"^bytes=(\d*)-(\d*)$", wanted)
            if not match or (not match.group(1) and not match.group(2)):
                raise FilesError(416, "Range: one range, bytes=START-END")
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start = max(0, size - int(match.group(2)))
            if start > end:
                self.set_header("Content-Range", f"bytes */{size}")
                raise FilesError(416, "Range: outside the file")
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end}/{size}")
        self._target = remote
        self.inline = self.get_argument("inline", "0") == "1"
        self.set_header("Content-Type", self.get_content_type())
        self.set_header("Content-Length", str(max(0, end - start + 1)))
        self.set_header("Accept-Ranges", "bytes")
        self.set_extra_headers(remote)
        if not self.inline:
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(posixpath.basename(remote))}")
        if include_body and size:
            chunks = xrootd.read_range(server, remote, start, end)
            while (chunk := await self.in_thread(next, chunks, None)) is not None:
                self.write(chunk)
                await self.flush()
        self.finish()

    def validate_absolute_path(self, root: str, absolute_path: str) -> str:
        return self._target  # checked by Roots.resolve in get()

    def get_content_type(self) -> str:
        mime = mimetypes.guess_type(self._target)[0] or "application/octet-stream"
        if self.inline and mime not in INLINE_TYPES:
            return "text/plain; charset=utf-8" if mime.startswith("text/") else "application/octet-stream"
        return mime

    def set_extra_headers(self, path):
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-cache")

    def compute_etag(self):
        return None

    @classmethod
    def get_content(cls, abspath, start=None, end=None):
        """Like tornado's, in 1 MiB reads instead of 64 KiB (four times the throughput here)."""
        with open(abspath, "rb") as file:
            if start is not None:
                file.seek(start)
            remaining = (end if end is not None else os.fstat(file.fileno()).st_size) - (start or 0)
            while remaining > 0:
                chunk = file.read(min(cls.CHUNK, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk


class ZipHandler(FilesHandlerMixin, APIHandler):
    """GET /ink/api/files/zip?path=A&path=B: a streamed zip of files and directories."""

    @web.authenticated
    @authorized
    async def get(self):
        self.check_xsrf_cookie()
        wanted = self.get_arguments("path")
        if any(len(p) > self.MAX_QUERY_PATH for p in wanted):
            raise FilesError(400, f"path: longer than {self.MAX_QUERY_PATH} characters in a URL")
        if not wanted:
            raise FilesError(400, "path: at least one path to put in the archive")
        paths = [self.roots.resolve(p, "path").path for p in wanted]
        name = (os.path.basename(paths[0]) if len(paths) == 1 else "files") or "files"
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}.zip")
        cancelled = False
        chunks = operations.zip_stream(paths, self.roots, lambda: cancelled)
        try:
            while True:
                chunk = await self.in_thread(next, chunks, None)
                if chunk is None:
                    break
                self.write(chunk)
                await self.flush()
        except iostream.StreamClosedError:
            cancelled = True
            await self.in_thread(chunks.close)
            return
        self.finish()


class MkdirHandler(FilesHandlerMixin, APIHandler):
    @web.authenticated
    @authorized
    async def post(self):
        path = self.body().get("path")
        target = self._new_path(path)
        await self.in_thread(operations.mkdir, target)
        self.set_status(201)
        self.finish(await self.in_thread(describe, target))

    def _new_path(self, path) -> str:
        if not isinstance(path, str):
            raise FilesError(400, "path: a path is needed")
        check_name(os.path.basename(path.rstrip("/")) or "", "path")
        return self.roots.resolve_writable(path, must_exist=False).path


class TouchHandler(MkdirHandler):
    @web.authenticated
    @authorized
    async def post(self):
        target = self._new_path(self.body().get("path"))
        await self.in_thread(operations.touch, target)
        self.set_status(201)
        self.finish(await self.in_thread(describe, target))


class MoveHandler(MkdirHandler):
    """POST {"path", "to"}: rename or move; copy with /copy. ``to`` may be an existing directory
    (the item goes inside it) or a new name."""

    operation = staticmethod(operations.move)
    source_must_be_writable = True

    @web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        source = (self.roots.resolve_writable if self.source_must_be_writable else self.roots.resolve)(
            body.get("path"), "path")
        to = body.get("to")
        if not isinstance(to, str) or not to:
            raise FilesError(400, "to: a destination path is needed")
        target = self.roots.resolve_writable(to, "to", must_exist=False).path
        if os.path.isdir(target):
            target = os.path.join(target, os.path.basename(source.path))
        else:
            check_name(os.path.basename(target), "to")
        await self.in_thread(self.operation, source.path, target)
        self.finish(await self.in_thread(describe, target))


class CopyHandler(MoveHandler):
    operation = staticmethod(operations.copy)
    source_must_be_writable = False


class DeleteHandler(FilesHandlerMixin, APIHandler):
    @web.authenticated
    @authorized
    async def post(self):
        paths = self.body().get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise FilesError(400, "paths: a list of paths to delete")
        targets = [self.roots.resolve_writable(p, "paths").path for p in paths]
        for target in targets:
            await self.in_thread(operations.delete, target, self.roots)
        self.finish({"deleted": targets})


class UploadsHandler(FilesHandlerMixin, APIHandler):
    """POST /ink/api/files/uploads {"path", "size", "overwrite"}: declare an upload."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        path = body.get("path")
        if not isinstance(path, str):
            raise FilesError(400, "path: where the file goes")
        check_name(os.path.basename(path), "path")
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise FilesError(400, "overwrite: true or false")
        target = self.roots.resolve_writable(path, must_exist=False)
        upload = await self.in_thread(self.uploads.create, target.path, body.get("size"), overwrite)
        self.set_status(201)
        self.finish(upload.as_json())


@web.stream_request_body
class UploadChunkHandler(FilesHandlerMixin, APIHandler):
    """PUT /ink/api/files/uploads/ID with Content-Range: write one chunk (at most 16 MiB; the page
    and the ``ink`` client send 8 MiB) at the upload's offset. GET: where to resume. DELETE: give
    up and remove the part file.

    The body is streamed into the part file as it arrives (:class:`~.uploads.ChunkWriter`), after
    the caller is authenticated and authorized in ``prepare()`` (before any byte is read). A
    refused chunk is still read to its end and then answered, never cut off mid-body (which a
    proxy reports as a 503); an interrupted chunk does not move the upload's offset."""

    MAX_CHUNK = 16 << 20

    _chunk: ChunkWriter | None = None
    #: a request refused in ``prepare()``: answered once its body has been read
    _refusal: web.HTTPError | None = None
    _preparing = False

    async def prepare(self):
        # tornado reads a streamed body only after prepare(), even an empty one, and closes a
        # connection whose request it answered before reading it (without saying so). A proxy
        # that keeps its connections to us alive (CHP does) then sends the next request into
        # the closing socket and answers its client with a 503. So a refusal found here is
        # kept, the body is read (and dropped), and the method answers it.
        self._preparing = True
        try:
            await self._prepare_chunk()
        except web.HTTPError as e:
            if self._finished or self._oversized():
                raise
            self._refusal = e
        finally:
            self._preparing = False

    def _oversized(self) -> bool:
        length = self.request.headers.get("Content-Length", "")
        return length.isdigit() and int(length) > self.MAX_CHUNK

    async def _prepare_chunk(self):
        await super().prepare()  # authenticated, XSRF for cookies, INK's files scope for tokens
        if self._finished or self.request.method != "PUT":
            return
        if not self.authorizer.is_authorized(self, self.current_user, "write", self.auth_resource):
            raise web.HTTPError(403, "not allowed to write files in this server")
        if isinstance(self.roots, ConfinedRoots):
            self.upload(self.path_kwargs["upload_id"])  # 404, or 403 outside the workspace
        length = self.request.headers.get("Content-Length")
        self._chunk = ChunkWriter(self.uploads, self.path_kwargs["upload_id"],
                                  self.request.headers.get("Content-Range"),
                                  int(length) if length and length.isdigit() else None, self.MAX_CHUNK)
        await self._chunk.open()

    def write_error(self, status_code: int, **kwargs) -> None:
        if self._preparing:
            # answered before the body was read (a chunk over the limit): tornado closes the
            # connection after this answer; say so, so that the proxy does not reuse it
            self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)

    def data_received(self, chunk: bytes):
        if self._chunk is not None:
            return self._chunk.feed(chunk)  # tornado awaits it (flow control) when not None
        return None

    def on_connection_close(self):
        if self._chunk is not None:  # the client hung up mid-chunk: the offset stays
            asyncio.ensure_future(self._chunk.abandon())
        super().on_connection_close()

    def refuse_if_refused(self) -> None:
        if self._refusal is not None:  # the body has been read: now the answer
            raise self._refusal

    async def put(self, upload_id: str):
        self.refuse_if_refused()
        await self._write_chunk(upload_id)

    @web.authenticated
    @authorized
    async def _write_chunk(self, upload_id: str):
        upload = await self._chunk.close()
        self.finish(upload.as_json())

    async def get(self, upload_id: str):
        self.refuse_if_refused()
        await self._read_upload(upload_id)

    @web.authenticated
    @authorized
    def _read_upload(self, upload_id: str):
        self.finish(self.upload(upload_id).as_json())

    async def delete(self, upload_id: str):
        self.refuse_if_refused()
        await self._cancel_upload(upload_id)

    @web.authenticated
    @authorized
    async def _cancel_upload(self, upload_id: str):
        upload = self.upload(upload_id)
        await self.in_thread(self.uploads.cancel, upload)
        self.set_status(204)
        self.finish()


class FilesNotFoundHandler(FilesHandlerMixin, APIHandler):
    """Anything else under the API: a JSON 404, not jupyter-server's HTML page."""

    @web.authenticated
    @authorized
    def get(self, *args):
        raise FilesError(404, f"no such API path: {self.request.path}")

    post = put = delete = get


def file_handlers() -> list[tuple]:
    api = r"/ink/api/files"
    routes = [
        (rf"{api}/roots", RootsHandler),
        (rf"{api}/usage", UsageHandler),
        (rf"{api}/list", ListHandler),
        (rf"{api}/stat", StatHandler),
        (rf"{api}/download", DownloadHandler),
        (rf"{api}/zip", ZipHandler),
        (rf"{api}/mkdir", MkdirHandler),
        (rf"{api}/touch", TouchHandler),
        (rf"{api}/move", MoveHandler),
        (rf"{api}/copy", CopyHandler),
        (rf"{api}/delete", DeleteHandler),
        (rf"{api}/uploads", UploadsHandler),
        (rf"{api}/uploads/(?P<upload_id>[A-Za-z0-9_-]{{1,64}})", UploadChunkHandler),
        (rf"{api}/.*", FilesNotFoundHandler),
    ]
    # Nobody logged in: jupyter-server would redirect to the login page or answer 403; an API
    # answers 401 (FilesHandlerMixin.prepare), so its methods let the request reach prepare().
    for _, handler in routes:
        for method in ("get", "head", "post", "put", "delete"):
            function = vars(handler).get(method)
            if function is not None:
                allow_unauthenticated(function)
    return routes

