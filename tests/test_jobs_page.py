"""The Jobs page (/ink/jobs in the portal) in real headless Chromium, through the real hub.

The panel's Jobs tile opens it; its submit form goes to the job API, so a request outside the
profile is answered by the one validator, with the same message the API gives a token, next
to the field; jobs run, their output is tailed live, they are cancelled and resubmitted;
names and commands are shown as text (XSS), and a cookie POST needs the XSRF token."""

from __future__ import annotations

import pytest
import requests

from .test_browser_pages import login, shot
from .test_workflow_api import FULL, token

pytestmark = [pytest.mark.browser, pytest.mark.hub]

CATALOGUE = """
defaults: {memory: 1G, walltime: "1:00:00"}
limits: {cpus: 2, memory: 4G, walltime: "2:00:00"}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter, portal]
"""
XSS = "<img src=x onerror=window.__inkXss=1>"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users):
    from .harness import Hub

    h = Hub(tmp_path_factory.mktemp("jobs-page"), "c.InkSpawner.lens_interval = 1\n",
            backend="local", catalogue=CATALOGUE).start()
    yield h
    for user in ("alice", "bob"):
        for name in list(h.user_model(user).get("servers", {})):
            h.api("DELETE", f"/users/{user}/servers/{name}")
    h.stop()


def row(page, name):
    return page.locator("#ink-jobs-table tbody tr[data-kind=job]", has_text=name).first


def wait_state(page, name, state, timeout=60_000):
    page.wait_for_function(
        """([name, state]) => [...document.querySelectorAll('#ink-jobs-table tbody tr[data-kind=job]')]
             .some((tr) => tr.textContent.includes(name) && tr.querySelector('.state').textContent.startsWith(state))""",
        arg=[name, state], timeout=timeout)


def open_form(page):
    page.click("#ink-new-job")
    page.wait_for_selector("#ink-submit-dialog[open]")


def test_jobs_page_submit_tail_cancel_resubmit(browser, hub, tmp_path):
    import uuid

    tag = uuid.uuid4().hex[:6]  # alice's home (and her job records) are shared with other runs
    hello, spin = f"hello-{tag}", f"spin-{tag}"
    page = login(browser, hub, "alice")
    tile = page.locator("#ink-service-jobs")
    assert tile.get_attribute("href"), "the Jobs tile is a link on a hub whose portal serves jobs"
    tile.click()
    page.wait_for_url("**/user/alice/portal/ink/jobs", timeout=120_000)
    logs = []
    page.on("console", lambda m: logs.append(m.text))
    page.reload()
    try:
        page.wait_for_selector("#ink-f-experiment option[value=default]", state="attached")
    except Exception:
        raise AssertionError((page.url, logs, page.content()[:3000]))

    # outside the profile: the validator's own message, next to the field
    tok = token(hub, "alice", FULL)
    api_message = requests.post(f"{hub.url}/user/alice/portal/ink/api/v1/jobs",
                                headers={"Authorization": f"token {tok}"},
                                json={"command": ["true"], "cpus": 8}, timeout=60).json()["message"]
    assert api_message.startswith("cpus: ")
    open_form(page)
    page.fill("#ink-f-command", "true")
    page.fill("#ink-f-cpus", "8")
    page.click("#ink-submit")
    error = page.locator('.row[data-field="cpus"] .ink-error')
    error.wait_for()
    page.wait_for_function("document.querySelector('.row[data-field=cpus] .ink-error').textContent.length > 0")
    assert "cpus: " + error.inner_text() == api_message
    assert page.locator('.row[data-field="cpus"]').get_attribute("class").endswith("invalid")
    shot(page, tmp_path, "jobs-submit-error.png")

    # a job whose command prints HTML: shown as text, never run
    page.fill("#ink-f-cpus", "1")
    page.fill("#ink-f-name", hello)
    page.fill("#ink-f-command", f"sh -c 'echo \"{XSS}\"; for i in 1 2 3; do echo line-$i; sleep 1; done'")
    page.click("#ink-submit")
    page.wait_for_selector("#ink-submit-dialog", state="hidden")
    try:
        page.wait_for_function("document.querySelector('#ink-output').textContent.includes('line-3')", timeout=60_000)
    except Exception:
        page.screenshot(path="/tmp/jl/fail.png", full_page=True)
        raise
    out = page.locator("#ink-output").inner_text()
    assert XSS in out and out.index("line-1") < out.index("line-3")
    assert page.evaluate("window.__inkXss") is None
    assert page.locator("#ink-output img").count() == 0
    wait_state(page, hello, "completed")
    assert XSS in page.locator("#ink-detail-fields").inner_text()  # the command, as text

    # a long job: CPU sparkline and efficiency while it runs, then cancel
    open_form(page)
    page.fill("#ink-f-name", spin)
    page.fill("#ink-f-command", "sh -c 'while :; do :; done'")
    page.click("#ink-submit")
    page.wait_for_selector("#ink-submit-dialog", state="hidden")
    wait_state(page, spin, "running")
    page.wait_for_selector('#ink-charts .ink-chart[data-metric="cpu"] polyline', state="attached", timeout=60_000)
    page.wait_for_function("/^used \\d+ % of 1 core over/.test(document.querySelector('#ink-efficiency').textContent)",
                           timeout=60_000)
    page.wait_for_selector("#ink-jobs-table tr[data-kind=job] td.cpu svg polyline", state="attached", timeout=30_000)
    shot(page, tmp_path, "jobs-page.png")
    row(page, spin).locator(".ink-cancel").click()
    wait_state(page, spin, "cancelled")

    # resubmit: the form comes back filled in, and the new job goes through the same API
    row(page, hello).locator(".ink-resubmit").click()
    page.wait_for_selector("#ink-submit-dialog[open]")
    assert page.input_value("#ink-f-name") == hello
    assert "line-$i" in page.input_value("#ink-f-command")
    page.click("#ink-submit")
    page.wait_for_selector("#ink-submit-dialog", state="hidden")
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('#ink-jobs-table tr[data-kind=job]')].filter((tr) => tr.textContent.includes(n)).length === 2",
        arg=hello)

    # filters
    page.fill("#ink-jobs-filter", spin)
    page.wait_for_function("document.querySelectorAll('#ink-jobs-table tbody tr').length === 1")
    page.fill("#ink-jobs-filter", "")
    page.select_option("#ink-jobs-state", "active")
    page.select_option("#ink-jobs-kind", "job")
    page.wait_for_function(
        "[...document.querySelectorAll('#ink-jobs-table tbody tr')].every((tr) => !tr.textContent.includes('cancelled'))")

    # the cookie alone cannot submit: XSRF
    forged = page.request.post(f"{hub.url}/user/alice/portal/ink/api/v1/jobs", data={"command": ["id"]})
    assert forged.status in (401, 403), forged.text()
    page.close()


def test_sessions_listed_with_their_figures(browser, hub, tmp_path):
    hub.start_and_wait("alice", "jupyter")
    page = login(browser, hub, "alice")
    hub.start_and_wait("alice", "portal") if not (hub.server("alice", "portal") or {}).get("ready") else None
    page.goto(f"{hub.url}/user/alice/portal/ink/jobs")
    session = page.locator("#ink-jobs-table tbody tr[data-kind=session]", has_text="running").first
    session.wait_for(timeout=60_000)
    page.wait_for_selector("#ink-jobs-table tr[data-kind=session] td.cpu svg", state="attached", timeout=60_000)
    session.locator(".ink-details").click()
    page.wait_for_selector('#ink-charts .ink-chart[data-metric="memory"]', timeout=30_000)
    shot(page, tmp_path, "jobs-session.png")
    page.close()
    hub.stop_server("alice", "jupyter")


def test_bob_is_refused_on_alices_jobs_page(browser, hub):
    if not (hub.server("alice", "portal") or {}).get("ready"):
        hub.start_and_wait("alice", "portal")
    page = login(browser, hub, "bob")
    r = page.request.get(f"{hub.url}/user/alice/portal/ink/api/v1/jobs")
    assert r.status in (401, 403), (r.status, r.url)  # no login into alice's server for bob
    bob = token(hub, "bob", FULL)
    r = requests.get(f"{hub.url}/user/alice/portal/ink/api/v1/jobs",
                     headers={"Authorization": f"token {bob}"}, timeout=60)
    assert r.status_code == 403
    page.close()
