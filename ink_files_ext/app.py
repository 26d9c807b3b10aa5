"""The jupyter-server extension that carries INK's user-side pages (runs as the user).

Now: the EShell page (``/ink/shell``), an xterm.js terminal on jupyter-server's own terminals
(terminado). To come: the file manager and its API (``/ink/files``, ``/ink/api/files``).
"""

from __future__ import annotations

from pathlib import Path

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.application import ExtensionApp, ExtensionAppJinjaMixin
from jupyter_server.extension.handler import ExtensionHandlerJinjaMixin, ExtensionHandlerMixin
from tornado import web

HERE = Path(__file__).parent


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
        ))


class InkFilesApp(ExtensionAppJinjaMixin, ExtensionApp):
    """INK's user-side pages inside the user's own jupyter-server."""

    name = "ink_files_ext"
    load_other_extensions = True
    static_paths = [str(HERE / "static")]
    template_paths = [str(HERE / "templates")]

    def initialize_handlers(self):
        self.handlers.extend([(r"/ink/shell/?", ShellPageHandler)])
