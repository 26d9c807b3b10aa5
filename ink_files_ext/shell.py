"""EShell: the web shell page and the password-free SSH terminal to a login node."""

from __future__ import annotations

import json
import os

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerJinjaMixin, ExtensionHandlerMixin
from tornado import web


def login_nodes() -> dict:
    """The site's login nodes, as the hub passed them to this (portal) session."""
    try:
        nodes = json.loads(os.environ.get("INK_LOGIN_NODES") or "{}")
    except ValueError:
        return {}
    return nodes if isinstance(nodes, dict) and os.environ.get("INK_SSH_DIR") else {}


def ssh_command(node: dict, user: str) -> list[str]:
    """argv of a password-free SSH session to a login node, with the hub-minted certificate."""
    directory = os.environ["INK_SSH_DIR"]
    known_hosts = os.path.join(directory, "known_hosts")
    return [
        "ssh", "-t",
        "-i", os.path.join(directory, "id_ink"),
        "-o", f"CertificateFile={os.path.join(directory, 'id_ink-cert.pub')}",
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=" + ("yes" if node.get("host_key") else "accept-new"),
        "-o", "PasswordAuthentication=no",
        "-p", str(int(node["port"])),
        "-l", user,
        node["host"],
    ]


class ShellPageHandler(ExtensionHandlerJinjaMixin, ExtensionHandlerMixin, JupyterHandler):
    """GET /ink/shell: the web shell page. Terminals themselves are jupyter-server's
    (POST /api/terminals, websocket /terminals/websocket/NAME), with its auth and XSRF checks."""

    auth_resource = "terminals"

    @web.authenticated
    @authorized
    def get(self):
        if not self.settings.get("terminals_available", False):
            raise web.HTTPError(503, "terminals are not available in this server")
        self.write(self.render_template(
            "ink_shell.html",
            base_url=self.base_url,
            xsrf=self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token,
            user=self.current_user.username,
            xterm_js=self.static_url("vendor/xterm.js"),
            xterm_css=self.static_url("vendor/xterm.css"),
            fit_js=self.static_url("vendor/addon-fit.js"),
            shell_js=self.static_url("ink_shell.js"),
            login_nodes={name: n["title"] for name, n in login_nodes().items()},
        ))


class LoginTerminalHandler(ExtensionHandlerMixin, JupyterHandler):
    """POST /ink/api/shell/login {"node": NAME}: a terminal running ssh to a configured login
    node. Only node names the hub configured are accepted; nothing else reaches the command."""

    auth_resource = "terminals"

    @web.authenticated
    @authorized
    def post(self):
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "body must be JSON: {\"node\": NAME}") from None
        node_name = body.get("node") if isinstance(body, dict) else None
        nodes = login_nodes()
        if not isinstance(node_name, str) or node_name not in nodes:
            raise web.HTTPError(400, f"node: unknown login node (configured: {', '.join(nodes) or 'none'})")
        manager = self.settings["terminal_manager"]
        name, _ = manager.new_named_terminal(shell_command=ssh_command(nodes[node_name], os.environ.get("USER") or self.current_user.username))
        self.finish({"name": name})


def shell_handlers() -> list[tuple]:
    return [(r"/ink/shell/?", ShellPageHandler), (r"/ink/api/shell/login", LoginTerminalHandler)]
