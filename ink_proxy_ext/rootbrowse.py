"""The ROOT browser: JSROOT with a picker over the user's files, behind ``/rootbrowse/``.

``python -m ink_proxy_ext.rootbrowse --socket PATH`` serves the page on a 0600 unix socket, behind
the session's login; the page loads JSROOT (npm ``jsroot``, pinned, copied into ``static/jsroot``
by scripts/build-assets) and its own script from ``/ink-apps/static/`` (see
:mod:`ink_proxy_ext.extension` for why that is public). The page reads the user's tree through jupyter-server's contents API and opens ROOT
files through its authenticated ``/files/`` handler, which answers HTTP Range requests, so JSROOT
reads only the baskets it draws instead of whole files. Both are on the same origin, under the
session's prefix, behind the hub's login; this process never reads a user file itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from .apps import APPS, STATIC

APP = APPS["rootbrowse"]
PAGE_DIR = STATIC / "rootbrowse"
JSROOT_DIR = STATIC / "jsroot"


def setup_rootbrowse() -> dict:
    """jupyter-server-proxy entry (``jupyter_serverproxy_servers: rootbrowse``)."""
    return {
        "command": [sys.executable, "-m", "ink_proxy_ext.rootbrowse", "--socket", "{unix_socket}"],
        "unix_socket": True,
        "timeout": 20,
        "new_browser_tab": True,
        "launcher_entry": {"title": APP.title, "icon_path": APP.icon_path, "category": "Notebook"},
    }


def make_app():
    from tornado import web

    class Static(web.StaticFileHandler):
        def set_extra_headers(self, path):
            # the page's own files change with an upgrade: revalidate instead of caching for long
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Content-Type-Options", "nosniff")

    if not (JSROOT_DIR / "modules" / "gui.mjs").exists():
        raise RuntimeError(f"JSROOT is missing from {JSROOT_DIR} (run scripts/build-assets)")
    return web.Application([
        (r"/()", Static, {"path": str(PAGE_DIR), "default_filename": "index.html"}),
    ])


async def serve(socket_path: str) -> None:
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_unix_socket

    sock = bind_unix_socket(socket_path, mode=0o600)
    server = HTTPServer(make_app(), xheaders=False)
    server.add_socket(sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    try:
        os.unlink(socket_path)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ink-rootbrowse", description="Serve JSROOT on a unix socket.")
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.socket))
    return 0


if __name__ == "__main__":
    sys.exit(main())
