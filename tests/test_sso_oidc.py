"""OpenID Connect login end to end: a real hub with InkOIDCAuthenticator, a real OpenID Connect
provider on loopback (npm oidc-provider, tests/oidc/provider.mjs) and real headless Chromium.

Users log in and consent at the provider, land on the INK panel with the experiments their
``groups`` claim maps to through the site catalogue, are refused with a clear page when no
experiment takes them, keep their groups current through token refresh, and log out. The
provider's tokens stay in the hub: never in a response the browser sees, nor in the hub's log.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest
import requests
from cryptography.fernet import Fernet

from .harness import REPO, Hub, free_port
from .test_kerberos import kdc  # noqa: F401  (fixture: a real MIT KDC)

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.oidc]

SCREENSHOTS = os.environ.get("INK_SCREENSHOTS")  # a directory: keep pictures of the pages


def shot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=True)

CATALOGUE = """
site: {name: IHEP INK SSO Test}
defaults: {memory: 1G}
experiments:
  juno: {title: JUNO, members: {groups: [juno]}, apps: [jupyter]}
  lhaaso: {title: LHAASO, members: {groups: [lhaaso]}, apps: [jupyter]}
"""
# the provider names groups as Keycloak does with full paths; the hub maps them to catalogue groups
USERS = {
    "alice": {"groups": ["/experiments/juno"]},
    "bob": {"groups": ["/experiments/lhaaso", "/staff"]},
    "mallory": {"groups": ["/visitors"]},
}
CLIENT_ID = "ink-hub"
ACCESS_TOKEN_TTL = 4


class Provider:
    """tests/oidc/provider.mjs in a subprocess."""

    def __init__(self, workdir, port: int, redirect_uri: str, logout_uri: str):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.secret = secrets.token_urlsafe(24)
        self.users_file = workdir / "oidc-users.json"
        self.users_file.write_text(json.dumps(USERS))
        self.config = workdir / "oidc.json"
        self.config.write_text(json.dumps({
            "port": port, "client_id": CLIENT_ID, "client_secret": self.secret,
            "redirect_uris": [redirect_uri], "post_logout_redirect_uris": [logout_uri],
            "users_file": str(self.users_file), "access_token_ttl": ACCESS_TOKEN_TTL,
            "cookie_key": secrets.token_urlsafe(16),
        }))
        self.log = open(workdir / "oidc.log", "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["node", str(REPO / "tests" / "oidc" / "provider.mjs"), str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "oidc-provider exited"
            try:
                if requests.get(f"{self.url}/.well-known/openid-configuration", timeout=2).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("oidc-provider did not start")

    def set_groups(self, user: str, groups: list[str]) -> None:
        users = json.loads(self.users_file.read_text())
        users[user]["groups"] = groups
        self.users_file.write_text(json.dumps(users))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def oidc_config(hub, provider) -> str:
    """The hub's settings for the test provider (what a site puts in its hub: section)."""
    op = provider.url
    return f"""c.JupyterHub.authenticator_class = "ink-oidc"
c.InkOIDCAuthenticator.client_id = {CLIENT_ID!r}
c.InkOIDCAuthenticator.client_secret = {provider.secret!r}
c.InkOIDCAuthenticator.oauth_callback_url = "{hub.url}/hub/oauth_callback"
c.InkOIDCAuthenticator.authorize_url = "{op}/auth"
c.InkOIDCAuthenticator.token_url = "{op}/token"
c.InkOIDCAuthenticator.userdata_url = "{op}/me"
c.InkOIDCAuthenticator.login_service = "IHEP SSO"
"""


@pytest.fixture(scope="module")
def sso(tmp_path_factory, unix_users):
    workdir = tmp_path_factory.mktemp("sso")
    hub = Hub(workdir, backend="local", catalogue=CATALOGUE)
    op_port = free_port()
    provider = Provider(workdir, op_port, f"{hub.url}/hub/oauth_callback", f"{hub.url}/hub/login")
    op = provider.url
    hub.extra_config = f"""
import os
{oidc_config(hub, provider)}c.InkOIDCAuthenticator.group_map = {{"/experiments/juno": "juno", "/experiments/lhaaso": "lhaaso"}}
c.InkOIDCAuthenticator.keep_unmapped_groups = False
c.InkOIDCAuthenticator.logout_redirect_url = "{op}/session/end?client_id={CLIENT_ID}&post_logout_redirect_uri={hub.url}/hub/login"
c.InkOIDCAuthenticator.auth_refresh_age = 2
c.Authenticator.allowed_users = set()  # admission by experiment membership only
next(r for r in c.JupyterHub.load_roles if r["name"] == "ink-test")["scopes"].append("admin:auth_state")
"""
    hub_env_key = Fernet.generate_key().decode()
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTERHUB_CRYPT_KEY", hub_env_key)
    provider.start()
    try:
        hub.start()
        yield hub, provider
    finally:
        mp.undo()
        hub.stop()
        provider.stop()


class Recorder:
    """Everything the browser received: URLs, headers, bodies and cookies."""

    def __init__(self, context):
        self.context = context
        self.seen: list[str] = []
        context.on("response", self._on_response)

    def _on_response(self, response):
        self.seen.append(response.url)
        self.seen.append(json.dumps(response.headers))
        try:
            self.seen.append(response.body().decode("utf-8", "replace"))
        except Exception:  # redirects have no body
            pass

    def everything(self) -> str:
        return "\n".join(self.seen + [json.dumps(self.context.cookies())])


def sso_login(browser, hub, provider, user: str, expect_panel: bool = True):
    context = browser.new_context()
    recorder = Recorder(context)
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login")
    assert page.locator(".ink-site-banner h1").inner_text() == "IHEP INK SSO Test"
    page.click("text=Sign in with IHEP SSO")
    # the provider's own login page
    page.wait_for_url(f"{provider.url}/interaction/**")
    shot(page, "sso-provider-login.png")
    page.fill("input[name=login]", user)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    # the provider's consent page: the hub asks for the user's groups
    page.wait_for_selector("text=Authorize")
    assert "groups" in page.content()
    shot(page, "sso-provider-consent.png")
    page.click("button[type=submit]")
    if expect_panel:
        page.wait_for_url(f"{hub.url}/hub/ink")
    else:
        page.wait_for_url(f"{hub.url}/hub/oauth_callback**")
    return page, recorder


def auth_state(hub, user):
    r = hub.api("GET", f"/users/{user}")
    r.raise_for_status()
    return r.json()["auth_state"]


def test_login_consent_and_landing_with_the_users_experiments(sso, browser):
    hub, provider = sso
    page, _ = sso_login(browser, hub, provider, "alice")
    assert page.locator("#ink-experiments").inner_text().strip() == "Experiments: JUNO"
    shot(page, "sso-panel.png")
    assert sorted(hub.user_model("alice")["groups"]) == ["juno"]
    bob, _ = sso_login(browser, hub, provider, "bob")
    assert bob.locator("#ink-experiments").inner_text().strip() == "Experiments: LHAASO"
    # group_map renamed the claim's values; unmapped values (/staff) were dropped
    assert hub.user_model("bob")["groups"] == ["lhaaso"]
    # the spawn menu offers only the experiments of the groups
    bob.goto(f"{hub.url}/hub/spawn/bob/jupyter")
    assert bob.locator("#ink-experiment option").all_inner_texts() == ["LHAASO"]


def test_user_of_no_experiment_is_refused_with_a_clear_page(sso, browser):
    hub, provider = sso
    page, _ = sso_login(browser, hub, provider, "mallory", expect_panel=False)
    text = page.locator("body").inner_text()
    shot(page, "sso-refused.png")
    assert page.locator("h1").inner_text().strip() == "403 : Not a member of any experiment"
    assert "your account is not a member of any experiment" in text
    assert hub.api("GET", "/users/mallory").status_code == 404  # never became a hub user
    page.goto(f"{hub.url}/hub/ink")
    page.wait_for_url(f"{hub.url}/hub/login**")


def test_provider_tokens_never_reach_the_browser_or_the_log(sso, browser):
    hub, provider = sso
    page, recorder = sso_login(browser, hub, provider, "alice")
    page.goto(f"{hub.url}/hub/home")
    page.goto(f"{hub.url}/hub/spawn/alice/jupyter")
    state = auth_state(hub, "alice")
    tokens = [state["access_token"], state["refresh_token"], state["id_token"]]
    assert all(tokens), "the provider issued access, refresh and id tokens"
    seen = recorder.everything()
    log = hub.log_text()
    for token in tokens:
        assert token not in seen
        assert token not in log
    # the authorization code did pass through the browser (that is the flow), once
    assert f"{hub.url}/hub/oauth_callback?code=" in seen


def test_tokens_refresh_and_groups_follow_the_provider(sso, browser):
    hub, provider = sso
    page, _ = sso_login(browser, hub, provider, "alice")
    before = auth_state(hub, "alice")
    provider.set_groups("alice", ["/experiments/juno", "/experiments/lhaaso"])
    time.sleep(ACCESS_TOKEN_TTL + 1)  # the access token has expired; auth_refresh_age is 2 s
    old = requests.get(f"{provider.url}/me", headers={"Authorization": f"Bearer {before['access_token']}"},
                       timeout=10)
    assert old.status_code == 401, "the provider refuses the expired access token"
    page.goto(f"{hub.url}/hub/ink")
    after = auth_state(hub, "alice")
    assert after["access_token"] != before["access_token"], "refreshed with the refresh token"
    assert page.locator("#ink-experiments").inner_text().strip() == "Experiments: JUNO, LHAASO"
    assert sorted(hub.user_model("alice")["groups"]) == ["juno", "lhaaso"]
    provider.set_groups("alice", ["/experiments/juno"])


def test_logout_ends_the_hub_session_and_the_providers(sso, browser):
    hub, provider = sso
    page, _ = sso_login(browser, hub, provider, "bob")
    page.goto(f"{hub.url}/hub/logout")
    # the provider asks to confirm the sign-out of its own session
    page.wait_for_url(f"{provider.url}/session/end**")
    page.click("button[autofocus], button[type=submit]")
    page.wait_for_url(f"{hub.url}/hub/login**")
    page.goto(f"{hub.url}/hub/ink")
    page.wait_for_url(f"{hub.url}/hub/login**")
    # signing in again goes through the provider's login page: its session ended too
    page.click("text=Sign in with IHEP SSO")
    page.wait_for_url(f"{provider.url}/interaction/**")
    assert page.locator("input[name=login]").count() == 1


@pytest.mark.kdc
def test_sso_user_gets_a_kerberos_ticket_from_the_site_hook(kdc, browser, unix_users, tmp_path):  # noqa: F811
    """The documented site hook (kerberos_ticket_hook) gives an SSO user a ticket, here from a
    keytab a credential service would hold; the user's session finds it with klist."""
    from .test_kerberos import REALM, run_in_session

    keytab = tmp_path / "alice.keytab"
    kdc.addprinc(f"alice@{REALM}", "alice-sso-krb")
    kdc.extract_keytab(f"alice@{REALM}", str(keytab))
    hub = Hub(tmp_path / "hub", backend="local", catalogue=CATALOGUE)
    provider = Provider(tmp_path, free_port(), f"{hub.url}/hub/oauth_callback", f"{hub.url}/hub/login")
    op = provider.url
    hub.extra_config = f"""
import asyncio
from ink_hub.kerberos import kinit_keytab

async def ticket_for(authenticator, username, auth_state):
    return await asyncio.to_thread(kinit_keytab, f"{{username}}@{REALM}", {str(keytab)!r},
                                   renew_lifetime=3600)

{oidc_config(hub, provider)}c.InkOIDCAuthenticator.group_map = {{"/experiments/juno": "juno"}}
c.InkOIDCAuthenticator.kerberos_ticket_hook = ticket_for
c.Authenticator.allowed_users = set()
next(r for r in c.JupyterHub.load_roles if r["name"] == "ink-test")["scopes"].append("admin:auth_state")
"""
    mp = pytest.MonkeyPatch()
    for key, value in kdc.env.items():
        mp.setenv(key, value)
    mp.setenv("JUPYTERHUB_CRYPT_KEY", Fernet.generate_key().decode())
    provider.start()
    try:
        hub.start()
        page, recorder = sso_login(browser, hub, provider, "alice")
        hub.start_and_wait("alice", "jupyter")
        out = run_in_session(hub, "alice", "jupyter", "klist")
        assert f"Default principal: alice@{REALM}" in out and "krbtgt/" in out
        ccache = auth_state(hub, "alice")["kerberos"]["ccache"]
        assert ccache[40:100] not in recorder.everything() and ccache[40:100] not in hub.log_text()
        hub.stop_server("alice", "jupyter")
    finally:
        mp.undo()
        hub.stop()
        provider.stop()
