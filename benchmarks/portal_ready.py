"""From the user's click on Files or EShell to a usable page, in real Chromium.

A real hub (local backend for the portal, as every site runs it) and a logged-in user on the
INK panel. Each round starts with the portal server stopped (the worst case: the user's first
click of the day, or after the idle timeout): click the tile, and stop the clock when

- Files: the file list of the home directory is on screen;
- EShell: the shell's prompt is in the terminal (the shell has printed and waits for input).

Median of 3 rounds each; a warm click (portal already running) is shown too.

    .venv/bin/python benchmarks/portal_ready.py [--rounds 3]

LAST line: ``RESULT portal_ready_s files=<s> shell=<s>`` (target: both <= 3 s here).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import Hub, ensure_unix_users  # noqa: E402

CATALOGUE = """
site: {name: INK portal benchmark}
experiments:
  default: {title: Everyone, members: {everyone: true}, apps: [jupyter, portal]}
"""
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROMPT = ("() => { const t = window.inkTerminal; if (!t) return false; const b = t.buffer.active;"
          " for (let i = 0; i < b.length; i++) { const l = b.getLine(i).translateToString(true).trimEnd();"
          " if (/[$#%>] ?$/.test(l)) return true; } return false; }")


def click_to_ready(page, hub, tile: str, ready) -> float:
    page.goto(f"{hub.url}/hub/ink")
    page.wait_for_selector(tile)
    start = time.perf_counter()
    page.click(tile)
    ready(page)
    return time.perf_counter() - start


def files_ready(page):
    page.wait_for_function("() => { const c = document.querySelector('#ink-count');"
                           " return c && /entries/.test(c.textContent); }", timeout=60_000)


def shell_ready(page):
    page.wait_for_function(PROMPT, timeout=60_000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_unix_users(("alice",))
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="ink-portal-bench-"))
    hub = Hub(workdir, backend="local", catalogue=CATALOGUE).start()
    results = {"files": [], "shell": []}
    warm = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=ARGS, headless=True)
            page = browser.new_page()
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", "alice")
            page.fill("#password_input", "test-password")
            page.click("#login_submit")
            page.wait_for_url("**/hub/ink")
            for kind, tile, ready in (("files", "#ink-service-files", files_ready),
                                      ("shell", "#ink-service-eshell", shell_ready)):
                for i in range(args.rounds):
                    if (hub.server("alice", "portal") or {}).get("ready"):
                        hub.stop_server("alice", "portal")
                    elapsed = click_to_ready(page, hub, tile, ready)
                    results[kind].append(elapsed)
                    print(f"{kind} round {i + 1}: {elapsed:.2f} s (portal stopped before the click)", flush=True)
                warm[kind] = click_to_ready(page, hub, tile, ready)
                print(f"{kind} with the portal already running: {warm[kind]:.2f} s", flush=True)
            browser.close()
    finally:
        for name in list(hub.user_model("alice").get("servers", {})):
            hub.api("DELETE", f"/users/alice/servers/{name}")
        hub.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    files, shell = statistics.median(results["files"]), statistics.median(results["shell"])
    print(f"RESULT portal_ready_s files={files:.2f} shell={shell:.2f}")


if __name__ == "__main__":
    main()
