"""Tokens for the workflow API made where users make them: JupyterHub's token page, in real
headless Chromium, with INK scopes and an expiry; revoking it on the same page works at once."""

from __future__ import annotations


import pytest

from .conftest import BROWSER_ARGS, CHROMIUM, PatientBrowser
import requests

from .test_workflow_api import CATALOGUE

pytestmark = [pytest.mark.browser, pytest.mark.hub]



def request_token(page, hub, note: str, scopes: str) -> str:
    page.goto(f"{hub.url}/hub/token")
    page.fill("#token-note", note)
    page.select_option("#token-expiration-seconds", "3600")
    page.fill("#token-scopes", scopes)
    page.click("#request-token-form button[type=submit]")
    page.wait_for_function("document.querySelector('#token-result').textContent.length > 10")
    return page.locator("#token-result").inner_text().strip()


def test_token_page_scopes_and_revocation(hub_factory):
    from playwright.sync_api import sync_playwright

    hub = hub_factory(backend="local", catalogue=CATALOGUE)
    hub.start_and_wait("dave", "portal")
    jobs = f"{hub.url}/user/dave/portal/ink/api/v1/jobs"
    with sync_playwright() as p:
        browser = PatientBrowser(p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True))
        try:
            page = browser.new_context().new_page()
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", "dave")
            page.fill("#password_input", "test-password")
            page.click("#login_submit")
            page.wait_for_url("**/hub/ink")

            full = request_token(page, hub, "simulation platform",
                                 "access:servers!server=dave/portal custom:ink:jobs!user=dave")
            plain = request_token(page, hub, "no ink", "access:servers!server=dave/portal")
            h = {"Authorization": f"token {full}"}
            r = requests.post(jobs, headers=h, json={"command": ["true"]}, timeout=30)
            assert r.status_code == 201, r.text
            r = requests.get(jobs, headers={"Authorization": f"token {plain}"}, timeout=30)
            assert r.status_code == 403 and "custom:ink:jobs:read" in r.json()["message"]

            # the browser's own login reaches the API (the Jobs page uses it): without the XSRF
            # token a page (or another site) cannot submit jobs with the user's cookie
            page.goto(f"{hub.url}/user/dave/portal/ink/shell")  # OAuth login into the portal
            info = page.request.get(f"{hub.url}/user/dave/portal/ink/api/v1/")
            assert info.status == 200 and info.json()["user"] == "dave" and info.json()["scopes"] == []
            forged = page.request.post(jobs, data={"command": ["id"]})  # cookie, no XSRF token
            assert forged.status == 401, forged.text()  # the cookie is not accepted without it
            xsrf = next(c["value"] for c in page.context.cookies(f"{hub.url}/user/dave/portal/")
                        if c["name"] == "_xsrf" and c["path"].startswith("/user/dave/portal"))
            with_xsrf = page.request.post(jobs, data={"command": ["id"]}, headers={"X-XSRFToken": xsrf})
            # the owner's own browser login, XSRF-checked, may act (as on the Jobs page)
            assert with_xsrf.status == 201, with_xsrf.text()
            listed = page.request.get(jobs, headers={"X-XSRFToken": xsrf})
            assert listed.status == 200 and listed.json()["jobs"], listed.text()

            # the token page lists it with its expiry; revoke it there
            page.goto(f"{hub.url}/hub/token")
            row = page.locator("tr.token-row", has_text="simulation platform")
            assert "custom:ink:jobs" in row.text_content() and "in an hour" in row.inner_text()
            row.locator(".revoke-token-btn").click()
            row.wait_for(state="detached")  # the page removes the row once the hub revoked it
            r = requests.get(jobs, headers=h, timeout=30)
            assert r.status_code == 401 and "revoked" in r.json()["message"]
        finally:
            browser.close()
    hub.stop_server("dave", "portal")
