"""Authenticators for INK: OpenID Connect SSO with groups, and Kerberos passwords.

Both admit a user by the site catalogue's own experiment membership (the mapping the INK panel
and the spawn menu use), so a site does not keep a second list of who may log in. PAM, LDAP
and the dummy authenticator stay usable as they are; a site picks one in the ``hub:`` section
of its site file (``JupyterHub: {authenticator_class: ink-oidc}``).
"""

from __future__ import annotations

import asyncio
import re
from inspect import isawaitable

from jupyterhub.auth import Authenticator
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Bool, Callable, Dict, Integer, Unicode, default

from .kerberos import STATE_KEY, KerberosError, Ticket, kinit_password

# Unix user names as sites create them; anything else (a '/', '@' or space) could name another
# Kerberos principal than the user's own (e.g. "alice/admin").
USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


class InkAuthenticator(Authenticator):
    """Admit users who belong to at least one experiment of the site catalogue."""

    experiments_for = Callable(
        None,
        allow_none=True,
        help="""async (username, hub_groups: set) -> list of experiment names. ink_hub sets the
        site catalogue's membership here (JupyterHub groups, Unix groups, user lists, overrides),
        the same one the INK panel and the spawn menu use.""",
    ).tag(config=True)

    allow_experiment_members = Bool(
        True,
        help="""Let a user log in if the site catalogue makes them a member of at least one
        experiment (in addition to allowed_users / allowed_groups). Note that an experiment with
        `members: {everyone: true}` then admits every user the identity provider vouches for.""",
    ).tag(config=True)

    not_allowed_message = Unicode(
        "You signed in, but your account is not a member of any experiment on this INK site, so "
        "you cannot use it. If you think you should be, ask your experiment's computing contact "
        "to add you to its group, then sign in again.",
        help="The page a user sees who authenticated but is in no experiment (HTTP 403).",
    ).tag(config=True)

    async def check_allowed(self, username, authentication=None):
        allowed = super().check_allowed(username, authentication)
        if isawaitable(allowed):
            allowed = await allowed
        if allowed or not (self.allow_experiment_members and self.experiments_for):
            return allowed
        groups = set((authentication or {}).get("groups") or [])
        if await self.experiments_for(username, groups):
            return True
        if authentication is not None:
            # at login: say why on JupyterHub's error page, not "invalid password"
            raise web.HTTPError(403, self.not_allowed_message, reason="Not a member of any experiment")
        return False


class InkOIDCAuthenticator(InkAuthenticator, GenericOAuthenticator):
    """GenericOAuthenticator for a site's OpenID Connect provider (Keycloak, CILogon, ...).

    A claim (``groups`` by default) becomes the user's JupyterHub groups at every login and
    token refresh, optionally renamed by ``group_map``; the catalogue maps groups to
    experiments. Tokens are kept in encrypted auth_state and refreshed with the refresh token
    (``refresh_pre_spawn``); they never reach the browser or the sessions.
    """

    group_map = Dict(
        Unicode(),
        help="""Rename the provider's group values to JupyterHub group names, e.g.
        {"/experiments/juno": "juno"} for Keycloak full group paths or
        {"CO:COU:JUNO:members:active": "juno"} for CILogon/COmanage. Values not listed are kept
        as they are unless `keep_unmapped_groups` is False.""",
    ).tag(config=True)

    keep_unmapped_groups = Bool(
        True, help="Keep group values that `group_map` does not name (False: drop them)."
    ).tag(config=True)

    kerberos_ticket_hook = Callable(
        None,
        allow_none=True,
        help="""Site hook giving SSO users a Kerberos ticket:
        [async] (authenticator, username, auth_state) -> ink_hub.kerberos.Ticket or None.
        Called at login and at every token refresh (auth_state holds the current tokens and the
        current ticket under 'kerberos'); the returned ticket is kept in encrypted auth_state and
        reaches the user's sessions. See the Kerberos admin page for examples.""",
    ).tag(config=True)

    @default("login_service")
    def _login_service_default(self):
        return "single sign-on"  # the button reads "Sign in with single sign-on"

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("auth_state_groups_key")
    def _groups_key_default(self):
        return "oauth_user.groups"

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self):
        return True

    @default("scope")
    def _scope_default(self):
        return ["openid", "profile", "email", "groups", "offline_access"]

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("custom_403_message")
    def _custom_403_default(self):
        return self.not_allowed_message

    async def get_user_groups(self, auth_state: dict):
        groups = await super().get_user_groups(auth_state)
        mapped = set()
        for group in groups:
            if not isinstance(group, str):
                continue
            if group in self.group_map:
                mapped.add(self.group_map[group])
            elif self.keep_unmapped_groups:
                mapped.add(group)
        return mapped

    async def update_auth_model(self, auth_model):
        auth_model = await super().update_auth_model(auth_model)
        if self.kerberos_ticket_hook is not None:
            state = auth_model.get("auth_state") or {}
            ticket = self.kerberos_ticket_hook(self, auth_model["name"], state)
            if isawaitable(ticket):
                ticket = await ticket
            if ticket is not None:
                if not isinstance(ticket, Ticket):
                    raise TypeError("kerberos_ticket_hook must return an ink_hub.kerberos.Ticket")
                state[STATE_KEY] = ticket.to_state()
                auth_model["auth_state"] = state
        return auth_model


class KerberosAuthenticator(InkAuthenticator, Authenticator):
    """Log in with a Kerberos password; the ticket obtained is kept for the user's sessions.

    The password goes to the KDC only (never stored, never on a command line). The ticket-
    granting ticket is kept in encrypted auth_state (set JUPYTERHUB_CRYPT_KEY), renewed by the
    hub while it can be, and handed to every session as a private credential cache.
    """

    realm = Unicode(
        "",
        help="Kerberos realm of the users, e.g. IHEP.AC.CN ('' = default_realm of krb5.conf). "
        "The principal is <username>@<realm>.",
    ).tag(config=True)

    ticket_lifetime = Integer(
        0, help="Requested ticket lifetime in seconds (0 = the KDC's / krb5.conf default)."
    ).tag(config=True)

    renew_lifetime = Integer(
        7 * 24 * 3600,
        help="Requested renewable lifetime in seconds: how long the hub can keep renewing the "
        "ticket without the user logging in again (the KDC may grant less).",
    ).tag(config=True)

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        return True

    def principal(self, username: str) -> str:
        return f"{username}@{self.realm}" if self.realm else username

    async def authenticate(self, handler, data):
        username = self.normalize_username(str(data.get("username", "")))
        password = str(data.get("password", ""))
        if not USERNAME_RE.match(username) or not password:
            return None
        try:
            ticket = await asyncio.to_thread(
                kinit_password, self.principal(username), password,
                lifetime=self.ticket_lifetime, renew_lifetime=self.renew_lifetime)
        except KerberosError as e:
            self.log.warning("Kerberos login of %s failed: %s", username, e)
            return None
        return {"name": username, "auth_state": {STATE_KEY: ticket.to_state()}}
