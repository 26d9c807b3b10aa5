"""The portal pages in real headless Chromium (Playwright), against a real hub + Slurm, with two
users in different experiments."""

from __future__ import annotations

import os
import time

import pytest

from .conftest import SLURM_HUB_CONFIG, UI_TIMEOUT, scaled, squeue_active
from .test_profiles import CATALOGUE, site_setup  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slurm, pytest.mark.hub]

# INK_SCREENSHOTS=docs/user/images refreshes the user guide's screenshots from these tests
SCREENSHOTS = os.environ.get("INK_SCREENSHOTS")


def shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=True)
SITE = CATALOGUE.replace("site: {max_sessions_per_user: 1}",
                         "site: {name: IHEP INK Test, max_sessions_per_user: 1}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, site_setup, dev_slurm):  # noqa: F811
    from .harness import Hub

    h = Hub(tmp_path_factory.mktemp("browser"), SLURM_HUB_CONFIG + "c.SlurmBackend.queue_sample_interval = 1\n",
            backend="slurm", catalogue=SITE).start()
    assert h.api("POST", "/groups/juno", json={"users": ["alice"]}).status_code in (201, 409)
    yield h
    for user in ("alice", "carol"):
        for name in list(h.user_model(user).get("servers", {})):
            h.api("DELETE", f"/users/{user}/servers/{name}")
    h.stop()


def wait_for_terminal(page, condition: str, arg=None, timeout: float = UI_TIMEOUT) -> None:
    """Wait until a JS condition over ``lines`` (the EShell buffer, trimmed) and ``arg`` holds."""
    page.wait_for_function(
        "(arg) => { const b = window.inkTerminal.buffer.active; const lines = [];"
        " for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true).trim());"
        f" return {condition}; }}", arg=arg, timeout=timeout)


def login(browser, hub, user):
    page = browser.new_context(accept_downloads=True).new_page()
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", "test-password")
    page.click("#login_submit")
    page.wait_for_url("**/hub/ink")
    return page


def test_login_page_shows_the_site(browser, hub, tmp_path):
    page = browser.new_context().new_page()
    page.goto(f"{hub.url}/hub/login")
    assert page.locator(".ink-site-banner h1").inner_text() == "IHEP INK Test"
    assert page.title() == "IHEP INK Test"
    shot(page, tmp_path, "login.png")


def test_spawn_menu_shows_only_the_users_experiments_and_starts_lab(browser, hub, tmp_path):
    alice = login(browser, hub, "alice")
    alice.goto(f"{hub.url}/hub/spawn/alice/jupyter")
    alice.wait_for_selector("#ink-experiment")
    assert alice.locator("#ink-app-title").inner_text() == "JupyterLab"
    options = alice.locator("#ink-experiment option").all_inner_texts()
    assert options == ["JUNO"]
    assert alice.locator("#ink-cpus-juno").get_attribute("max") == "4"

    carol = login(browser, hub, "carol")
    carol.goto(f"{hub.url}/hub/spawn/carol/jupyter")
    carol.wait_for_selector("#ink-experiment")
    assert carol.locator("#ink-experiment option").all_inner_texts() == ["LHAASO"]
    shot(carol, tmp_path, "spawn-menu.png")

    # alice asks for 2 custom cores and lands in JupyterLab, running as a Slurm job
    alice.check("#ink-preset-juno-custom")
    alice.fill("#ink-cpus-juno", "2")
    alice.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    alice.wait_for_url("**/user/alice/jupyter/lab**", timeout=UI_TIMEOUT)
    alice.wait_for_selector("#jp-main-dock-panel", timeout=UI_TIMEOUT)
    alice.wait_for_timeout(1500)  # let the launcher settle for the picture
    shot(alice, tmp_path, "jupyterlab.png")
    job_id = hub.spawner_state("alice", "jupyter")["job_id"]
    assert job_id in squeue_active("alice")
    hub.stop_server("alice", "jupyter")

    # the menu remembers the last choice for this app
    alice.goto(f"{hub.url}/hub/spawn/alice/jupyter")
    alice.wait_for_selector("#ink-cpus-juno")
    assert alice.locator("#ink-cpus-juno").input_value() == "2"
    assert alice.locator("#ink-preset-juno-custom").is_checked()


def test_values_beyond_the_limits_are_refused_by_the_server(browser, hub):
    """The menu's max= is a hint; the hub refuses what the profile does not allow."""
    alice = login(browser, hub, "alice")
    alice.goto(f"{hub.url}/hub/spawn/alice/jupyter")
    alice.wait_for_selector("#ink-cpus-juno")
    alice.check("#ink-preset-juno-custom")
    alice.evaluate("document.getElementById('ink-cpus-juno').removeAttribute('max')")
    alice.fill("#ink-cpus-juno", "64")
    alice.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    alice.wait_for_selector("text=cpus: 64 is outside the allowed range 1-4", timeout=UI_TIMEOUT)
    assert not squeue_active("alice")
    alice.click(".ink-form-back a")  # back to the app's menu, with the last (refused) values
    alice.wait_for_selector("#ink-cpus-juno")
    assert alice.locator("#ink-cpus-juno").input_value() == "64"


def test_dashboard_tiles_sessions_and_statistics(browser, hub, tmp_path):
    alice = login(browser, hub, "alice")  # lands on the INK panel
    assert alice.locator("#ink-experiments").inner_text() == "Experiments: JUNO"
    assert alice.locator("#ink-services .ink-tile").count() == 3
    tiles = alice.locator("#ink-apps .ink-tile")
    assert sorted(tiles.evaluate_all("els => els.map(e => e.dataset.app)")) == ["jupyter", "second"]
    carol = login(browser, hub, "carol")
    assert carol.locator("#ink-apps .ink-tile").evaluate_all("els => els.map(e => e.dataset.app)") == ["jupyter"]
    assert carol.locator("#ink-os-jupyter option").all_inner_texts() == ["LHAASO"]

    # start JupyterLab from the tile: the session appears in "My sessions" with its job id
    alice.click(".ink-tile[data-app=jupyter] .ink-start")
    alice.wait_for_url("**/user/alice/jupyter/**", timeout=UI_TIMEOUT)
    alice.goto(f"{hub.url}/hub/ink")
    row = alice.locator("#ink-sessions tr[data-name=jupyter]")
    row.locator(".ink-connect").wait_for(timeout=UI_TIMEOUT)
    job_id = hub.spawner_state("alice", "jupyter")["job_id"]
    assert row.locator("td").nth(1).inner_text() == job_id and job_id in squeue_active("alice")
    assert "running" in row.locator(".ink-state").inner_text()
    assert alice.locator("#ink-usage svg text", has_text="JupyterLab").count() == 1
    # the platform overview comes from the shared sampler: alice's job runs in partition debug
    # (the sampler's next round after the job started; a reload shows it, so reload until then)
    deadline = time.monotonic() + scaled(30)
    while True:
        alice.reload()
        alice.wait_for_selector("#ink-overview", state="attached")
        if alice.locator("#ink-overview td:has-text('debug')").count() or time.monotonic() > deadline:
            break
        alice.wait_for_timeout(500)
    cells = alice.locator("#ink-overview tr:has(td:has-text('debug')) td").all_inner_texts()
    assert cells[0] == "debug" and int(cells[1]) >= 1
    shot(alice, tmp_path, "dashboard.png")
    # stop from the table; the row follows without a reload
    row.locator(".ink-stop").click()
    alice.wait_for_selector("#ink-sessions tr[data-name=jupyter] .ink-state:has-text('stopped')", timeout=UI_TIMEOUT)
    assert job_id not in squeue_active("alice")


def test_a_link_from_another_site_cannot_start_a_session(browser, hub):
    """A top-level GET with options (what a cross-site page can make a logged-in browser do)
    starts nothing; the menu says how sessions start."""
    alice = login(browser, hub, "alice")
    before = set(squeue_active("alice"))
    alice.goto(f"{hub.url}/hub/spawn/alice/second?experiment=juno&cpus=1&walltime=1:00:00")
    alice.wait_for_selector("text=Sessions start from the menu")
    assert alice.locator("#ink-experiment").count() == 1  # the menu is shown instead
    assert set(squeue_active("alice")) == before
    assert (hub.server("alice", "second") or {}).get("ready") is not True


def test_eshell_from_the_panel_runs_commands_and_keeps_its_settings(browser, hub, tmp_path):
    """EShell: the portal server starts at once on the local backend (no queue, no form) and its
    page is an xterm.js terminal on jupyter-server's terminals."""
    alice = login(browser, hub, "alice")
    alice.click("#ink-service-eshell")
    alice.wait_for_url("**/user/alice/portal/ink/shell", timeout=UI_TIMEOUT)
    alice.wait_for_selector("#ink-status:has-text('connected')", timeout=UI_TIMEOUT)
    assert hub.spawner_state("alice", "portal")["backend"] == "local"
    assert not [j for j in squeue_active("alice")]  # nothing went to the batch queue
    alice.locator("#ink-terminal").click()
    alice.keyboard.type("echo $((6*7))")
    alice.keyboard.press("Enter")
    wait_for_terminal(alice, "lines.includes('42')")
    # TERM and the window size reach the shell (what tmux, htop and vim need)
    alice.keyboard.type("echo term=$TERM; stty size")
    alice.keyboard.press("Enter")
    rows, cols = alice.evaluate("[window.inkTerminal.rows, window.inkTerminal.cols]")
    wait_for_terminal(alice, "lines.some(l => l.startsWith('term=xterm')) && lines.includes(arg[0] + ' ' + arg[1])",
                      arg=[rows, cols])
    # theme and font size are kept across a reload
    alice.select_option("#ink-theme", "light")
    alice.fill("#ink-font-size", "18")
    alice.locator("#ink-font-size").dispatch_event("change")
    shot(alice, tmp_path, "eshell.png")
    alice.reload()
    alice.wait_for_selector("#ink-status:has-text('connected')", timeout=UI_TIMEOUT)
    assert alice.locator("#ink-theme").input_value() == "light"
    assert alice.locator("#ink-font-size").input_value() == "18"
    assert alice.evaluate("window.inkTerminal.options.fontSize") == 18
    assert alice.evaluate("document.body.className") == "light"
    hub.stop_server("alice", "portal")


def test_terminal_websocket_refuses_another_user_and_cross_origin(browser, hub):
    """The terminals behind EShell are jupyter-server's, behind the hub's OAuth: another user's
    token is refused, and a websocket opened with the user's cookies from another origin (what
    a cross-site page could do) is refused too."""
    import requests
    import websocket  # websocket-client, a test dependency

    bob = hub.user_token("bob")
    alice = login(browser, hub, "alice")
    alice.click("#ink-service-eshell")
    alice.wait_for_selector("#ink-status:has-text('connected')", timeout=UI_TIMEOUT)
    r = requests.post(f"{hub.url}/user/alice/portal/api/terminals",
                      headers={"Authorization": f"token {bob}"}, timeout=10, allow_redirects=False)
    assert r.status_code in (302, 403)
    name = requests.get(f"{hub.url}/user/alice/portal/api/terminals",
                        headers={"Authorization": f"token {hub.user_token('alice')}"}, timeout=10).json()[0]["name"]
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in alice.context.cookies())
    ws_url = f"{hub.url.replace('http', 'ws')}/user/alice/portal/terminals/websocket/{name}"
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(ws_url, cookie=cookies, origin="http://evil.example", timeout=10)
    same_site = websocket.create_connection(ws_url, cookie=cookies, origin=hub.url, timeout=10)
    same_site.close()
    hub.stop_server("alice", "portal")
