"""The jupyter-server side of ink_proxy_ext: the desktop's noVNC page and the apps' assets.

A plain server extension (no ExtensionApp: it has no settings of its own). ``/desktop/`` is
an authenticated page that connects noVNC to the ``desktop-vnc`` websocket. ``/ink/ssh`` is
the session's SSH endpoint (:mod:`ink_proxy_ext.ssh_socket`, :mod:`ink_proxy_ext.sshd`).

``/ink-apps/static/`` serves the apps' front-end code (noVNC and JSROOT from npm, copied by
scripts/build-assets, and our page scripts) without authentication, like jupyter-server's own
``/static/``: it is public open-source code and no user data. It has to be: browsers fetch ES
modules in CORS mode, and JupyterHub's single-user auth ignores the login cookie on CORS-mode
requests that carry no XSRF header, which a module import cannot send.
"""

from __future__ import annotations

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .apps import STATIC
from .ssh_socket import SSHSocketHandler
from .sshd import SSHEndpoint

DESKTOP_PAGE = (STATIC / "desktop" / "index.html").read_text()  # read once, at server start


class PublicStaticHandler(web.StaticFileHandler):
    """The apps' front-end code: public, cacheable, never sniffed as another type."""

    def set_extra_headers(self, path):
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-cache")


class DesktopPageHandler(JupyterHandler):
    """GET /desktop/: the noVNC viewer for this session's desktop."""

    @web.authenticated
    def get(self):
        page = DESKTOP_PAGE.replace("{{base_url}}", self.base_url)
        self.set_header("Cache-Control", "no-store")
        self.finish(page)


def _load_jupyter_server_extension(serverapp):
    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*", [
        (url_path_join(base_url, r"/desktop/?"), DesktopPageHandler),
        (url_path_join(base_url, r"/ink-apps/static/(.*)"), PublicStaticHandler, {"path": str(STATIC)}),
        # SSH into the session (Enode): the sshd is made at the first connection, not here
        (url_path_join(base_url, r"/ink/ssh"), SSHSocketHandler, {"endpoint": SSHEndpoint(parent=serverapp)}),
    ])
    serverapp.log.info("ink_proxy_ext: desktop page, app assets and SSH endpoint loaded")
