"""The apps (VS Code, VNC desktop, ROOT browser) started from the hub as Slurm jobs and used in
real headless Chromium; then their security: sockets, no TCP, other users, websockets, logs.

Everything is real: JupyterHub + CHP, the dev Slurm, jupyter-server-proxy in the job,
code-server from npm, TigerVNC, JSROOT reading files written by ROOT (scikit-hep-testdata) and
by uproot. Needs scripts/install (which runs scripts/install-apps).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from .conftest import SLURM_HUB_CONFIG, UI_TIMEOUT, scaled, squeue_active, wait_for
from .test_browser_pages import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slurm, pytest.mark.hub]

APPS_CATALOGUE = """
site: {name: INK Apps Test}
defaults: {memory: 1G}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter, vscode, desktop, rootbrowse]
"""
DATA_DIR = "ink-apps-test-data"
#: what each app runs besides jupyter-server: the processes that must be gone after stop
APP_PROGRAMS = {
    "vscode": {"node"},
    "desktop": {"Xvnc", "openbox", "xterm", "dbus-daemon", "dbus-run-sessi"},
    "rootbrowse": {"python"},
}


def _installed():
    missing = [p for p in ("code-server", "Xvnc", "openbox", "xterm") if not shutil.which(p)]
    static = Path(__file__).resolve().parent.parent / "ink_proxy_ext" / "static"
    if not (static / "jsroot" / "modules" / "gui.mjs").exists():
        missing.append("JSROOT assets")
    if not (static / "novnc" / "core" / "rfb.js").exists():
        missing.append("noVNC assets")
    return missing


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users, dev_slurm):
    missing = _installed()
    assert not missing, f"app stack not installed ({', '.join(missing)}): run scripts/install"
    from .harness import Hub

    h = Hub(tmp_path_factory.mktemp("apps"), SLURM_HUB_CONFIG, backend="slurm",
            catalogue=APPS_CATALOGUE).start()
    yield h
    for user in ("alice", "bob"):
        for name in list(h.user_model(user).get("servers", {})):
            try:
                h.stop_server(user, name)  # waits until the job is cancelled
            except (RuntimeError, TimeoutError):
                pass
    h.stop()


@pytest.fixture(scope="module")
def root_files(unix_users):
    """alice's ROOT files: one written by ROOT itself (scikit-hep-testdata), one by uproot with a
    TTree and a histogram."""
    import numpy as np
    import skhep_testdata
    import uproot

    account = pwd.getpwnam("alice")
    data = Path(account.pw_dir) / DATA_DIR
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    shutil.copy(skhep_testdata.data_path("uproot-hepdata-example.root"), data / "hepdata.root")
    rng = np.random.default_rng(42)
    with uproot.recreate(data / "uproot-tree.root") as f:
        f.mktree("events", {"px": "f8", "nhits": "i4"})  # a TTree (f["x"] = dict writes RNTuple)
        f["events"].extend({"px": rng.normal(0, 10, 5000), "nhits": rng.poisson(12, 5000).astype("i4")})
        f["mass"] = np.histogram(rng.normal(91, 3, 20000), bins=60, range=(70, 110))
    (data / "notes.txt").write_text("not a ROOT file\n")
    for path in [data, *data.iterdir()]:
        os.chown(path, account.pw_uid, account.pw_gid)
    yield data
    shutil.rmtree(data, ignore_errors=True)


def session_processes(hub, user: str, server: str) -> list[tuple[int, str]]:
    """(pid, command name) of every process of this hub's ``user``/``server`` session, found by
    the environment jupyter-server's children inherit (survives orphaning, unlike the job's
    process tree)."""
    uid = pwd.getpwnam(user).pw_uid
    marks = (f"JUPYTERHUB_SERVICE_PREFIX=/user/{user}/{server}/".encode(),
             f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub.hub_port}/hub/api".encode())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if all(mark in env for mark in marks):
            found.append((int(entry), comm))
    return found


def x_lock_files(user: str) -> set[str]:
    uid = pwd.getpwnam(user).pw_uid
    paths = [f"/tmp/{n}" for n in os.listdir("/tmp") if re.fullmatch(r"\.X\d+-lock", n)]
    paths += [f"/tmp/.X11-unix/{n}" for n in os.listdir("/tmp/.X11-unix")] if os.path.isdir("/tmp/.X11-unix") else []
    return {p for p in paths if os.path.exists(p) and os.lstat(p).st_uid == uid}


def start_from_tile(page, hub, user: str, app: str, timeout: float = UI_TIMEOUT):
    """Click the app's Start on the INK panel and land in the app, as a user would."""
    page.goto(f"{hub.url}/hub/ink")
    page.click(f".ink-tile[data-app={app}] .ink-start")
    page.wait_for_url(f"**/user/{user}/{app}/**", timeout=timeout)
    job_id = hub.spawner_state(user, app)["job_id"]
    assert job_id in squeue_active(user)
    return job_id


SHELLS = {"bash", "sh", "dash", "zsh"}


def shells_at_prompt(hub, user: str, app: str) -> list[int]:
    """Shells of the session that wait at their prompt: a shell process on a terminal that is
    its terminal's foreground process group and sleeps (no command of its own running) — the
    state in which typed keys reach it, instead of a fixed pause and a guess."""
    found = []
    for pid, comm in session_processes(hub, user, app):
        if comm not in SHELLS:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp, tty_nr, tpgid = fields[0], int(fields[2]), int(fields[4]), int(fields[5])
        if tty_nr and tpgid == pgrp and state == "S":
            found.append(pid)
    return found


def stop_and_check_nothing_left(hub, user: str, app: str, running: list[tuple[int, str]]):
    hub.stop_server(user, app)
    pids = {pid for pid, _ in running}
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids) and
             not session_processes(hub, user, app), timeout=60,
             message=f"every process of {user}'s {app} session gone")


# ---- the apps in the browser ------------------------------------------------------------------

def test_panel_shows_app_tiles_with_icons(browser, hub, tmp_path):
    page = login(browser, hub, "alice")
    tiles = page.locator("#ink-apps .ink-tile")
    assert tiles.evaluate_all("els => els.map(e => e.dataset.app)") == ["jupyter", "vscode", "desktop", "rootbrowse"]
    for app in ("vscode", "desktop", "rootbrowse"):
        icon = page.locator(f".ink-tile[data-app={app}] img.ink-app-icon")
        wait_for(lambda: icon.evaluate("img => img.complete && img.naturalWidth > 0"), timeout=10,
                 message=f"{app} icon loaded")
    # the icon handler serves only the catalogue's icons
    r = requests.get(f"{hub.url}/hub/ink/icons/vscode", cookies={c["name"]: c["value"] for c in page.context.cookies()})
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/svg+xml" and b"<svg" in r.content
    assert requests.get(f"{hub.url}/hub/ink/icons/nosuchapp",
                        cookies={c["name"]: c["value"] for c in page.context.cookies()}).status_code == 404
    shot(page, tmp_path, "app-tiles.png")


def test_jupyterlab_launcher_offers_the_apps(browser, hub):
    """JupyterLab, the default app, from its tile; its launcher has a card for each app
    (jupyter-server-proxy's launcher entries with INK's titles)."""
    page = login(browser, hub, "alice")
    start_from_tile(page, hub, "alice", "jupyter")
    page.wait_for_selector(".jp-LauncherCard", timeout=UI_TIMEOUT)
    labels = page.locator(".jp-LauncherCard-label").all_inner_texts()
    for title in ("VS Code", "Desktop", "ROOT Browser"):  # opened in a new tab: "VS Code [↗]"
        assert any(label.split(" [")[0] == title for label in labels), labels
    running = session_processes(hub, "alice", "jupyter")
    stop_and_check_nothing_left(hub, "alice", "jupyter", running)


def open_vscode_terminal(page, attempts: int = 4) -> None:
    """Open a terminal as a user would: the command palette, "Terminal: Create New Terminal"."""
    for attempt in range(attempts):
        page.locator(".monaco-workbench .part.editor").click(position={"x": 300, "y": 300})
        page.keyboard.press("F1" if attempt % 2 == 0 else "Control+Shift+P")
        try:  # a key press the starting workbench dropped is retried after a scaled wait
            page.wait_for_selector(".quick-input-widget input", state="visible", timeout=scaled(5) * 1000)
            page.keyboard.type("Terminal: Create New Terminal", delay=10)
            # the command is the list's selected row, then Enter runs it
            page.locator(".quick-input-list .monaco-list-row.focused",
                         has_text="Create New Terminal").first.wait_for(timeout=scaled(5) * 1000)
            page.keyboard.press("Enter")
            page.wait_for_selector(".terminal-wrapper .xterm", state="visible", timeout=UI_TIMEOUT)
            return
        except Exception:  # noqa: BLE001  (the workbench may still be starting: try again)
            page.keyboard.press("Escape")
    raise AssertionError("no VS Code terminal opened")


def test_vscode_workbench_and_terminal(browser, hub, tmp_path):
    proof = Path(pwd.getpwnam("alice").pw_dir) / "vscode-terminal-proof.txt"
    proof.unlink(missing_ok=True)
    page = login(browser, hub, "alice")
    page.set_viewport_size({"width": 1280, "height": 800})
    start_from_tile(page, hub, "alice", "vscode")
    page.wait_for_selector(".monaco-workbench .part.editor", timeout=UI_TIMEOUT)
    page.wait_for_selector(".explorer-folders-view", timeout=UI_TIMEOUT)  # the home folder is open
    # a terminal runs a command as alice on the worker node
    open_vscode_terminal(page)
    wait_for(lambda: shells_at_prompt(hub, "alice", "vscode"), timeout=30,
             message="the VS Code terminal's shell at its prompt")
    for attempt in range(3):  # the same line again if the first keys were lost (idempotent)
        page.locator(".terminal-wrapper .xterm").click()
        page.keyboard.type(f"echo ran-in-vscode-$((6*7)) $(id -un) > {proof}\n", delay=10)
        try:
            wait_for(lambda: proof.exists() and proof.read_text().strip(), timeout=15,
                     message="the VS Code terminal's command ran")
            break
        except AssertionError:
            if attempt == 2:
                raise
    assert proof.read_text().split() == ["ran-in-vscode-42", "alice"]
    assert proof.stat().st_uid == pwd.getpwnam("alice").pw_uid
    shot(page, tmp_path, "vscode.png")
    running = session_processes(hub, "alice", "vscode")
    assert any("node" in comm for _, comm in running), running
    stop_and_check_nothing_left(hub, "alice", "vscode", running)
    proof.unlink(missing_ok=True)


def test_desktop_connects_shows_a_terminal_and_leaves_nothing(browser, hub, tmp_path):
    locks_before = x_lock_files("alice")
    page = login(browser, hub, "alice")
    page.set_viewport_size({"width": 1280, "height": 800})
    start_from_tile(page, hub, "alice", "desktop")
    page.wait_for_function("document.getElementById('ink-desktop-status').textContent === 'connected'",
                           timeout=UI_TIMEOUT)
    # the desktop is drawn: the xterm window (white) appears on the black root window
    page.wait_for_function("""() => {
        const c = document.querySelector('#screen canvas'); if (!c || !c.width) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let light = 0; for (let i = 0; i < d.length; i += 16) if (d[i] > 200 && d[i+1] > 200 && d[i+2] > 200) light++;
        return light > 2000; }""", timeout=UI_TIMEOUT)
    # the desktop's terminal takes keystrokes through noVNC and runs them as alice
    proof = Path(pwd.getpwnam("alice").pw_dir) / "desktop-terminal-proof.txt"
    proof.unlink(missing_ok=True)
    for attempt in range(3):  # on a loaded machine the first keys may reach xterm before its shell
        wait_for(lambda: shells_at_prompt(hub, "alice", "desktop"), timeout=30,
                 message="the desktop terminal's shell at its prompt")
        page.mouse.click(300, 250)  # into the xterm window
        page.keyboard.press("Control+U")  # a clean line
        page.keyboard.type(f"echo ran-on-the-desktop-$((6*7)) $(id -un) > {proof}", delay=20)
        page.keyboard.press("Enter")
        try:
            wait_for(lambda: proof.exists() and proof.read_text().strip(), timeout=15,
                     message="the desktop terminal's command ran")
            break
        except AssertionError:
            if attempt == 2:
                raise
    assert proof.read_text().split() == ["ran-on-the-desktop-42", "alice"]
    proof.unlink()
    page.wait_for_timeout(500)
    shot(page, tmp_path, "desktop.png")
    running = session_processes(hub, "alice", "desktop")
    names = {comm for _, comm in running}
    assert {"Xvnc", "openbox", "xterm", "dbus-daemon"} <= names, names
    assert x_lock_files("alice") - locks_before, "Xvnc holds a display lock while running"
    stop_and_check_nothing_left(hub, "alice", "desktop", running)
    assert x_lock_files("alice") == locks_before, "X lock files left behind"


def _jsroot_drawn(page, *texts: str, timeout: float = UI_TIMEOUT):
    """Wait until JSROOT's drawing (SVG) shows all these texts (title, stats box values)."""
    page.wait_for_function(
        "(ts) => { const all = [...document.querySelectorAll('#ink-jsroot svg text')].map(e => e.textContent);"
        " return ts.every(t => all.some(a => a.replace(/\\s+/g, ' ').includes(t))); }",
        arg=list(texts), timeout=timeout)


def _tree_item(page, name: str):
    return page.locator("#ink-jsroot .h_item").filter(has_text=re.compile(rf"^{re.escape(name)}$"))


def test_rootbrowse_draws_root_and_uproot_files(browser, hub, root_files, tmp_path):
    page = login(browser, hub, "alice")
    page.set_viewport_size({"width": 1280, "height": 800})
    start_from_tile(page, hub, "alice", "rootbrowse")
    page.wait_for_selector("body[data-ready='1']", timeout=UI_TIMEOUT)
    page.click(f"#ink-files li.ink-dir:text-is('{DATA_DIR}')")
    page.wait_for_selector("#ink-files li.ink-root[data-path$='hepdata.root']")
    names = page.locator("#ink-files li").all_inner_texts()
    assert "notes.txt" not in names and "uproot-tree.root" in names  # only ROOT files are offered
    # a histogram from a file written by ROOT
    page.click("#ink-files li.ink-root[data-path$='hepdata.root']")
    _tree_item(page, "hpx;1").dblclick()
    _jsroot_drawn(page, "This is the px distribution", "Entries", "75000")
    # a histogram and a TTree branch from a file written by uproot
    page.click("#ink-files li.ink-root[data-path$='uproot-tree.root']")
    _tree_item(page, "mass;1").dblclick()
    _jsroot_drawn(page, "Entries", "20000")
    if not _tree_item(page, "px").count():
        _tree_item(page, "events;1").click()
    _tree_item(page, "px").dblclick()
    _jsroot_drawn(page, "drawing branch px from events", "Entries", "5000")
    page.wait_for_timeout(500)
    shot(page, tmp_path, "rootbrowse.png")
    running = session_processes(hub, "alice", "rootbrowse")
    stop_and_check_nothing_left(hub, "alice", "rootbrowse", running)


# ---- security -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def running_apps(hub, root_files):
    """vscode, desktop and rootbrowse of alice running, each app process started once."""
    token = hub.user_token("alice")
    headers = {"Authorization": f"token {token}"}
    for app in ("vscode", "desktop", "rootbrowse"):
        if not (hub.server("alice", app) or {}).get("ready"):
            hub.start_and_wait("alice", app, {})
    for path in ("vscode/vscode/", "rootbrowse/rootbrowse/"):
        wait_for(lambda: requests.get(f"{hub.url}/user/alice/{path}", headers=headers,
                                      allow_redirects=False, timeout=30).status_code in (200, 302),
                 timeout=90, message=f"{path} answers")
    _vnc_banner(hub, token)  # starts the desktop's Xvnc
    yield token
    for app in ("vscode", "desktop", "rootbrowse"):
        if hub.server("alice", app):
            hub.stop_server("alice", app)


def _vnc_banner(hub, token: str | None, headers: dict | None = None, origin: str | None = None) -> bytes:
    import websocket

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{hub.port}/user/alice/desktop/desktop-vnc/",
        header=[f"Authorization: token {token}"] if token else [], timeout=60,
        **({"cookie": "; ".join(f"{k}={v}" for k, v in headers.items())} if headers else {}),
        **({"origin": origin} if origin else {}))
    try:
        return ws.recv()
    finally:
        ws.close()


def test_app_sockets_are_private_and_owned_by_the_user(hub, running_apps):
    alice = pwd.getpwnam("alice").pw_uid
    sockets = []
    for pid, _ in sum((session_processes(hub, "alice", a) for a in ("vscode", "desktop", "rootbrowse")), []):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in cmdline:
            if arg.endswith(b"/socket") and b"jupyter-server-proxy-" in arg:
                sockets.append(arg.decode())
    sockets = sorted(set(sockets))
    assert len(sockets) == 3, sockets  # code-server, Xvnc, the JSROOT page server
    for path in sockets:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == alice
        assert stat.S_IMODE(st.st_mode) == 0o600, f"{path} is {oct(stat.S_IMODE(st.st_mode))}"
        parent = os.stat(os.path.dirname(path))
        assert parent.st_uid == alice and stat.S_IMODE(parent.st_mode) == 0o700
        # in the session's private TMPDIR, which goes away with the session
        assert re.match(r".*/ink-session-[^/]+/jupyter-server-proxy-[^/]+/socket$", path), path
    # another user cannot connect to them
    r = subprocess.run(["/usr/sbin/runuser", "-u", "bob", "--", "/usr/bin/python3", "-c",
                        "import socket, sys\nfor p in sys.argv[1:]:\n"
                        "    s = socket.socket(socket.AF_UNIX)\n"
                        "    try:\n        s.connect(p); print('CONNECTED', p)\n"
                        "    except OSError as e:\n        print('refused', e.errno)\n",
                        *sockets], capture_output=True, text=True)
    assert "CONNECTED" not in r.stdout and r.stdout.count("refused") == 3, r.stdout + r.stderr


def test_no_app_listens_on_tcp(hub, running_apps):
    """The only TCP listeners of the sessions are their jupyter-servers (one per session)."""
    pids = {pid: comm for a in ("vscode", "desktop", "rootbrowse") for pid, comm in session_processes(hub, "alice", a)}
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    listeners = []
    for line in out.splitlines():
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                listeners.append((pids[pid], Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()))
    assert len(listeners) == 3, listeners
    # the servers themselves (jupyterhub-singleuser, or INK's ink-singleuser wrapper of it)
    assert all(re.search(r"/(jupyterhub|ink)-singleuser\b", cmd) for _, cmd in listeners), listeners


def test_another_users_token_is_refused(hub, running_apps):
    bob = {"Authorization": f"token {hub.user_token('bob')}"}
    alice = {"Authorization": f"token {running_apps}"}
    for path in ("vscode/vscode/", "desktop/desktop/", "rootbrowse/rootbrowse/",
                 f"rootbrowse/files/{DATA_DIR}/hepdata.root", f"rootbrowse/api/contents/{DATA_DIR}"):
        url = f"{hub.url}/user/alice/{path}"
        assert requests.get(url, headers=alice, timeout=30).status_code == 200, path
        r = requests.get(url, headers=bob, allow_redirects=False, timeout=30)
        assert r.status_code == 403, (path, r.status_code)
    import websocket

    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        _vnc_banner(hub, bob["Authorization"].split()[1])
    assert e.value.status_code == 403


def test_public_assets_are_library_code_only(hub, running_apps):
    """/ink-apps/static/ (noVNC, JSROOT, page scripts) needs no login, like jupyter-server's
    /static/: it serves only the package's asset files, never a listing or a user file."""
    base = f"{hub.url}/user/alice/rootbrowse/ink-apps/static"
    r = requests.get(f"{base}/novnc/core/rfb.js", timeout=30)
    assert r.status_code == 200 and "RFB" in r.text
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(f"{base}/jsroot/modules/gui.mjs", timeout=30).status_code == 200
    assert requests.get(f"{base}/", timeout=30).status_code in (403, 404)
    for sneaky in ("..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", f"..%2F..%2F..%2F..%2Fhome%2Falice%2F{DATA_DIR}%2Fnotes.txt"):
        r = requests.get(f"{base}/{sneaky}", timeout=30)
        assert r.status_code in (403, 404) and "root:" not in r.text and "not a ROOT" not in r.text, sneaky
    # the pages that show user data stay behind the login
    for page in ("desktop/desktop/", "rootbrowse/rootbrowse/"):
        r = requests.get(f"{hub.url}/user/alice/{page}", allow_redirects=False, timeout=30)
        assert r.status_code == 302 and "/hub/" in r.headers["Location"], page


def test_unauthenticated_desktop_websocket_is_refused(hub, running_apps):
    import websocket

    assert _vnc_banner(hub, running_apps).startswith(b"RFB 003.")  # alice gets the RFB banner
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        _vnc_banner(hub, None)
    assert e.value.status_code in (302, 403)
    # a forged cookie is no better
    with pytest.raises(websocket.WebSocketBadStatusException):
        _vnc_banner(hub, None, {"jupyterhub-user-alice-desktop": "forged"})



def test_desktop_websocket_refuses_another_sites_page(browser, hub, running_apps):
    """alice's browser cookies open the desktop's websocket from the session's own page, not
    from a page of another site (cross-site websocket hijacking)."""
    import websocket

    page = login(browser, hub, "alice")
    page.goto(f"{hub.url}/user/alice/desktop/desktop/")
    page.wait_for_function("document.getElementById('ink-desktop-status').textContent === 'connected'",
                           timeout=UI_TIMEOUT)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert "jupyterhub-user-alice-desktop" in cookies
    assert _vnc_banner(hub, None, cookies, origin=hub.url).startswith(b"RFB 003.")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        _vnc_banner(hub, None, cookies, origin="http://evil.example")
    assert e.value.status_code == 403


def test_root_files_are_read_with_range_requests(hub, running_apps, root_files):
    """JSROOT reads only what it draws: /files/ answers Range requests with 206."""
    headers = {"Authorization": f"token {running_apps}", "Range": "bytes=0-3"}
    r = requests.get(f"{hub.url}/user/alice/rootbrowse/files/{DATA_DIR}/hepdata.root", headers=headers, timeout=30)
    assert r.status_code == 206 and r.content == b"root"
    size = (root_files / "hepdata.root").stat().st_size
    assert r.headers["Content-Range"] == f"bytes 0-3/{size}"
    # path traversal out of the user's tree is refused
    r = requests.get(f"{hub.url}/user/alice/rootbrowse/files/..%2F..%2Fetc%2Fpasswd",
                     headers={"Authorization": headers["Authorization"]}, timeout=30)
    assert r.status_code in (403, 404)


def test_no_secret_in_logged_urls(browser, hub, running_apps):
    """Logging in and using the apps leaves no token or cookie value in the hub's or the jobs' logs."""
    page = login(browser, hub, "alice")
    page.goto(f"{hub.url}/user/alice/rootbrowse/rootbrowse/")
    page.wait_for_selector("body[data-ready='1']", timeout=UI_TIMEOUT)
    page.goto(f"{hub.url}/user/alice/desktop/desktop/")
    page.wait_for_function("document.getElementById('ink-desktop-status').textContent === 'connected'",
                           timeout=UI_TIMEOUT)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    # credentials: the hub's and the servers' login cookies, and alice's API token
    credentials = {v for k, v in cookies.items() if k == "jupyterhub-hub-login" or k.startswith("jupyterhub-user-")}
    credentials.add(running_apps)
    assert len(credentials) >= 3, sorted(cookies)
    # any cookie value (session id, xsrf) must at least never be part of a URL
    cookie_values = {v for v in cookies.values() if len(v) >= 16}
    logs = {"hub.log": hub.log_text()}
    log_dir = Path(pwd.getpwnam("alice").pw_dir) / ".ink" / "logs"
    for app in ("vscode", "desktop", "rootbrowse"):
        output = (hub.spawner_state("alice", app) or {}).get("job_output")
        if output and os.path.exists(output):
            logs[output] = Path(output).read_text(errors="replace")
    assert len(logs) == 4, sorted(logs)
    assert str(log_dir) in " ".join(logs)
    for name, text in logs.items():
        for secret in credentials:
            assert secret not in text, f"a credential appears in {name}"
        urls = re.findall(r"/[^\s'\"]*\?[^\s'\"]*", text)
        assert urls, f"no logged URL with a query in {name}?"
        for url in urls:
            assert not any(v in url for v in cookie_values), f"a cookie value in a logged URL in {name}: {url}"
            assert not re.search(r"[?&](token|access_token|_xsrf|code)=(?!\[secret\]|\.\.\.)[^&]", url), \
                f"an unmasked secret parameter in a logged URL in {name}: {url}"
