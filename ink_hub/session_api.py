"""Hub API endpoint where a starting session reports its port.

``POST /hub/api/ink/session-port`` with ``{"port": <int>}``, authenticated with the server's
own API token (the one the hub gave that spawn). Nothing else is accepted: no host (the host
comes from the scheduler), no extra keys, no other user's or server's token. A rejected
request changes nothing.

This endpoint exists in place of batchspawner's, which copies any JSON key a job sends onto the
spawner object.
"""

from __future__ import annotations

import hmac
import json

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.user import User
from tornado import web

ROUTE = r"/api/ink/session-port"


def parse_port_report(body: bytes) -> int:
    """Return the port of a valid report; raise HTTPError 400 naming the problem otherwise."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPError(400, "body must be a JSON object {\"port\": <int>}") from None
    if not isinstance(data, dict):
        raise web.HTTPError(400, "body must be a JSON object {\"port\": <int>}")
    extra = sorted(set(data) - {"port"})
    if extra:
        raise web.HTTPError(400, f"unexpected key {extra[0]!r}: only 'port' is accepted")
    port = data.get("port")
    if isinstance(port, bool) or not isinstance(port, int):
        raise web.HTTPError(400, "port: must be an integer")
    if not 1 <= port <= 65535:
        raise web.HTTPError(400, f"port: {port} is outside 1-65535")
    return port


def spawner_for_token(user: User, token: str | None):
    """The user's spawner whose own server token this is, or None."""
    token_bytes = (token or "").encode("utf-8", "surrogateescape")
    for spawner in user.spawners.values():
        if spawner.api_token and hmac.compare_digest(spawner.api_token.encode(), token_bytes):
            return spawner
    return None


class SessionPortHandler(APIHandler):
    """Accept one port report from the job of a starting INK session."""

    def _spawner_for_token(self, user: User):
        return spawner_for_token(user, self.get_auth_token())

    async def post(self):
        user = self.current_user
        if not isinstance(user, User):
            raise web.HTTPError(403, "a session's server token is required")
        spawner = self._spawner_for_token(user)
        if spawner is None or not hasattr(spawner, "report_port"):
            raise web.HTTPError(403, "this token does not belong to an INK session of this user")
        port = parse_port_report(self.request.body)
        if not spawner.report_port(port):
            raise web.HTTPError(409, "this session is not waiting for a port report")
        self.log.info("Session %s reported port %d", spawner._log_name, port)
        self.set_status(200)
        self.finish({"port": port})


handlers = [(ROUTE, SessionPortHandler)]
