"""``/ink/ssh``: one SSH connection as a websocket, bridged to its own ``sshd -i``.

The laptop's ``ink ssh APP`` (ssh's ProxyCommand) opens this websocket through the hub's proxy
with the user's token in the ``Authorization`` header (never in the URL); jupyter-server's hub
login authenticates it like any request to the session, and the ``terminals`` permission is
required (an SSH login is a shell). A request with ``?token=`` is refused (400) before any
check: JupyterHub accepts URL tokens on websockets (for browsers), but a URL lands in proxies'
and servers' logs, and no browser uses this endpoint. Binary messages carry the SSH byte stream both ways;
each direction waits for the other end to take the bytes (websocket writes and sshd's stdin
are awaited), so a fast sender cannot fill the server's memory.
"""

from __future__ import annotations

import asyncio
import json

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .sshd import SSHEndpoint

CHUNK = 1024 * 1024


class SSHSocketHandler(WebSocketMixin, JupyterHandler, WebSocketHandler):
    """GET /ink/ssh (websocket): SSH to this session."""

    auth_resource = "terminals"

    def initialize(self, endpoint: SSHEndpoint):
        self.endpoint = endpoint
        self.proc: asyncio.subprocess.Process | None = None
        self._pumps: list[asyncio.Task] = []

    def prepare(self, *args, **kwargs):
        if "token" in self.request.query_arguments:
            # answered here, not raised: tornado logs a raised HTTPError with the raw URL (the
            # token in it); the access log line jupyter-server writes hides it ("[secret]")
            self.set_status(400)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": "send the token in the Authorization header, never in "
                                               "the URL (a URL ends up in logs)"}))
            return None
        return super().prepare(*args, **kwargs)

    def get_compression_options(self):
        return None  # SSH is encrypted: compressing it costs CPU and gains nothing

    @authorized(action="execute", resource="terminals")
    async def get(self, *args, **kwargs):
        await super().get(*args, **kwargs)

    async def open(self, *args, **kwargs):
        super().open(*args, **kwargs)
        try:
            self.proc = await self.endpoint.spawn()
        except (RuntimeError, OSError) as e:
            self.log.error("SSH endpoint unavailable: %s", e)
            self.close(1011, f"SSH is not available in this session: {e}"[:120])
            return
        if self.ws_connection is None:  # the client left while sshd started
            await self.endpoint.finish(self.proc)
            self.proc = None
            return
        self.set_nodelay(True)
        self.log.info("SSH connection from %s for %s", self.request.remote_ip,
                      getattr(self.current_user, "username", "?"))
        self._pumps = [asyncio.ensure_future(self._pump_stdout(self.proc)),
                       asyncio.ensure_future(self._pump_stderr(self.proc))]

    async def _pump_stdout(self, proc):
        try:
            while True:
                data = await proc.stdout.read(CHUNK)
                if not data:
                    break
                await self.write_message(data, binary=True)
        except (WebSocketClosedError, ConnectionError):
            pass
        finally:
            if self.ws_connection is not None:
                self.close(1000, "sshd ended")

    async def _pump_stderr(self, proc):
        # sshd -e logs to stderr: accepted and refused logins go to the server's log
        async for line in proc.stderr:
            self.log.info("sshd: %s", line.decode(errors="replace").rstrip())

    async def on_message(self, message):
        if isinstance(message, str):
            self.close(1003, "binary messages only")
            return
        stdin = self.proc.stdin if self.proc else None
        if stdin is None or stdin.is_closing():
            return
        try:
            stdin.write(message)
            await stdin.drain()
        except (ConnectionError, BrokenPipeError):
            self.close(1000, "sshd ended")

    def on_close(self):
        if self.proc is not None:
            proc, self.proc = self.proc, None
            asyncio.ensure_future(self._finish(proc))

    async def _finish(self, proc):
        await asyncio.sleep(0)  # let the stdout pump see the end first
        for task in self._pumps[1:]:
            task.cancel()  # the supervisor keeps sshd's log open while the login's leftovers run
        await self.endpoint.finish(proc)
