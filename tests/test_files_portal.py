"""The file manager through the real hub: the Files tile starts the portal server, the page works
in headless Chromium (upload, previews, share to another user, delete), and share links go
through the hub's relay to users who cannot reach the owner's server."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from .conftest import UI_TIMEOUT, scaled
from .test_browser_pages import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.hub]

CATALOGUE = """
site: {name: INK Files Test, anonymous_shares: true,
       storage_roots: [{name: Scratch, path: /tmp/ink-scratch-test}]}
apps:
  portal: {idle_timeout: "0:10:00"}
experiments:
  default: {title: Everyone, members: {everyone: true}, apps: [jupyter, portal]}
"""


def tiny_pdf(text: str) -> bytes:
    """A valid one-page PDF with a line of text (offsets computed, so pdf.js accepts it)."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def sample_files(directory: Path) -> dict[str, Path]:
    import numpy as np
    from astropy.io import fits

    from ink_files_ext.files.fits import _png_gray

    directory.mkdir(parents=True)
    files = {
        "plot.png": _png_gray(np.tile(np.arange(0, 256, 2, dtype="uint8"), (64, 1))),
        "fit.py": b"def chi2(x):\n    return sum(v * v for v in x)  # least squares\n",
        "notes.pdf": tiny_pdf("INK preview"),
        '<img src=x onerror="window.inkXss=1">.txt': b"not html\n",
    }
    buf = io.BytesIO()
    fits.PrimaryHDU(np.random.default_rng(0).normal(10, 1, (64, 64)).astype("float32")).writeto(buf)
    files["sky.fits"] = buf.getvalue()
    paths = {}
    for name, data in files.items():
        (directory / name).write_bytes(data)
        paths[name] = directory / name
    return paths


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users):
    from .harness import Hub

    os.makedirs("/tmp/ink-scratch-test", mode=0o777, exist_ok=True)
    os.chmod("/tmp/ink-scratch-test", 0o1777)
    h = Hub(tmp_path_factory.mktemp("files"), backend="local", catalogue=CATALOGUE).start()
    yield h
    for user in ("alice", "bob"):
        for name in list(h.user_model(user).get("servers", {})):
            h.api("DELETE", f"/users/{user}/servers/{name}")
    h.stop()
    shutil.rmtree("/tmp/ink-scratch-test", ignore_errors=True)


@pytest.fixture
def workdir():
    """A folder in alice's real home (the portal's file manager starts there)."""
    path = Path("/home/alice") / f"ink-files-test-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def goto_dir(page, path: Path):
    page.fill("#ink-address", str(path))
    page.press("#ink-address", "Enter")
    page.wait_for_function("(p) => window.inkFiles && window.inkFiles.state.path === p", arg=str(path))


def entry(page, name: str):
    return page.locator("#ink-table a.entry", has_text=name)


def test_files_page_upload_preview_share_delete(browser, hub, workdir, tmp_path):
    staged = sample_files(tmp_path / "staged")
    alice = login(browser, hub, "alice")
    alice.click("#ink-service-files")  # starts the portal server on the way
    alice.wait_for_url("**/user/alice/portal/ink/files**", timeout=UI_TIMEOUT)
    alice.wait_for_selector("#ink-table tbody tr", timeout=UI_TIMEOUT)
    assert hub.spawner_state("alice", "portal")["backend"] == "local"
    # the side list shows home and the site's storage root
    assert [t.strip() for t in alice.locator("#ink-roots a[data-path]").all_inner_texts()] == ["Home", "Scratch"]
    # new folder (the name comes from a prompt), then into it
    alice.once("dialog", lambda d: d.accept(workdir.name))
    alice.click("[data-action=mkdir]")
    entry(alice, workdir.name).wait_for()
    assert workdir.is_dir() and workdir.stat().st_uid == 1001  # made by alice's own server
    entry(alice, workdir.name).click()
    alice.wait_for_function("(p) => window.inkFiles.state.path === p", arg=str(workdir))
    # upload several files at once (chunked uploads with progress)
    alice.set_input_files("#ink-upload-input", [str(p) for p in staged.values()])
    alice.wait_for_function("document.querySelectorAll('.ink-upload.done').length === 5", timeout=UI_TIMEOUT)
    for name, path in staged.items():
        assert (workdir / name).read_bytes() == path.read_bytes(), name
        entry(alice, name).wait_for()
    # a file name with markup is only text: no image element, no script ran
    assert alice.evaluate("window.inkXss") is None
    assert alice.locator("#ink-table img").count() == 0
    # previews
    entry(alice, "plot.png").click()
    alice.wait_for_function("() => { const i = document.querySelector('#ink-preview-body img');"
                            " return i && i.complete && i.naturalWidth === 128; }")
    shot(alice, tmp_path, "files-preview.png")
    alice.click("#ink-preview button")
    entry(alice, "fit.py").click()
    alice.wait_for_selector("#ink-preview-body code.hljs .hljs-keyword")
    assert "least squares" in alice.inner_text("#ink-preview-body")
    alice.click("#ink-preview button")
    entry(alice, "notes.pdf").click()
    alice.wait_for_selector("#ink-preview-body[data-rendered='1'] canvas[data-page='1']", timeout=UI_TIMEOUT)
    inked = alice.evaluate("""() => { const c = document.querySelector('#ink-preview-body canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++; return n; }""")
    assert inked > 100  # the text was drawn, not just a blank page
    alice.click("#ink-preview button")
    entry(alice, "sky.fits").click()
    alice.wait_for_selector("#ink-preview-body img.fits-image")
    assert "NAXIS1  =                   64" in alice.inner_text("#ink-preview-body .fits-header")
    alice.click("#ink-preview button")
    shot(alice, tmp_path, "files.png")

    # share the folder read-only; bob (logged in) opens it through the hub
    alice.goto(f"{hub.url}/user/alice/portal/ink/files?path={workdir.parent}")
    entry(alice, workdir.name).wait_for()
    alice.locator(f"#ink-table tr[data-path='{workdir}'] input[type=checkbox]").check()
    alice.click("[data-action=share]")
    alice.click("#ink-share-create")
    alice.wait_for_function("document.querySelector('#ink-share-url').value.startsWith('http')")
    link = alice.input_value("#ink-share-url")
    alice.click("#ink-share-form button:has-text('Close')")
    assert "/hub/ink/share/alice/" in link
    bob = login(browser, hub, "bob")
    bob.goto(link)
    assert bob.inner_text("#ink-share-owner") == "alice"
    assert bob.locator("#ink-share-listing a", has_text="fit.py").count() == 1
    with bob.expect_download() as download:
        bob.evaluate("(href) => { const a = document.createElement('a'); a.href = href; a.download = '';"
                     " document.body.append(a); a.click(); }",
                     bob.locator("#ink-share-listing a", has_text="fit.py").get_attribute("href"))
    assert Path(download.value.path()).read_bytes() == staged["fit.py"].read_bytes()
    # a forged link (wrong signature) is refused with a clear page
    forged = link.rsplit(".", 1)[0] + "." + "0" * 32 + "/"
    response = bob.goto(forged)
    assert response.status == 403 and "not a valid share link" in bob.inner_text("body")
    # bob still cannot reach alice's server itself
    r = requests.get(f"{hub.url}/user/alice/portal/ink/api/files/list",
                     headers={"Authorization": f"token {hub.user_token('bob')}"}, allow_redirects=False, timeout=10)
    assert r.status_code in (302, 401, 403) and "entries" not in r.text
    # the share is not anonymous: a visitor without login is sent to log in
    r = requests.get(link, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/hub/login" in r.headers["Location"]
    # alice revokes it: bob's next request fails at once
    share_id = link.split("/share/alice/")[1].split(".")[0]
    alice.click("#ink-my-shares")
    alice.wait_for_selector(f"#ink-shares-table tr[data-id='{share_id}']")
    alice.click(f"#ink-shares-table tr[data-id='{share_id}'] button:has-text('Revoke')")
    alice.wait_for_selector(f"#ink-shares-table tr[data-id='{share_id}']", state="detached")
    alice.click("#ink-shares button:has-text('Close')")
    response = bob.goto(link)
    assert response.status == 410
    # delete with confirmation
    alice.goto(f"{hub.url}/user/alice/portal/ink/files?path={workdir}")
    entry(alice, "fit.py").wait_for()
    alice.locator(f"#ink-table tr[data-path='{workdir / 'fit.py'}'] input[type=checkbox]").check()
    alice.once("dialog", lambda d: d.accept())
    alice.click("[data-action=delete]")
    alice.wait_for_function("() => !document.querySelector(`#ink-table a.entry[data-path$='/fit.py']`)")
    assert not (workdir / "fit.py").exists()


def test_share_relay_trusts_nothing_from_the_owner_server(hub, workdir):
    """Files come to the visitor as downloads with a sandbox CSP, whatever their type; an
    anonymous share works without login only because the site and the owner allowed it; the
    relay honours Range."""
    workdir.mkdir()
    (workdir / "page.html").write_text("<script>alert(document.cookie)</script>")
    data = os.urandom(20 * 1024 * 1024 + 5)  # more than one relay chunk
    (workdir / "big.bin").write_bytes(data)
    subprocess.run(["chown", "-R", "alice:", str(workdir)], check=True)
    token = hub.user_token("alice")
    base = f"{hub.url}/user/alice/portal/"
    if not (hub.server("alice", "portal") or {}).get("ready"):
        hub.start_and_wait("alice", "portal")
    r = requests.post(base + "ink/api/shares", json={"path": str(workdir), "anonymous": True},
                      headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 201, r.text
    r_share = r.json()
    link = hub.url + r_share["url"]
    page = requests.get(link + "page.html", timeout=30)  # anonymous visitor
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "application/octet-stream"
    assert page.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in page.headers
    assert requests.get(link + "big.bin", timeout=60).content == data
    # names with '#', '?', '%' and spaces reach the owner's server as names, not URL syntax
    from urllib.parse import quote

    odd = "run #1 ?50% done.txt"
    subprocess.run(["runuser", "-u", "alice", "--", "sh", "-c", f"echo odd > '{workdir / odd}'"], check=True)
    assert requests.get(link + quote(odd), timeout=30).text == "odd\n"
    r = requests.get(link + "..%2Fsecret", timeout=30)
    assert r.status_code in (400, 403, 404), (r.status_code, r.text[:300])
    part = requests.get(link + "big.bin", headers={"Range": "bytes=9000000-9000009"}, timeout=30)
    assert part.status_code == 206 and part.content == data[9000000:9000010]
    # forged or expired links are refused by the hub itself: nothing is started for them
    hub.stop_server("alice", "portal")
    forged = f"{hub.url}/hub/ink/share/alice/AAAAAAAAAAAAAAAA.9999999999.{'0' * 32}/"
    r = requests.get(forged, allow_redirects=False, timeout=30)
    assert r.status_code == 403 and "not a valid share link" in r.text
    share_id, _, signature = r_share["token"].split(".")
    expired = f"{hub.url}/hub/ink/share/alice/{share_id}.1000000000.{signature}/"
    assert requests.get(expired, allow_redirects=False, timeout=30).status_code in (403, 410)
    assert not (hub.server("alice", "portal") or {}).get("ready")
    # the owner's server token never reaches the visitor
    assert token not in page.text and "token" not in " ".join(page.headers.values()).lower()


def shell_lines(page) -> list[str]:
    return page.evaluate("() => { const b = window.inkTerminal.buffer.active; const out = [];"
                         " for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true).trim());"
                         " return out; }")


def wait_shell(page, predicate, timeout: float = 15) -> list[str]:
    """Poll the shell's buffer until ``predicate`` holds; ``timeout`` is scaled by TIMEOUT_SCALE."""
    import time

    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        lines = shell_lines(page)
        if predicate(lines):
            return lines
        time.sleep(0.1)
    raise AssertionError("terminal never showed it:\n" + "\n".join(shell_lines(page)[-15:]))


def test_eshell_tabs_each_have_their_own_shell_and_tmux_outlives_its_tab(browser, hub):
    import re
    import time

    alice = login(browser, hub, "alice")
    alice.click("#ink-service-eshell")
    alice.wait_for_url("**/user/alice/portal/ink/shell", timeout=UI_TIMEOUT)
    alice.wait_for_selector("#ink-status:has-text('connected')", timeout=UI_TIMEOUT)
    alice.locator("#ink-terminal").click()
    alice.keyboard.type("echo pid=$$")
    alice.keyboard.press("Enter")
    first_pid = int(re.search(r"^pid=(\d+)$", "\n".join(wait_shell(alice, lambda ls: any(re.match(r"^pid=\d+$", l) for l in ls))), re.M).group(1))
    # a second tab is a second shell
    alice.click("#ink-new-tab")
    alice.wait_for_function("window.inkShell.tabs().length === 2 && window.inkShell.tabs()[1].state === 'connected'")
    alice.keyboard.type("echo pid=$$; tmux new -s ink-tab-test")
    alice.keyboard.press("Enter")
    lines = wait_shell(alice, lambda ls: any("[ink-tab-t" in l for l in ls))  # tmux's status line
    assert f"pid={first_pid}" not in lines  # tab 2 shows its own buffer
    names = [t["name"] for t in alice.evaluate("window.inkShell.tabs()")]
    token = hub.user_token("alice")
    listed = lambda: {t["name"] for t in requests.get(f"{hub.url}/user/alice/portal/api/terminals",  # noqa: E731
                                                      headers={"Authorization": f"token {token}"}, timeout=10).json()}
    assert set(names) <= listed()
    # closing tab 1 ends its shell
    alice.click(".ink-tab:nth-child(1) .ink-tab-close")
    deadline = time.monotonic() + scaled(10)
    while os.path.exists(f"/proc/{first_pid}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{first_pid}") and names[0] not in listed()
    # closing tab 2 ends its shell, but the tmux session inside it lives on
    alice.click(".ink-tab:nth-child(1) .ink-tab-close")
    deadline = time.monotonic() + scaled(10)
    while names[1] in listed() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert names[1] not in listed()
    alive = subprocess.run(["runuser", "-u", "alice", "--", "tmux", "has-session", "-t", "ink-tab-test"])
    assert alive.returncode == 0, "tmux should outlive the tab"
    subprocess.run(["runuser", "-u", "alice", "--", "tmux", "kill-session", "-t", "ink-tab-test"])


def test_drag_and_drop_upload(browser, hub, workdir):
    subprocess.run(["runuser", "-u", "alice", "--", "mkdir", str(workdir)], check=True)
    alice = login(browser, hub, "alice")
    if not (hub.server("alice", "portal") or {}).get("ready"):
        hub.start_and_wait("alice", "portal")
    alice.goto(f"{hub.url}/user/alice/portal/ink/files?path={workdir}")
    alice.wait_for_function("(p) => window.inkFiles && window.inkFiles.state.path === p", arg=str(workdir))
    # what the browser does when files are dropped from the desktop onto the list
    alice.evaluate("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(["dropped " + "x".repeat(100)], "dropped.txt", {type: "text/plain"}));
        const zone = document.querySelector('#ink-drop');
        zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""")
    entry(alice, "dropped.txt").wait_for()
    assert (workdir / "dropped.txt").read_text() == "dropped " + "x" * 100
    assert (workdir / "dropped.txt").stat().st_uid == 1001


def test_root_file_preview_draws_a_histogram(browser, hub, workdir, tmp_path):
    """A ROOT file written by ROOT (scikit-hep-testdata) opens in the preview: JSROOT (the ROOT
    browser's copy) reads it through the download endpoint and draws its first histogram."""
    import skhep_testdata

    subprocess.run(["runuser", "-u", "alice", "--", "mkdir", str(workdir)], check=True)
    shutil.copy(skhep_testdata.data_path("uproot-hepdata-example.root"), workdir / "hepdata.root")
    subprocess.run(["chown", "alice:", str(workdir / "hepdata.root")], check=True)
    alice = login(browser, hub, "alice")
    if not (hub.server("alice", "portal") or {}).get("ready"):
        hub.start_and_wait("alice", "portal")
    alice.set_viewport_size({"width": 1280, "height": 900})
    alice.goto(f"{hub.url}/user/alice/portal/ink/files?path={workdir}")
    entry(alice, "hepdata.root").click()
    frame = alice.frame_locator("#ink-preview-body iframe.jsroot")
    frame.locator("body[data-ready='1']").wait_for(timeout=UI_TIMEOUT, state="attached")
    assert frame.locator("#ink-root-keys li[data-name='hpx;1']").count() == 1
    frame.locator("svg text", has_text="This is the px distribution").first.wait_for(timeout=UI_TIMEOUT)
    assert frame.locator("svg text", has_text="75000").count() >= 1  # the stats box: entries
    shot(alice, tmp_path, "files-root-preview.png")


def test_file_type_icons_are_svg_and_render_without_emoji_fonts(browser, hub, workdir, tmp_path):
    """Each row's icon is an SVG symbol shipped with the file manager (issue 20: emoji glyphs
    showed as missing-glyph boxes where no emoji font is installed). The icon is drawn (its
    symbol resolved, not an empty box), and the name cell holds only the name."""
    subprocess.run(["runuser", "-u", "alice", "--", "mkdir", "-p", str(workdir / "folder")], check=True)
    kinds = {"folder": "folder", "notes.txt": "text", "fit.py": "code", "plot.png": "image",
             "paper.pdf": "pdf", "sky.fits": "fits", "run.root": "root", "data.tar.gz": "archive",
             "blob.bin": "file", "alias": "link"}
    for name in kinds:
        if name not in ("folder", "alias"):
            subprocess.run(["runuser", "-u", "alice", "--", "touch", str(workdir / name)], check=True)
    subprocess.run(["runuser", "-u", "alice", "--", "ln", "-s", "notes.txt", str(workdir / "alias")], check=True)
    alice = login(browser, hub, "alice")
    if not (hub.server("alice", "portal") or {}).get("ready"):
        hub.start_and_wait("alice", "portal")
    alice.set_viewport_size({"width": 1100, "height": 700})
    alice.goto(f"{hub.url}/user/alice/portal/ink/files?path={workdir}")
    entry(alice, "blob.bin").wait_for()
    for name, icon in kinds.items():
        link = entry(alice, name)
        assert link.locator("svg.icon").get_attribute("data-icon") == icon, name
        assert link.inner_text().strip() == name, "no glyph next to the name"
    # every symbol resolved from the shipped sprite: the <use> has a drawn box
    alice.wait_for_function("""() => [...document.querySelectorAll('#ink-table svg.icon use')]
        .every(u => { const b = u.getBBox(); return b.width > 4 && b.height > 4; })""", timeout=UI_TIMEOUT)
    sprite = requests.get(f"{hub.url}/user/alice/portal/static/ink_files_ext/ink_icons.svg",
                          headers={"Authorization": f"token {hub.user_token('alice')}"}, timeout=30)
    assert sprite.status_code == 200 and sprite.headers["Content-Type"].startswith("image/svg+xml")
    assert set(kinds.values()) <= set(re.findall(r'<symbol id="([a-z]+)"', sprite.text))
    shot(alice, tmp_path, "files-icons.png")


def test_fits_files_astropy_ships_preview_in_the_browser(browser, hub, workdir, tmp_path):
    """HST's raw frame (BZERO/BSCALE, issue 20) shows its HDU list, header and picture; a
    table HDU chosen in the list shows its columns; a damaged file says what and why."""
    import astropy

    data = Path(astropy.__file__).parent / "io" / "fits" / "tests" / "data"
    subprocess.run(["runuser", "-u", "alice", "--", "mkdir", str(workdir)], check=True)
    for name in ("o4sp040b0_raw.fits", "tb.fits"):
        shutil.copy(data / name, workdir / name)
    (workdir / "cut.fits").write_bytes((data / "test0.fits").read_bytes()[:2880 * 3])
    subprocess.run(["chown", "-R", "alice:", str(workdir)], check=True)
    alice = login(browser, hub, "alice")
    if not (hub.server("alice", "portal") or {}).get("ready"):
        hub.start_and_wait("alice", "portal")
    alice.set_viewport_size({"width": 1280, "height": 900})
    alice.goto(f"{hub.url}/user/alice/portal/ink/files?path={workdir}")
    entry(alice, "o4sp040b0_raw.fits").click()
    alice.wait_for_function("() => { const i = document.querySelector('#ink-preview-body img.fits-image');"
                            " return i && i.complete && i.naturalWidth === 62; }", timeout=UI_TIMEOUT)
    assert alice.locator("#ink-preview-body .fits-hdus li").count() == 7
    assert "BZERO   =                32768" in alice.inner_text("#ink-preview-body .fits-header")
    shot(alice, tmp_path, "files-fits-preview.png")
    alice.click("#ink-preview button")
    entry(alice, "tb.fits").click()
    alice.wait_for_selector("#ink-preview-body table.fits-columns")
    columns = alice.locator("#ink-preview-body table.fits-columns tbody td:first-child").all_inner_texts()
    assert columns == ["c1", "c2", "c3", "c4"]
    alice.click("#ink-preview-body .fits-hdus li[data-hdu='0'] a")  # the primary HDU, from the list
    alice.wait_for_selector("#ink-preview-body .fits-hdus li.current[data-hdu='0']")
    alice.click("#ink-preview button")
    entry(alice, "cut.fits").click()
    alice.wait_for_selector("#ink-preview-body .error")
    text = alice.inner_text("#ink-preview-body")
    assert "Unhandled" not in text, text
    assert text.startswith("Cannot preview cut.fits: not a readable FITS file (Header missing END card"), text


def test_services_tiles_ask_the_hub_first_no_400_in_the_console(browser, hub):
    """Files and EShell while the portal runs: no 'already running' 400 (issue 20), in the
    console or on the wire; the tile still opens the page."""
    if not (hub.server("alice", "portal") or {}).get("ready"):
        hub.start_and_wait("alice", "portal")
    alice = login(browser, hub, "alice")
    problems = []
    alice.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    alice.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    for tile, page in (("files", "ink/files"), ("eshell", "ink/shell")):
        alice.goto(f"{hub.url}/hub/ink")
        alice.click(f"#ink-service-{tile}")
        alice.wait_for_url(f"**/user/alice/portal/{page}**", timeout=UI_TIMEOUT)
    assert not problems, problems
