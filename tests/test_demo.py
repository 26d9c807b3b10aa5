"""What a newcomer meets (issue 20): the quickstart's demo hub in real Chromium.

The demo runs ``jupyterhub_config.py`` unchanged (local backend, demo users, the embedded
catalogue). Its catalogue offers the apps whose stack is installed on this machine; here
code-server is hidden from the hub (``INK_CODE_SERVER`` names a missing program), so VS Code
must not be offered and the panel must say how to install it. Every app that is offered starts
from its tile, and the progress page stays until the app itself has answered. The idle culler
runs as the hub's managed service. ``scripts/quickstart`` prints a few lines, the password last.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .conftest import wait_for
from .harness import REPO, VENV_BIN, free_port
from .test_browser_pages import shot
from .test_local_spawn import sessions_of_hub

pytestmark = [pytest.mark.browser, pytest.mark.hub]


class DemoHub:
    """jupyterhub_config.py as the quickstart runs it, on free ports, with its own state."""

    def __init__(self, state: Path, env: dict | None = None, command: list[str] | None = None):
        self.state = state
        self.port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", INK_DEMO_STATE=str(state),
                        INK_DEMO_PORT=str(self.port), **(env or {}))
        self.args = [f"--JupyterHub.hub_port={self.hub_port}",
                     f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{self.api_port}"]
        self.command = command or [str(VENV_BIN / "jupyterhub"), "-f", str(REPO / "jupyterhub_config.py")]
        self.log = state / "test-hub.log"
        self.proc = None

    def start(self, stdout=None) -> "DemoHub":
        self.proc = subprocess.Popen([*self.command, *self.args], cwd=self.state, env=self.env,
                                     stdout=stdout or open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def wait_up(self, timeout: float = 300) -> None:
        def up():
            assert self.proc.poll() is None, f"the demo hub exited:\n{self.log_text()}"
            try:
                return requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_for(up, timeout, 0.3, "demo hub up")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    @property
    def password(self) -> str:
        return (self.state / "demo-password").read_text().strip()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in sessions_of_hub(self.hub_port):  # the demo keeps sessions when the hub stops
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def demo(tmp_path_factory, unix_users):
    hub = DemoHub(tmp_path_factory.mktemp("demo"), env={"INK_CODE_SERVER": "/nonexistent/code-server"}).start()
    try:
        hub.wait_up()
        yield hub
    finally:
        hub.stop()
        print(hub.log_text(), file=sys.stderr)


def login(browser, demo, user="alice"):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{demo.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", demo.password)
    page.click("#login_submit")
    page.wait_for_url("**/hub/ink")
    return page


def stop_server(page, demo, name: str) -> None:
    page.goto(f"{demo.url}/hub/ink")
    page.evaluate("""async ([base, name]) => {
        await fetch(base + 'api/users/alice/servers/' + name,
                    {method: 'DELETE', headers: {'X-XSRFToken': window.jhdata.xsrf_token}}); }""",
                  [f"/hub/", name])

    def stopped():
        r = page.evaluate("async () => (await fetch('/hub/api/users/alice')).json()")
        return name not in r.get("servers", {})
    wait_for(stopped, 60, 0.5, f"{name} stopped")


def stored_servers(page, demo, user="alice") -> dict:
    """The user's named servers in the hub's database, stopped ones included
    (``GET /hub/api/users/NAME?include_stopped_servers``, with a token the user made)."""
    token = page.evaluate("""async (user) => (await (await fetch('/hub/api/users/' + user + '/tokens', {
        method: 'POST', headers: {'X-XSRFToken': window.jhdata.xsrf_token, 'Content-Type': 'application/json'},
        body: JSON.stringify({note: 'test', expires_in: 600})})).json()).token""", user)
    r = requests.get(f"{demo.url}/hub/api/users/{user}", params={"include_stopped_servers": "1"},
                     headers={"Authorization": f"token {token}"}, timeout=30)
    r.raise_for_status()
    return r.json()["servers"]


def test_demo_offers_the_installed_apps_and_says_how_to_install_the_rest(browser, demo, tmp_path):
    page = login(browser, demo)
    tiles = page.locator("#ink-apps .ink-tile").evaluate_all("els => els.map(e => e.dataset.app)")
    assert tiles == ["jupyter", "desktop", "rootbrowse"], tiles  # all installed here but code-server
    note = page.locator("#ink-not-installed li[data-app=vscode]")
    assert "VS Code" in note.inner_text() and "scripts/install-apps" in note.inner_text()
    shot(page, tmp_path, "demo-panel.png")

    # an app the user cannot start: why, the way back, no Start button, and no row left behind
    page.goto(f"{demo.url}/hub/spawn/alice/vscode")
    page.wait_for_selector("#ink-spawn-refused")
    assert "not a member of any experiment that offers VS Code" in page.inner_text("#ink-spawn-refused")
    assert page.locator("button:has-text('Start'), input[type=submit]").count() == 0
    assert page.locator("#spawn_form").count() == 0
    shot(page, tmp_path, "spawn-refused.png")
    page.goto(f"{demo.url}/hub/spawn/alice/nosuchapp")
    page.wait_for_selector("#ink-spawn-refused:has-text(\"no app named 'nosuchapp'\")")
    assert page.locator("button:has-text('Start')").count() == 0
    # no server record in the hub's database either (it would show in /hub/home)
    servers = stored_servers(page, demo)
    assert "vscode" not in servers and "nosuchapp" not in servers, servers
    page.goto(f"{demo.url}/hub/home")
    assert page.locator("[data-server-name=vscode], [data-server-name=nosuchapp]").count() == 0
    # a POST anyway (what a crafted form could send) is refused by the hub and leaves no row
    status = page.evaluate("""async () => (await fetch('/hub/spawn/alice/vscode', {method: 'POST',
        headers: {'X-XSRFToken': window.jhdata.xsrf_token}, body: new FormData()})).status""")
    assert status >= 400
    page.goto(f"{demo.url}/hub/ink")
    page.wait_for_function("() => document.querySelector('#ink-sessions tbody') !== null")
    page.wait_for_timeout(3500)  # one refresh of the live table (every 3 s)
    assert page.locator("#ink-sessions tr[data-name=vscode], #ink-sessions tr[data-name=nosuchapp]").count() == 0
    rows = page.evaluate("async () => (await fetch('/hub/ink/api/sessions')).json()")["sessions"]
    assert not [r for r in rows if r["name"] in ("vscode", "nosuchapp")], rows
    servers = stored_servers(page, demo)
    assert "vscode" not in servers and "nosuchapp" not in servers, servers


#: what shows that each app is usable in the top-level page
READY = {
    "jupyter": "#jp-main-dock-panel",
    "desktop": "#noVNC_status, canvas",
    "rootbrowse": "body",
}


@pytest.mark.parametrize("app", ["jupyter", "rootbrowse", "desktop"])
def test_every_offered_app_starts_from_its_tile_behind_the_progress_page(browser, demo, tmp_path, app):
    """The tile starts the app; the top-level page leaves the progress page only after the app's
    URL has answered (a request of the progress page, before the navigation), and JupyterLab's
    scripts are already loaded when the user arrives."""
    page = login(browser, demo)
    events = []  # (time, kind, url, status, main-frame navigation?)
    page.on("response", lambda r: events.append((time.monotonic(), r.url, r.status,
                                                 r.request.is_navigation_request() and r.frame == page.main_frame,
                                                 r.request.resource_type)))
    app_prefix = f"{demo.url}/user/alice/{app}/"
    page.click(f".ink-tile[data-app={app}] .ink-start")
    page.wait_for_url("**/hub/spawn-pending/alice/**", timeout=60_000)
    if app == "jupyter":
        page.wait_for_function("window.inkPending && window.inkPending.phase !== 'spawning'", timeout=120_000)
        shot(page, tmp_path, "spawn-progress.png")
    page.wait_for_url(f"**/user/alice/{app}/**", timeout=180_000)
    arrived = time.monotonic()
    page.wait_for_selector(READY[app], timeout=60_000)
    usable = time.monotonic() - arrived
    print(f"{app}: usable {usable:.1f} s after leaving the progress page")
    # events arrive in order: everything before the first top-level navigation to the app
    first_nav = next(i for i, e in enumerate(events) if e[3] and e[1].startswith(app_prefix))
    before = events[:first_nav]
    answered = [e for e in before if e[1].startswith(app_prefix) and 200 <= e[2] < 300]
    assert answered, "the progress page went to the app before the app had answered"
    assert events[first_nav][2] in (200, 302)
    if app == "jupyter":
        assert [e for e in before if "/static/lab/main." in e[1] and e[2] == 200], \
            "JupyterLab's main script was loaded behind the progress page"
        assert [e for e in before if e[1].split("?")[0].endswith("/lab/api/settings") and e[2] == 200]
    stop_server(page, demo, app)


def test_the_idle_culler_runs_as_the_demo_hubs_service(demo):
    """site.idle_culler: the standard jupyterhub-idle-culler, started by the hub, 24 h timeout."""
    culler = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
                ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if b"jupyterhub_idle_culler" in cmd and ppid == demo.proc.pid:
                culler.append([c.decode() for c in cmd if c])
    assert len(culler) == 1, culler
    assert "--timeout=86400" in culler[0] and "--cull-every=600" in culler[0]


def test_quickstart_prints_a_few_lines_and_the_password_last(tmp_path, unix_users):
    """scripts/quickstart: its install and the hub log go to files; the output is short, with
    the password on the last line (issue 20: fifteen lines of pip warnings came before it)."""
    output = tmp_path / "quickstart.out"
    hub = DemoHub(tmp_path / "state", env={"SKIP_APT": "1"}, command=[str(REPO / "scripts" / "quickstart")])
    hub.state.mkdir()
    hub.log = output
    with open(output, "wb") as out:
        hub.start(stdout=out)
        try:
            wait_for(lambda: "password" in output.read_text() or hub.proc.poll() is not None, 600, 0.5,
                     "the quickstart's password line")
            time.sleep(2)  # anything printed after the password line would show now
            lines = output.read_text().splitlines()
            assert hub.proc.poll() is None, lines
            assert len(lines) <= 4, lines
            assert not [line for line in lines if re.search(r"WARNING|pip|Requirement", line)], lines
            assert lines[-1].endswith(f"password {hub.password}"), lines
            assert f"http://127.0.0.1:{hub.port}" in "\n".join(lines)
            assert requests.get(f"{hub.url}/hub/login", timeout=10).status_code == 200
            os.kill(hub.proc.pid, signal.SIGINT)  # Ctrl-C
            hub.proc.wait(60)
            wait_for(lambda: not _answers(f"{hub.url}/hub/health"), 30, 0.5, "the hub stopped with the script")
        finally:
            hub.stop()
    print(output.read_text(), file=sys.stderr)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False
