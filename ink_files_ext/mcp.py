"""``/ink/mcp``: the MCP server of the ``ink`` client, over streamable HTTP, in the user's portal.

For agents that run in a session or in a browser: they reach their tools at
``/user/NAME/portal/ink/mcp`` with a hub token, through the hub's proxy like every other
request, and nothing new listens anywhere (no port, no socket, no process).

How a request goes:

1. This tornado handler authenticates it the way the job API does (:mod:`.api_auth`):
   a token in the ``Authorization`` header, checked with the hub without cache (revoked or
   expired: 401 at once), allowed into this server (else 403), holding at least one of INK's
   read scopes on the owner (else 403 naming them). A browser cookie is not enough: the tools
   act with the caller's token, so there must be one.
2. It hands the request to the SDK's own streamable-HTTP transport
   (``StreamableHTTPSessionManager``, stateless, JSON responses) as an ASGI call: tornado and
   the SDK share the server's asyncio loop. Stateless means every request stands alone with
   its own token: no MCP session another caller could join.
3. Each tool calls the job, file and hub APIs with the **caller's** token (forwarded from the
   request's header): the hub's internal API address, and this same server — its GET requests
   handed to the tornado application in-process (:class:`InProcessAdapter`), the others over
   loopback. The checks of those APIs apply as they do for any client (scopes on every
   action), so the endpoint never has more rights than its caller's token; only the hub is not
   asked again about a token this handler checked at the start of the same MCP request
   (:func:`.api_auth.vouch`: a random key, valid with that token until the request ends).

Settings (traitlets of :class:`InkMcpApp`): ``workspace``, ``read_only``, ``max_read_bytes``,
the same safety modes as ``ink mcp``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import logging
import os
import threading

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from traitlets import Bool, Int, Unicode, validate

from .scopes import SCOPE_FILES_READ, SCOPE_JOBS_READ

from . import api_auth as auth

ROUTE = r"/ink/mcp/?"
#: header this handler sets (after removing any sent by the client) to name the caller in the log
CALLER_HEADER = "x-ink-mcp-caller"
#: header this handler sets (after removing any sent by the client) to hand the tools the key under
#: which it vouches for the caller's token for the time of the request (api_auth.vouch)
CHECKED_KEY_HEADER = "x-ink-mcp-checked"
INTERNAL_HEADERS = (CALLER_HEADER, CHECKED_KEY_HEADER)


class McpBridge:
    """The SDK's streamable-HTTP transport, run inside this server's event loop."""

    def __init__(self, server, log):
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        # The SDK's DNS-rebinding protection guards servers that trust ambient credentials; this
        # one takes only a bearer token, which a rebinding page cannot send, and the hub's
        # proxy presents the public host name.
        self.manager = StreamableHTTPSessionManager(
            app=server._lowlevel_server, stateless=True, json_response=True,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.log = log
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # this server's loop, once a request came

    async def started(self) -> None:
        if self._ready is None:
            self.loop = asyncio.get_running_loop()
            self._ready = asyncio.Event()
            self._task = asyncio.ensure_future(self._run())
        await self._ready.wait()

    async def _run(self) -> None:
        async with self.manager.run():
            self._ready.set()
            await asyncio.Event().wait()  # until the server stops (the task is cancelled)

    async def handle(self, handler: "McpHandler", caller: str, checked_key: str) -> None:
        await self.started()
        request = handler.request
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.get_all()
                   if k.lower() not in INTERNAL_HEADERS]
        headers.append((CALLER_HEADER.encode(), caller.encode("utf-8")))
        headers.append((CHECKED_KEY_HEADER.encode(), checked_key.encode("ascii")))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": request.method, "scheme": request.protocol, "path": "/mcp", "raw_path": b"/mcp",
            "query_string": (request.query or "").encode("latin-1"), "root_path": "", "headers": headers,
            "client": (request.remote_ip or "", 0), "server": None, "state": {},
        }
        body = request.body or b""
        sent_body = False
        closed = handler.closed

        async def receive():
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await closed.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                handler.set_status(message["status"])
                handler.clear_header("Content-Type")
                for k, v in message.get("headers", []):
                    handler.add_header(k.decode("latin-1"), v.decode("latin-1"))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    handler.write(message["body"])
                if message.get("more_body"):
                    await handler.flush()

        await self.manager.handle_request(scope, receive, send)
        if not handler._finished:
            handler.finish()


class _Capture:
    """The connection of a request answered in-process: keeps the handler's response."""

    def __init__(self):
        self.context = type("Context", (), {"remote_ip": "127.0.0.1", "protocol": "http"})()
        self.start = None
        self.headers = None
        self.chunks: list[bytes] = []
        self.done = asyncio.get_running_loop().create_future()

    def set_close_callback(self, callback):
        pass

    def write_headers(self, start_line, headers, chunk=None):
        self.start, self.headers = start_line, headers
        return self.write(chunk) if chunk else self._done_future()

    def write(self, chunk):
        self.chunks.append(bytes(chunk))
        return self._done_future()

    def finish(self):
        if not self.done.done():
            self.done.set_result(None)

    @staticmethod
    def _done_future():
        f = asyncio.get_running_loop().create_future()
        f.set_result(None)
        return f


class InProcessAdapter:
    """A ``requests`` transport for the tools' GET requests to this same server: the request is
    handed to this server's tornado application on its own event loop, as if it had come over
    loopback, with no socket, HTTP parsing or urllib3 in between. The handlers and their checks
    are the very same; only the bytes on the wire are skipped. Other methods (uploads, which
    stream their body, and every write) and streamed reads still go over HTTP. The answer is
    kept in memory: the tools read at most their caps (read limit, output slice, listing)."""

    def __init__(self, app, loop_of, http):
        self.app, self.loop_of, self.http = app, loop_of, http

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        import requests
        from requests.structures import CaseInsensitiveDict
        from urllib.parse import urlsplit

        if stream or request.method not in ("GET", "HEAD"):  # a streamed answer needs a real body
            return self.http.send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        url = urlsplit(request.url)
        uri = url.path + (f"?{url.query}" if url.query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "accept-encoding"}
        headers["Host"] = url.netloc
        wait = timeout[1] if isinstance(timeout, tuple) else timeout
        future = asyncio.run_coroutine_threadsafe(self._dispatch(request.method, uri, headers), self.loop_of())
        try:
            capture = future.result(wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise requests.exceptions.ReadTimeout(f"no answer from {uri} within {wait} s") from None
        response = requests.Response()
        response.status_code = capture.start.code
        response.reason = capture.start.reason
        response.headers = CaseInsensitiveDict(dict(capture.headers.get_all()))
        response._content = b"".join(capture.chunks)
        response._content_consumed = True
        response.raw = io.BytesIO(response._content)  # redirects and iter_content read it
        response.url = request.url
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    async def _dispatch(self, method, uri, headers):
        from tornado import httputil

        capture = _Capture()
        request = httputil.HTTPServerRequest(method=method, uri=uri, version="HTTP/1.1",
                                             headers=httputil.HTTPHeaders(headers), body=b"",
                                             connection=capture)
        self.app(request)
        await capture.done
        return capture

    def close(self):
        self.http.close()


def _thread_session(local):
    """This worker thread's HTTP session: its connections to this server and the hub stay open
    between calls. A thread runs one tool call at a time, and each call's client sets its own
    caller's token on it before any request."""
    import requests

    if getattr(local, "session", None) is None:
        local.session = requests.Session()
        if getattr(local, "adapter", None) is not None:
            local.adapter.http = local.session.get_adapter(local.prefix)
            local.session.mount(local.prefix, local.adapter)
    local.session.cookies.clear()  # nothing of an earlier caller's answers is sent again
    return local.session


class McpHandler(ExtensionHandlerMixin, APIHandler):
    """POST (and GET/DELETE, which the stateless transport answers itself) ``/ink/mcp``."""

    def initialize(self, **kwargs):
        super().initialize(**kwargs)
        self.closed = asyncio.Event()
        self.checked_key = None

    def on_finish(self):
        auth.unvouch(self.checked_key)  # the tools' requests are done: the key is worth nothing now

    def on_connection_close(self):
        self.closed.set()

    def check_xsrf_cookie(self):
        return None  # a bearer token is required below; no cookie request gets through

    def write_error(self, status_code: int, **kwargs) -> None:
        """A refusal as a JSON-RPC error (with the HTTP status kept): MCP clients show its
        message ("HTTP 401: the token is invalid, expired or revoked") instead of a bare
        "error response"."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = error.log_message if isinstance(error, web.HTTPError) and error.log_message else self._reason
        try:
            request_id = json.loads(self.request.body or b"{}").get("id")
        except (ValueError, AttributeError):
            request_id = None
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            request_id = None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {
            "code": -32001 if status_code in (401, 403) else -32603,
            "message": f"HTTP {status_code}: {message}"}}))

    async def prepare(self):
        await super().prepare()
        if not auth.header_token(self):
            self.set_header("WWW-Authenticate", 'token realm="INK"')
            raise web.HTTPError(401, "the MCP endpoint needs a hub token: send 'Authorization: "
                                "token <your hub token>' (or 'Bearer <token>')")
        self.hub_user = await auth.authenticate(self, accept_vouched=False)
        owner = auth.server_owner()
        checker = auth.hub_auth(self)
        if not any(checker.check_scopes({f"{s}!user={owner}"}, self.hub_user)
                   for s in (SCOPE_JOBS_READ, SCOPE_FILES_READ)):
            raise web.HTTPError(403, f"this token has none of INK's scopes ({SCOPE_JOBS_READ}, "
                                f"{SCOPE_FILES_READ} or more): make one with them on the hub's token page")
        # checked with the hub just now: the tools' requests to this server during this MCP
        # request need not ask again (the token's own scopes are still checked on each)
        self.checked_key = auth.vouch(auth.header_token(self), self.hub_user)

    @property
    def bridge(self) -> McpBridge:
        return self.settings["ink_mcp_bridge"]

    @allow_unauthenticated
    async def post(self):
        try:
            await self.bridge.handle(self, self.hub_user.get("name", "?"), self.checked_key)
        finally:
            auth.unvouch(self.checked_key)

    get = delete = post


class InkMcpApp(ExtensionApp):
    """The MCP endpoint ``/ink/mcp`` of the user's server (needs ``ink-client[mcp]``)."""

    name = "ink_mcp"
    load_other_extensions = True

    workspace = Unicode(
        "",
        help="""Confine every file tool of the endpoint to this folder (absolute, or relative to
        the home), as ``ink mcp --workspace`` does; the file API refuses anything outside it,
        symlinks followed. Empty: the home and the site's storage roots, as for the file manager.""",
    ).tag(config=True)

    read_only = Bool(
        False,
        help="Offer no writing tool (submit, cancel, write_file, start or stop a session), as "
        "``ink mcp --read-only`` does.",
    ).tag(config=True)

    max_read_bytes = Int(
        256 << 10,
        help="Most bytes read_text_file (and a file resource) returns per call.",
    ).tag(config=True)

    @validate("max_read_bytes")
    def _check_max_read(self, proposal):
        if proposal["value"] < 1:
            raise ValueError("max_read_bytes: a positive number of bytes")
        return proposal["value"]

    def local_url(self) -> str:
        """This server, on loopback when it listens on every address."""
        app = self.serverapp
        host = app.ip if app.ip and app.ip not in ("0.0.0.0", "::", "*", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if app.certfile else "http"
        return f"{scheme}://{host}:{app.port}{app.base_url.rstrip('/')}"

    def initialize_settings(self):
        try:
            from ink_cli.api import Client
            from ink_cli.mcp_server import Caller, Settings, build_server
        except ImportError as e:
            self.log.warning("INK: no MCP endpoint (%s); install ink-client[mcp] in this environment", e)
            return
        hub_api = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
        public = os.environ.get("JUPYTERHUB_PUBLIC_URL") or os.environ.get("JUPYTERHUB_PUBLIC_HUB_URL") or ""
        owner = auth.server_owner()
        web_app = self.serverapp.web_app
        bridge: McpBridge | None = None
        portal_prefix = self.local_url() + "/"

        class Local(threading.local):  # one keep-alive session per worker thread (a tool call runs in one)
            def __init__(self):
                self.session = None
                self.prefix = portal_prefix
                self.adapter = InProcessAdapter(web_app, lambda: bridge.loop, None)

        local = Local()

        def client_for(ctx):
            headers = (ctx.headers if ctx is not None else None) or {}
            value = headers.get("authorization", "")
            scheme, _, token = value.partition(" ")
            if scheme.lower() not in ("token", "bearer") or not token:
                raise RuntimeError("no token on the request")  # the handler let none through without
            checked = headers.get(CHECKED_KEY_HEADER)
            client = Client(public.rstrip("/") or hub_api.rsplit("/hub/api", 1)[0] or "http://127.0.0.1",
                            token.strip(), user=owner, api_url=hub_api or None,
                            portal_url=self.local_url(), timeout=120,
                            session=_thread_session(local),
                            portal_headers={auth.CHECKED_HEADER: checked} if checked else None)
            return client, headers.get(CALLER_HEADER, "?")

        audit = logging.getLogger("ink.mcp")  # the call log goes where this server logs
        audit.setLevel(logging.INFO)
        audit.propagate = False
        for h in self.log.handlers or logging.getLogger().handlers:
            if h not in audit.handlers:
                audit.addHandler(h)
        server = build_server(Caller(client_for), Settings(
            workspace=self.workspace or None, read_only=self.read_only, max_read_bytes=self.max_read_bytes))
        bridge = McpBridge(server, self.log)
        self.settings["ink_mcp_bridge"] = bridge
        self.log.info("INK: MCP endpoint at %sink/mcp (read_only=%s, workspace=%s)",
                      self.serverapp.base_url, self.read_only, self.workspace or "-")

    def initialize_handlers(self):
        if "ink_mcp_bridge" in self.settings:
            self.handlers.append((ROUTE, McpHandler))


def _jupyter_server_extension_points():
    return [{"module": "ink_files_ext.mcp", "app": InkMcpApp}]
