"""Who calls, and with which INK scopes: the checks of every workflow API request.

Reusable by any handler of the user's server (the file manager's API can require
``custom:ink:files[:read]`` the same way) through :func:`authenticate` and :func:`require_scope`.

- A token in the ``Authorization`` header is checked with the hub **without** jupyter-server's
  token cache (five minutes by default), so that an expired or revoked token is refused at
  once: 401.
- Without a header token, the browser's login (hub OAuth cookie, XSRF-checked) is used;
  nobody at all: 401.
- The caller must be allowed into this server (JupyterHub's access scope), else 403; and for
  an action, hold the INK scope on the server owner's resources (``SCOPE!user=OWNER``), else
  403 naming the scope. The ``!user`` filter keeps a server shared with another user (JupyterHub
  sharing) from letting that user act as the owner.
- One exception to "every request asks the hub": the requests the MCP endpoint (:mod:`.mcp`)
  makes to this same server while it answers one MCP request. The endpoint has checked the
  token with the hub (uncached) at the start of that MCP request; it records the hub's answer
  under a random key for the time the request runs (:func:`vouch`), and its inner requests
  send the key in :data:`CHECKED_HEADER` together with the same token. A key is worth nothing
  without its token and is forgotten when the MCP request ends, so a revoked token is still
  refused at the next MCP request, and the scopes checked are the token's own.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time

from tornado import web


#: header of the MCP endpoint's own requests to this server: the key of a caller it has just
#: checked with the hub (see :func:`vouch`); never sent anywhere but this server
CHECKED_HEADER = "X-Ink-Checked"

#: key -> (token, the hub's model of its owner), for the MCP requests in progress
_checked: dict[str, tuple[str, dict]] = {}


#: the longest a key counts, whatever happens to the MCP request that made it
VOUCH_SECONDS = 120


def vouch(token: str, model: dict) -> str:
    """Remember, until :func:`unvouch` (at most :data:`VOUCH_SECONDS`), that ``token`` was just
    checked and belongs to ``model``; returns the key the inner requests send in
    :data:`CHECKED_HEADER`."""
    key = secrets.token_urlsafe(32)
    _checked[key] = (token, model, time.monotonic() + VOUCH_SECONDS)
    return key


def unvouch(key: str | None) -> None:
    if key:
        _checked.pop(key, None)


def _vouched(handler, token: str) -> dict | None:
    """The model vouched for under the request's key, if the key is live and came with its token."""
    key = handler.request.headers.get(CHECKED_HEADER)
    entry = _checked.get(key) if key else None
    if entry is None or not hmac.compare_digest(entry[0].encode(), token.encode()):
        return None
    if time.monotonic() > entry[2]:
        _checked.pop(key, None)
        return None
    return entry[1]


def hub_auth(handler):
    return getattr(handler.identity_provider, "hub_auth", None)


def header_token(handler) -> str:
    auth = hub_auth(handler)
    return auth.get_token(handler, in_cookie=False) if auth is not None else ""


def server_owner() -> str:
    return os.environ.get("JUPYTERHUB_USER", "")


def _unauthorized(handler, message: str) -> web.HTTPError:
    handler.set_header("WWW-Authenticate", 'token realm="INK"')
    return web.HTTPError(401, message)


async def authenticate(handler, accept_vouched: bool = True) -> dict:
    """The hub's model of the caller (with its ``scopes``); raises 401/403/503 as above.

    Call after jupyter-server's own ``prepare()`` (which resolves the cookie login).
    ``accept_vouched=False`` always asks the hub: the MCP endpoint itself, which hands out
    the vouching keys, must never take one (a chain of MCP requests would outlive a revoked
    token)."""
    auth = hub_auth(handler)
    if auth is None:
        raise web.HTTPError(503, "the INK API needs a server started by JupyterHub")
    token = header_token(handler)
    if token:
        model = (_vouched(handler, token) if accept_vouched else None) \
            or await auth.user_for_token(token, use_cache=False, sync=False)
        if model is None:
            raise _unauthorized(handler, "the token is invalid, expired or revoked")
    elif handler.current_user is not None:
        model = handler.current_user.hub_user
    else:
        raise _unauthorized(handler, "authentication required: send 'Authorization: token <your hub token>'")
    if not auth.check_scopes(auth.access_scopes, model):
        name = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
        raise web.HTTPError(403, f"this token may not access {server_owner()}'s server {name}".strip())
    return model


def require_scope(handler, model: dict, scope: str) -> None:
    """403 naming ``scope`` unless the caller holds it on the server owner's resources."""
    if not hub_auth(handler).check_scopes({f"{scope}!user={server_owner()}"}, model):
        raise web.HTTPError(403, f"this token lacks the scope {scope}")


def require_owner(handler, model: dict) -> None:
    """403 unless the caller (a browser login, no token) is the owner of this server.

    A browser login is the owner using their own server, as with jupyter-server's own APIs;
    a user the server was shared with (JupyterHub sharing) is not, and gets no INK action."""
    if model.get("name") != server_owner():
        raise web.HTTPError(403, f"only {server_owner()} may use this server's INK pages")
