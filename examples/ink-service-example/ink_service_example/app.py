"""The service's web app: a tornado application behind the hub's OAuth.

JupyterHub starts it with ``JUPYTERHUB_SERVICE_PREFIX`` (``/services/example/``),
``JUPYTERHUB_SERVICE_URL`` (where to listen), the service's API token and OAuth client. Every
page asks the hub whether the logged-in user may use the service (a member of an experiment
that lists it) before it shows anything: the tile being hidden is not the guard.
"""

from __future__ import annotations

import html
import os
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web

from ink_hub.service_plugins import check_access

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Example Monitor</title></head>
<body><main>
<h1>Example Monitor</h1>
<p id="who">Hello {user}</p>
<p id="experiments">Through: {experiments}</p>
</main></body></html>
"""


class MonitorHandler(HubOAuthenticated, web.RequestHandler):
    @web.authenticated
    async def get(self):
        user = self.get_current_user()
        access = await check_access(user["name"])
        if not access["allowed"]:
            raise web.HTTPError(403, "this service is for the members of the experiments that offer it")
        self.set_header("Content-Security-Policy", "default-src 'none'")
        self.finish(PAGE.format(user=html.escape(user["name"]),
                                experiments=html.escape(", ".join(access["experiments"]))))

    def write_error(self, status_code, **kwargs):
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            reason = exc.log_message
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(f"<!doctype html><title>{status_code}</title><p id='error'>{status_code}: "
                    f"{html.escape(reason)}</p>")


def make_app() -> web.Application:
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/example/")
    return web.Application([
        (prefix, MonitorHandler),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
    ], cookie_secret=os.urandom(32))


def main() -> None:
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10181"))
    make_app().listen(url.port or 80, url.hostname or "127.0.0.1")
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
