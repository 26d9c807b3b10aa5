"""Hub API endpoint where a running session fetches the user's current Kerberos ticket.

``GET /hub/api/ink/credentials``, authenticated with the session's own server token (the one
the hub gave that spawn), answers ``{"principal", "expires", "renew_until", "ccache"
(base64), "warning"}``; the hub renews the ticket first when it is close to its end
(:class:`ink_hub.kerberos.TicketKeeper`). Nothing else gets it: not a browser (cookies carry
no server token), not the user's own API tokens, not another user's session. Responses are
never cached.
"""

from __future__ import annotations

import base64

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.user import User
from tornado import web

from .kerberos import TicketKeeper
from .session_api import spawner_for_token

ROUTE = r"/api/ink/credentials"


class SessionCredentialsHandler(APIHandler):
    """Give a running session of the token's owner the owner's current ticket."""

    def initialize(self, keeper: TicketKeeper):
        self.keeper = keeper

    async def get(self):
        user = self.current_user
        if not isinstance(user, User):
            raise web.HTTPError(403, "a session's server token is required")
        spawner = spawner_for_token(user, self.get_auth_token())
        if spawner is None or not spawner.active:
            raise web.HTTPError(403, "this token does not belong to a running session of this user")
        ticket = await self.keeper.fresh_ticket(user)
        if ticket is None:
            raise web.HTTPError(404, "no Kerberos ticket is kept for this user")
        self.set_header("Cache-Control", "no-store")
        self.finish({"principal": ticket.principal, "expires": ticket.expires,
                     "renew_until": ticket.renew_until,
                     "ccache": base64.b64encode(ticket.ccache).decode(),
                     "warning": self.keeper.warning(ticket)})


def handlers(keeper: TicketKeeper) -> list[tuple]:
    return [(ROUTE, SessionCredentialsHandler, {"keeper": keeper})]
