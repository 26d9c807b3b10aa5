#!/usr/bin/env python3
"""A stand-in for jupyterhub-singleuser in load benchmarks: answers every GET with 200.

Standard library only. Accepts ``--ip=`` and ``--port=`` and ignores any other argument.
Without ``--port`` it takes address and port from ``JUPYTERHUB_SERVICE_URL``, as
jupyterhub-singleuser does: ink-session sets that variable (keeping the port off the command
line), and batchspawner 1.3.0's ``batchspawner-singleuser`` picks the port,
reports it to the hub, writes it into that variable and runs this file with ``runpy.run_path``
(it passes no ``--port`` on JupyterHub >= 2).
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class Handler(BaseHTTPRequestHandler):
    server_version = "ink-bench-minimal/1"

    def do_GET(self):  # noqa: N802 (http.server naming)
        body = b'{"ok": true}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002  (keep job output small)
        pass


def parse_args(argv: list[str]) -> tuple[str, int | None]:
    ip, port = None, None
    it = iter(argv)
    for arg in it:
        for name in ("ip", "port"):
            flag = f"--{name}"
            if arg.startswith(flag + "="):
                value = arg.split("=", 1)[1].strip("'\"")
            elif arg == flag:
                value = next(it, "")
            else:
                continue
            if name == "ip":
                ip = value
            else:
                port = int(value)
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if service_url and (ip is None or port is None):
        url = urlparse(service_url)
        ip = ip if ip is not None else (url.hostname or "")
        port = port if port is not None else url.port
    return ip if ip is not None else "127.0.0.1", port


def main(argv: list[str] | None = None) -> int:
    ip, port = parse_args(sys.argv[1:] if argv is None else argv)
    if not port:
        print("minimal_server: no --port and no port in JUPYTERHUB_SERVICE_URL", file=sys.stderr)
        return 2
    if ip in ("", "*"):
        ip = "0.0.0.0"
    httpd = ThreadingHTTPServer((ip, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"minimal_server: listening on {ip}:{port}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
