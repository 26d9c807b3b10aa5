"""Kerberos 5 tickets for INK sessions, kept in the user's encrypted ``auth_state``.

A user who logs in with a Kerberos password (:class:`ink_hub.authenticators.KerberosAuthenticator`),
or whose SSO login is given a ticket by a site hook, has a :class:`Ticket` in ``auth_state``
under ``"kerberos"``. JupyterHub encrypts ``auth_state`` with ``JUPYTERHUB_CRYPT_KEY``.

Why the hub renews, not the job: the hub holds the only copy that outlives a session, so one
renewal per user serves every session and every later spawn; a site hook can mint a *new*
ticket there (e.g. from an SSO token) when renewal alone is no longer possible; and workers
need no Kerberos tools. Sessions fetch the current ticket from the hub with their own server
token (:mod:`ink_hub.credentials_api`), so nothing listens inside the job for it.

Ticket operations use MIT krb5 through ``pykrb5`` (PyPI ``krb5``); they block on the KDC, so
the keeper runs them in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from .metrics import KERBEROS_RENEWALS

STATE_KEY = "kerberos"

# Environment of a session job: the credential cache (base64) and how often to fetch a fresh one.
ENV_CCACHE = "INK_KRB5_CCACHE"
ENV_INTERVAL = "INK_CREDENTIALS_INTERVAL"


class KerberosError(Exception):
    """A ticket could not be obtained or renewed; the message is safe to show the user."""


@dataclass(frozen=True)
class Ticket:
    """A user's ticket-granting ticket: the credential cache file's bytes and its times."""

    principal: str
    ccache: bytes
    expires: int  # end time of the TGT (epoch seconds)
    renew_until: int  # 0 when the ticket is not renewable

    @property
    def renewable(self) -> bool:
        return self.renew_until > self.expires

    def left(self, now: float | None = None) -> float:
        return self.expires - (time.time() if now is None else now)

    def to_state(self) -> dict:
        return {"principal": self.principal, "ccache": base64.b64encode(self.ccache).decode(),
                "expires": self.expires, "renew_until": self.renew_until}

    @classmethod
    def from_state(cls, state: dict | None) -> "Ticket | None":
        if not state or not state.get("ccache"):
            return None
        return cls(state["principal"], base64.b64decode(state["ccache"]), int(state["expires"]),
                   int(state.get("renew_until") or 0))

    def __repr__(self) -> str:  # never print the credentials, wherever a Ticket ends up
        return f"Ticket({self.principal!r}, expires={self.expires}, renew_until={self.renew_until})"


def _krb5():
    try:
        import krb5
    except ImportError as e:  # pragma: no cover - an install without the kerberos extra
        raise KerberosError("Kerberos support needs the 'krb5' Python package (pip install "
                            "ink-hub[kerberos])") from e
    return krb5


def _store(krb5, ctx, principal, creds) -> bytes:
    """Write creds into a fresh FILE ccache in a private temporary directory; return its bytes."""
    directory = tempfile.mkdtemp(prefix="ink-krb5-")  # 0700, the hub's own
    try:
        path = os.path.join(directory, "ccache")
        cache = krb5.cc_resolve(ctx, b"FILE:" + path.encode())
        krb5.cc_initialize(ctx, cache, principal)
        krb5.cc_store_cred(ctx, cache, creds)
        with open(path, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _ticket(krb5, ctx, principal, creds) -> Ticket:
    times = creds.times
    name = krb5.unparse_name_flags(ctx, principal).decode()
    return Ticket(name, _store(krb5, ctx, principal, creds), int(times.endtime), int(times.renew_till))


def _message(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:200]


def _init_options(krb5, ctx, lifetime: int, renew_lifetime: int):
    """Options of a TGT request: lifetime and renewable lifetime when given (else the KDC's)."""
    opt = krb5.get_init_creds_opt_alloc(ctx)
    if lifetime:
        krb5.get_init_creds_opt_set_tkt_life(opt, lifetime)
    if renew_lifetime:
        krb5.get_init_creds_opt_set_renew_life(opt, renew_lifetime)
    return opt


def kinit_password(principal: str, password: str, lifetime: int = 0, renew_lifetime: int = 0,
                   forwardable: bool = True) -> Ticket:
    """A new TGT for ``principal`` from its password (blocking: call in a thread).

    Raises KerberosError for a wrong password, an unknown principal or an unreachable KDC.
    """
    krb5 = _krb5()
    ctx = krb5.init_context()
    try:
        princ = krb5.parse_name_flags(ctx, principal.encode())
        opt = _init_options(krb5, ctx, lifetime, renew_lifetime)
        krb5.get_init_creds_opt_set_forwardable(opt, forwardable)
        creds = krb5.get_init_creds_password(ctx, princ, opt, password=password.encode())
        return _ticket(krb5, ctx, princ, creds)
    except krb5.Krb5Error as e:
        raise KerberosError(_message(e)) from None


def kinit_keytab(principal: str, keytab: str, lifetime: int = 0, renew_lifetime: int = 0) -> Ticket:
    """A new TGT for ``principal`` from a keytab: for site hooks (e.g. a credential service that
    holds per-user keytabs) that give SSO users a ticket. Blocking: call in a thread."""
    krb5 = _krb5()
    ctx = krb5.init_context()
    try:
        princ = krb5.parse_name_flags(ctx, principal.encode())
        opt = _init_options(krb5, ctx, lifetime, renew_lifetime)
        creds = krb5.get_init_creds_keytab(ctx, princ, opt, krb5.kt_resolve(ctx, keytab.encode()))
        return _ticket(krb5, ctx, princ, creds)
    except krb5.Krb5Error as e:
        raise KerberosError(_message(e)) from None


def renew(ticket: Ticket) -> Ticket:
    """Renew a renewable TGT at the KDC (blocking: call in a thread)."""
    if not ticket.renewable or ticket.left() <= 0:
        raise KerberosError("the ticket is not renewable any more")
    krb5 = _krb5()
    ctx = krb5.init_context()
    directory = tempfile.mkdtemp(prefix="ink-krb5-")
    try:
        path = os.path.join(directory, "ccache")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(ticket.ccache)
        cache = krb5.cc_resolve(ctx, b"FILE:" + path.encode())
        princ = krb5.cc_get_principal(ctx, cache)
        creds = krb5.get_renewed_creds(ctx, princ, cache)
        return _ticket(krb5, ctx, princ, creds)
    except krb5.Krb5Error as e:
        raise KerberosError(_message(e)) from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class TicketKeeper(LoggingConfigurable):
    """Keeps each user's ticket in auth_state fresh and says when it can no longer be.

    One keeper per hub; a per-user lock makes concurrent sessions of one user renew once.
    """

    renew_before = Integer(
        3600,
        help="Renew a user's ticket when less than this many seconds of it are left (and it is "
        "renewable). Sessions fetch the renewed ticket at their next `refresh_interval`, so keep "
        "this well above refresh_interval.",
    ).tag(config=True)

    refresh_interval = Integer(
        300,
        help="How often (seconds) a running session asks the hub for the current ticket.",
    ).tag(config=True)

    warn_before = Integer(
        4 * 3600,
        help="Warn the user when their ticket cannot be renewed any further and expires within "
        "this many seconds (on the INK panel and in the session's log).",
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._locks: dict[str, asyncio.Lock] = {}

    def __deepcopy__(self, memo):
        # traitlets deep-copies config values, and so the keeper behind c.InkSpawner.credentials
        # for every spawner: all of them must share this one keeper (and its per-user locks)
        return self

    async def fresh_ticket(self, user) -> Ticket | None:
        """The user's ticket from auth_state, renewed first if it is close to its end."""
        lock = self._locks.setdefault(user.name, asyncio.Lock())
        async with lock:
            state = await user.get_auth_state() or {}
            ticket = Ticket.from_state(state.get(STATE_KEY))
            if ticket is None:
                return None
            if ticket.left() < self.renew_before and ticket.renewable:
                try:
                    renewed = await asyncio.to_thread(renew, ticket)
                except KerberosError as e:
                    KERBEROS_RENEWALS.labels(result="failed").inc()
                    self.log.warning("Could not renew the Kerberos ticket of %s: %s", user.name, e)
                    return ticket
                KERBEROS_RENEWALS.labels(result="ok").inc()
                state[STATE_KEY] = renewed.to_state()
                await user.save_auth_state(state)
                self.log.info("Renewed the Kerberos ticket of %s until %s", user.name,
                              _utc(renewed.expires))
                return renewed
            return ticket

    def warning(self, ticket: Ticket | None, now: float | None = None) -> str:
        """What to tell the user when their ticket will run out for good ('' if nothing)."""
        if ticket is None:
            return ""
        now = time.time() if now is None else now
        if ticket.left(now) <= 0:
            return (f"Your Kerberos ticket ({ticket.principal}) expired at {_utc(ticket.expires)} "
                    "and cannot be renewed: log out and log in to INK again to get a new one.")
        can_renew = ticket.renewable and ticket.renew_until - now > self.renew_before
        if not can_renew and ticket.left(now) < self.warn_before:
            return (f"Your Kerberos ticket ({ticket.principal}) expires at {_utc(ticket.expires)} "
                    "and cannot be renewed any further: log out and log in to INK again before "
                    "then to keep access to Kerberos services (EOS, XRootD, HTCondor).")
        return ""

    async def session_env(self, spawner) -> dict:
        """Environment for a starting session (InkSpawner.credentials): the ccache, if any."""
        ticket = await self.fresh_ticket(spawner.user)
        if ticket is None:
            return {}
        return {ENV_CCACHE: base64.b64encode(ticket.ccache).decode(),
                ENV_INTERVAL: str(self.refresh_interval)}


def _utc(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
